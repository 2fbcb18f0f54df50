"""Hypothesis strategies for the Keras adapter tests: grouped weights and embedding pairs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .conftest import BACKEND

# float64 needs jax_enable_x64 on JAX (off by default, and Keras leaves it off).
FLOAT_DTYPES = ["float32", "float16", "bfloat16"] + ([] if BACKEND == "jax" else ["float64"])

# JAX compiles every op anew for each new shape and dtype (about 0.5 s an example on the
# 2-core CI machine), so the adapter's property tests draw a fifth of the profile's examples
# there (12 of 60); the torch and tensorflow runs, same code and same ops, draw them all.
backend_settings = settings(
    max_examples=max(10, settings.default.max_examples // 5)
    if BACKEND == "jax"
    else settings.default.max_examples
)


def as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """`x` rounded to `dtype` as NumPy holds it (bfloat16 from ml_dtypes)."""
    return x.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype))


@st.composite
def grouped_weights(draw, dtypes=FLOAT_DTYPES, max_ndim=4, max_side=6):
    """`(w, group_axis, dtype)`: random shape and scale, some groups forced exactly to zero.

    `w` is a NumPy array already rounded to `dtype`, so the adapter and the core see the same
    numbers. Scales reach 1e3, where float16 squares overflow (65504 is its largest value).
    """
    dtype = draw(st.sampled_from(dtypes))
    ndim = draw(st.integers(2, max_ndim))
    shape = tuple(draw(st.lists(st.integers(1, max_side), min_size=ndim, max_size=ndim)))
    group_axis = draw(st.sampled_from([-2, *range(-ndim, ndim)]))
    w = draw(hnp.arrays(np.float32, shape, elements=st.floats(-1, 1, width=32)))
    w[np.abs(w) < 1e-30] = 0  # no subnormal results: CPU backends may flush them to zero
    w = w * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    mask = draw(hnp.arrays(np.bool_, (shape[group_axis],)))
    index = [slice(None)] * ndim
    index[group_axis] = mask
    w[tuple(index)] = 0
    return as_dtype(w, dtype), group_axis, dtype


@st.composite
def embedding_pairs(draw, dtypes=FLOAT_DTYPES, min_rows=1, max_rows=8, max_cols=6):
    """`(z1, z2, dtype)`: two `(N, m)` batches rounded to `dtype`; rows may be exactly zero."""
    dtype = draw(st.sampled_from(dtypes))
    shape = (draw(st.integers(min_rows, max_rows)), draw(st.integers(1, max_cols)))
    elements = st.floats(-1, 1, width=32)
    scale = draw(st.sampled_from([1e-2, 1.0, 1e2]))
    pair = []
    for _ in range(2):
        z = draw(hnp.arrays(np.float32, shape, elements=elements))
        z[np.abs(z) < 1e-30] = 0  # no subnormals: CPU backends may flush them to zero
        z *= scale
        z[draw(hnp.arrays(np.bool_, (shape[0],)))] = 0
        pair.append(as_dtype(z, dtype))
    return pair[0], pair[1], dtype
