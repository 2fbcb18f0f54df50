"""Hypothesis strategies for the PyTorch adapter: grouped weights, scales over many decades."""

from __future__ import annotations

import numpy as np
import torch

from tests import conformance

FLOAT_DTYPES = ["float64", "float32", "float16", "bfloat16"]


def as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """`x` rounded to `dtype`; bfloat16 values are held in float32 (NumPy has no bfloat16, and
    the core accumulates both in float32), so only torch is needed."""
    if dtype == "bfloat16":
        return torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16).float().numpy()
    return x.astype(np.dtype(dtype))


def grouped_weights(dtypes=FLOAT_DTYPES):
    """`(w, group_axis, dtype)` for torch's `(out, in)` layout (`group_axis=-1` weighted up)."""
    return conformance.grouped_weights(as_dtype, dtypes, preferred_axis=-1)


def nonfinite_weights(dtypes=FLOAT_DTYPES):
    """`(w, group_axis, dtype)` with NaN/inf in some groups and exact zeros in others."""
    return conformance.nonfinite_weights(as_dtype, dtypes, preferred_axis=-1)
