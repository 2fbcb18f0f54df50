"""The one Hypothesis strategy for the adapters' conformance suites (Keras, PyTorch, optax).

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


def ranking_is_clear(norms: np.ndarray, k: int, rel: float = 1e-4) -> bool:
    """The k-th and (k+1)-th largest of the float64 `norms` are equal or `rel` apart, so
    norms accumulated in float32 rank the groups as the float64 core does (for comparing an
    adapter's L2,0 projection with `sparsehead.l20_project` bit for bit)."""
    g = np.sort(np.asarray(norms, np.float64))[::-1]
    if k == 0 or k == g.size:
        return True
    return bool(g[k - 1] == g[k] or g[k - 1] - g[k] > rel * g[k - 1])
