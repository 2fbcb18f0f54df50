"""Hypothesis strategies for the PyTorch adapter: grouped weights, scales over many decades."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FLOAT_DTYPES = ["float64", "float32", "float16", "bfloat16"]

# Scales that each dtype represents: float32/bfloat16 reach 1e30, where a plain sum of squares
# overflows and 1e-30, where it underflows; float16 tops out at 65504.
SCALES = {
    "float64": [1e-150, 1e-3, 1.0, 1e3, 1e150],
    "float32": [1e-30, 1e-3, 1.0, 1e3, 1e30],
    "bfloat16": [1e-30, 1e-3, 1.0, 1e3, 1e30],
    "float16": [1e-2, 1.0, 1e2],
}


def as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """`x` rounded to `dtype`; bfloat16 values are held in float32 (NumPy has no bfloat16, and
    the core accumulates both in float32), so only torch is needed."""
    if dtype == "bfloat16":
        return torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).float().numpy()
    return x.astype(np.dtype(dtype))


@st.composite
def grouped_weights(draw, dtypes=FLOAT_DTYPES, max_ndim=4, max_side=6):
    """`(w, group_axis, dtype)`: random shape and scale, some groups forced exactly to zero.

    `w` is a NumPy array already rounded to `dtype` (see `as_dtype`), so the adapter and the
    core see the same numbers.
    """
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.integers(2, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=ndim, max_size=ndim)))
    group_axis = draw(st.sampled_from([-1, *range(-ndim, ndim)]))
    w = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1, width=32)))
    w = w * draw(st.sampled_from(SCALES[dtype]))
    mask = draw(hnp.arrays(np.bool_, (shape[group_axis],)))
    index = [slice(None)] * ndim
    index[group_axis] = mask
    w[tuple(index)] = 0
    return as_dtype(w, dtype), group_axis, dtype
