"""Argument checks shared by the core: one clear error that names the argument."""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = [
    "as_numeric_array",
    "check_finite",
    "check_group_axis",
    "check_nonnegative",
    "check_positive",
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


def _check_real(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number; got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite; got {value}")
    return value


def check_nonnegative(value, name: str) -> float:
    value = _check_real(value, name)
    if value < 0:
        raise ValueError(f"{name} must be >= 0; got {value}")
    return value


def check_positive(value, name: str) -> float:
    value = _check_real(value, name)
    if value <= 0:
        raise ValueError(f"{name} must be > 0; got {value}")
    return value
