"""Hypothesis strategies for the optax adapter: grouped weights, scales over many decades."""

from __future__ import annotations

import ml_dtypes
import numpy as np

from tests import conformance

FLOAT_DTYPES = ["float64", "float32", "float16", "bfloat16"]


def as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """`x` rounded to `dtype` as NumPy holds it (bfloat16 from ml_dtypes)."""
    return x.astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype))


def grouped_weights(dtypes=FLOAT_DTYPES):
    """`(w, group_axis, dtype)` for Keras/Flax `(in, out)` kernels (`group_axis=-2` weighted up)."""
    return conformance.grouped_weights(as_dtype, dtypes, preferred_axis=-2)


def nonfinite_weights(dtypes=FLOAT_DTYPES):
    """`(w, group_axis, dtype)` with NaN/inf in some groups and exact zeros in others."""
    return conformance.nonfinite_weights(as_dtype, dtypes, preferred_axis=-2)
