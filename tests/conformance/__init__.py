"""The conformance suite: one set of test bodies over every backend (`backends.py`), and the
one Hypothesis strategy for weights, which the per-framework suites use too.

Layout: `backends.py` (the seam: one object per backend, the same operations through each
public API), `keras_seam.py` (tensors and gradients on this process's Keras backend),
`reference.py` (an independent float64 reference), `loops.py` (each framework's real training
loop), `test_ops.py`, `test_loops.py`, `test_bad_input.py` (the bodies).

Each suite passes its own `round_to(x, dtype)`, which rounds a float64 array to `dtype` in the
form that suite hands to its framework (e.g. bfloat16 from ml_dtypes, or bfloat16 values held
in float32 where only torch is installed), so the adapter and the NumPy core see the same
numbers.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sparsehead as sh

# Scales that each dtype represents: float32/bfloat16 reach 1e30, where a plain sum of squares
# overflows, and 1e-30, where it underflows; float16 tops out at 65504.
SCALES = {
    "float64": [1e-150, 1e-3, 1.0, 1e3, 1e150],
    "float32": [1e-30, 1e-3, 1.0, 1e3, 1e30],
    "bfloat16": [1e-30, 1e-3, 1.0, 1e3, 1e30],
    "float16": [1e-2, 1.0, 1e2],
}


@st.composite
def grouped_weights(
    draw,
    round_to: Callable[[np.ndarray, str], np.ndarray],
    dtypes: list[str],
    scales: dict[str, list[float]] | None = None,
    preferred_axis: int = -2,
    flush_subnormal: bool = False,
    max_ndim: int = 4,
    max_side: int = 6,
):
    """`(w, group_axis, dtype)`: random shape and scale, some groups forced exactly to zero.

    `group_axis` is drawn from every axis, with the framework's usual one (`preferred_axis`)
    weighted up. `flush_subnormal` zeroes entries below 1e-30 first (CPU backends may flush
    subnormal results to zero).
    """
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.integers(2, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=ndim, max_size=ndim)))
    group_axis = draw(st.sampled_from([preferred_axis, *range(-ndim, ndim)]))
    w = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1, width=32)))
    if flush_subnormal:
        w[np.abs(w) < 1e-30] = 0
    w = w * draw(st.sampled_from((scales or SCALES)[dtype]))
    mask = draw(hnp.arrays(np.bool_, (shape[group_axis],)))
    index = [slice(None)] * ndim
    index[group_axis] = mask
    w[tuple(index)] = 0
    return round_to(w, dtype), group_axis, dtype


POISONS = (float("nan"), float("inf"), float("-inf"))


@st.composite
def nonfinite_weights(
    draw,
    round_to: Callable[[np.ndarray, str], np.ndarray],
    dtypes: list[str],
    preferred_axis: int = -2,
):
    """`(w, group_axis, dtype)` as `grouped_weights` (exact-zero groups included) with at least
    one group holding NaN, inf or -inf in one or two entries (NaN and inf may share a group)."""
    w, group_axis, dtype = draw(
        grouped_weights(
            round_to,
            dtypes,
            scales={d: [1.0] for d in dtypes},
            preferred_axis=preferred_axis,
            flush_subnormal=True,
            max_ndim=3,
            max_side=5,
        )
    )
    w = np.array(w, copy=True)
    groups = np.moveaxis(w, group_axis, 0)  # a view: writing to it writes to w
    poisoned = draw(st.lists(st.integers(0, groups.shape[0] - 1), min_size=1, max_size=4))
    for j in poisoned:
        for _ in range(draw(st.integers(1, 2))):
            k = draw(st.integers(0, groups[j].size - 1))
            groups[j][np.unravel_index(k, groups[j].shape)] = draw(st.sampled_from(POISONS))
    return w, group_axis, dtype


def naive_group_norms(w: np.ndarray, group_axis: int) -> np.ndarray:
    """`sqrt(sum(w**2))` over the non-group axes in float64: NaN for a group holding NaN, inf
    for one holding inf and no NaN (the semantics every adapter follows for non-finite input;
    the NumPy core raises instead)."""
    x = np.moveaxis(np.asarray(w, np.float64), group_axis, 0)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.sqrt(np.sum(x.reshape(x.shape[0], -1) ** 2, axis=1))


def expected_group_norms(w: np.ndarray, group_axis: int, core_group_norms) -> np.ndarray:
    """Float64 group norms of a weight that may hold NaN/inf: the core's accurate norm for
    finite groups (computed with the non-finite groups zeroed), `naive_group_norms` for the
    others."""
    naive = naive_group_norms(w, group_axis)
    bad = ~np.isfinite(naive)
    clean = np.array(w, copy=True)
    index = [slice(None)] * clean.ndim
    index[group_axis] = bad
    clean[tuple(index)] = 0
    out = np.asarray(core_group_norms(clean, group_axis), np.float64)
    out[bad] = naive[bad]
    return out


def assert_same_nonfinite(actual, expected, err_msg: str = "") -> None:
    """NaN exactly where `expected` is NaN, +inf exactly where it is +inf."""
    actual = np.asarray(actual, np.float64)
    expected = np.asarray(expected, np.float64)
    np.testing.assert_array_equal(np.isnan(actual), np.isnan(expected), err_msg=err_msg)
    np.testing.assert_array_equal(np.isposinf(actual), np.isposinf(expected), err_msg=err_msg)


def ranking_is_clear(norms: np.ndarray, k: int, rel: float = 1e-4) -> bool:
    """The k-th and (k+1)-th largest of the float64 `norms` are equal or `rel` apart, so
    norms accumulated in float32 rank the groups as the float64 core does (for comparing an
    adapter's L2,0 projection with `sparsehead.l20_project` bit for bit)."""
    g = np.sort(np.asarray(norms, np.float64))[::-1]
    if k == 0 or k == g.size:
        return True
    return bool(g[k - 1] == g[k] or g[k - 1] - g[k] > rel * g[k - 1])


def hoyer_gradient_scale(w: np.ndarray, group_axis: int) -> float:
    """`2 S/Q / m` (m the largest norm): the size of each of the group Hoyer gradient's two
    terms, the floor for comparing entries where they cancel (one non-zero group: exactly 0)."""
    g = sh.group_norms(np.asarray(w, np.float64), group_axis)
    if not g.any():
        return 0.0
    r = g / g.max()
    return 2 * r.sum() / (r @ r) / g.max()
