"""Hypothesis strategies for the Keras adapter tests: grouped weights and embedding pairs."""

from __future__ import annotations

import ml_dtypes
import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests import conformance

from .conftest import BACKEND

# float64 needs jax_enable_x64 on JAX (off by default, and Keras leaves it off).
FLOAT_DTYPES = ["float32", "float16", "bfloat16"] + ([] if BACKEND == "jax" else ["float64"])

# Scales reach 1e3, where float16 squares overflow (65504 is its largest value).
_SCALES = {dtype: [1e-3, 1.0, 1e3] for dtype in ("float64", "float32", "float16", "bfloat16")}

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


def grouped_weights(dtypes=FLOAT_DTYPES):
    """`(w, group_axis, dtype)`; scales reach 1e3, where float16 squares overflow (65504)."""
    return conformance.grouped_weights(
        as_dtype, dtypes, scales=_SCALES, preferred_axis=-2, flush_subnormal=True
    )


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


def nonfinite_weights(dtypes=FLOAT_DTYPES):
    """`(w, group_axis, dtype)` with NaN/inf in some groups and exact zeros in others."""
    return conformance.nonfinite_weights(as_dtype, dtypes, preferred_axis=-2)
