"""The one set of argument checks: every adapter calls these, so the same bad argument gets
the same exception type and message in every framework.

A wrong type is a `TypeError`, a wrong value a `ValueError`; each message starts with the
argument's name. Framework adapters pass plain Python values, dtype names and shapes, so this
module needs nothing but NumPy.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence

import numpy as np

__all__ = [
    "as_numeric_array",
    "check_choice",
    "check_finite",
    "check_float_dtype",
    "check_group_axis",
    "check_int",
    "check_nonempty",
    "check_nonnegative",
    "check_positive",
    "check_real",
    "check_weight",
    "compute_dtype",
]


def _is_half(dtype: np.dtype) -> bool:
    # float16, and bfloat16 from ml_dtypes (whose numpy kind is "V", not "f").
    return (dtype.kind == "f" and dtype.itemsize < 4) or dtype.name == "bfloat16"


def as_numeric_array(x, name: str, *, min_ndim: int = 0) -> np.ndarray:
    """`np.asarray(x)`, refusing non-numeric dtypes and too few dimensions."""
    arr = np.asarray(x)
    kind = arr.dtype.kind
    if not (kind in "iuf" or _is_half(arr.dtype)):
        raise TypeError(f"{name} must hold real numbers; got dtype {arr.dtype}")
    if arr.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimensions; got shape {arr.shape}")
    return arr


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The accumulation dtype: float32 for half precision and float32, float64 otherwise."""
    if _is_half(dtype) or dtype == np.float32:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def check_finite(arr: np.ndarray, name: str) -> None:
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite; it holds NaN or inf")


def check_group_axis(group_axis, ndim: int) -> int:
    """Normalise `group_axis` to a non-negative index into `ndim` axes."""
    if isinstance(group_axis, bool) or not isinstance(group_axis, numbers.Integral):
        raise TypeError(f"group_axis must be an int; got {type(group_axis).__name__}")
    if not -ndim <= group_axis < ndim:
        raise ValueError(
            f"group_axis={group_axis} is out of range for an array of {ndim} dimensions"
        )
    return int(group_axis) % ndim


def _bounds(low, high, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    return f"{'<' if high_open else '<='} {high:g}"


def check_real(
    value,
    name: str,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """`value` as a finite Python float within the given bounds.

    `TypeError` unless `value` is a real number (a `bool` is not); `ValueError` for NaN, inf,
    or a value outside `[low, high]` (an end is excluded with `low_open` / `high_open`).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        raise ValueError(f"{name} must be {_bounds(low, high, low_open, high_open)}; got {value}")
    return value


def check_int(value, name: str, *, low: int | None = None) -> int:
    """`value` as a Python int, at least `low`: `TypeError` for a non-int (or a `bool`),
    `ValueError` below `low`."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}")
    return value


def check_choice(value, name: str, choices: Iterable[str]) -> str:
    """`value` if it is one of `choices`: `TypeError` for a non-str, `ValueError` otherwise."""
    choices = tuple(choices)
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, one of {list(choices)}; got {type(value).__name__}")
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value


def check_float_dtype(dtype_name: str, name: str) -> None:
    """`TypeError` unless `dtype_name` names a floating-point dtype.

    `dtype_name` is the dtype as a string in any framework's spelling: `"float32"`,
    `"bfloat16"`, `"torch.float16"`, `"<dtype: 'float32'>"`. Integer, bool and complex dtypes
    (and anything else) are refused: a weight that cannot take a fractional step has no
    gradient, prox or projection that means anything.
    """
    text = str(dtype_name)
    base = text.rsplit(".", 1)[-1].strip("<>' ").removeprefix("dtype: ").strip("'")
    if "float" not in base:  # int*, uint*, bool, complex*, object, ...
        raise TypeError(f"{name} must be floating point; got dtype {text}")


def check_nonempty(shape: Sequence[int], group_axis: int, name: str) -> None:
    """`ValueError` if a weight of `shape` has no groups along `group_axis` or no elements.

    (`group_axis` names the groups in the message's meaning; no groups implies no elements,
    so the check is on the element count. Check the axis itself with `check_group_axis`.)
    """
    shape = tuple(int(n) for n in shape)
    if not shape or math.prod(shape) == 0:  # no groups implies no elements
        raise ValueError(f"{name} must not be empty; got shape {shape}")


def check_weight(dtype_name: str, shape: Sequence[int], group_axis, name: str = "w") -> int:
    """All the checks of a weight with groups, in order: a floating dtype
    (`check_float_dtype`), at least 2 dimensions, `group_axis` in range (`check_group_axis`),
    not empty (`check_nonempty`). Returns `group_axis` as a non-negative index."""
    check_float_dtype(dtype_name, name)
    shape = tuple(int(n) for n in shape)
    if len(shape) < 2:
        raise ValueError(f"{name} must have at least 2 dimensions; got shape {shape}")
    ax = check_group_axis(group_axis, len(shape))
    check_nonempty(shape, ax, name)
    return ax


def check_nonnegative(value, name: str) -> float:
    """`check_real(value, name, low=0)`."""
    return check_real(value, name, low=0)


def check_positive(value, name: str) -> float:
    """`check_real(value, name, low=0, low_open=True)`."""
    return check_real(value, name, low=0, low_open=True)
