"""Hypothesis strategies for the core tests: weights with groups, some forced to zero."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp


@st.composite
def grouped_weights(draw, dtype=np.float64, min_ndim=2, max_ndim=4, max_side=6, zero_groups=True):
    """`(w, group_axis)`: random shape, scale over many decades, some groups exactly zero."""
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=ndim, max_size=ndim)))
    group_axis = draw(st.integers(-ndim, ndim - 1))
    elements = st.floats(-1, 1, allow_nan=False, width=np.dtype(dtype).itemsize * 8)
    w = draw(hnp.arrays(dtype, shape, elements=elements))
    scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    w = (w * scale).astype(dtype)
    if zero_groups:
        mask = draw(hnp.arrays(np.bool_, (shape[group_axis],)))
        idx = [slice(None)] * ndim
        idx[group_axis] = mask
        w[tuple(idx)] = 0
    return w, group_axis


def embeddings(n_min=1, n_max=8, d_min=1, d_max=6):
    """`(N, m)` float64 embeddings in [-1, 1]."""
    shapes = st.tuples(st.integers(n_min, n_max), st.integers(d_min, d_max))
    return shapes.flatmap(
        lambda s: hnp.arrays(
            np.float64, s, elements=st.floats(-1, 1, allow_nan=False, allow_subnormal=False)
        )
    )


def like(w):
    """Another array of `w`'s shape and dtype, on a random scale."""
    elements = st.floats(-1, 1, allow_nan=False, width=w.dtype.itemsize * 8)
    return st.tuples(
        hnp.arrays(w.dtype, w.shape, elements=elements), st.sampled_from([1e-3, 1.0, 1e3])
    ).map(lambda t: (t[0] * t[1]).astype(w.dtype))
