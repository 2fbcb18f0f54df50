"""The PyTorch adapter's in-place prox against its out-of-place one, and the tensor helpers the
torch tests share. Values, gradients, NaN/inf, prox and projection against the reference are
in the one conformance suite (`tests/conformance`).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from sparsehead.adapters.torch import l21_prox, l21_prox_

import sparsehead as sh
from tests.tolerances import assert_close, rtol

from .strategies import grouped_weights


def tensor(w: np.ndarray, dtype: str) -> torch.Tensor:
    """`w` (already rounded to `dtype`) as a torch tensor of that dtype, exactly."""
    wide = np.float64 if dtype == "float64" else np.float32
    return torch.from_numpy(np.asarray(w, dtype=wide).copy()).to(getattr(torch, dtype))


def numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float64).numpy()


def tiny(dtype: str) -> float:
    """The smallest normal number of `dtype`."""
    return float(torch.finfo(getattr(torch, dtype)).tiny)


def result_dtype(dtype: str) -> str:
    """Norms and the penalty are float32 for half/float32 weights, float64 for float64."""
    return "float64" if dtype == "float64" else "float32"


@given(grouped_weights(), st.floats(0.0, 1.5))
def test_prox_equals_core_prox(case, frac):
    w, group_axis, dtype = case
    norms = sh.group_norms(w, group_axis)
    t = float(frac * norms.max())  # thresholds across the range of group norms, 0 included
    x = tensor(w, dtype)
    out = l21_prox(x, t, group_axis)
    assert out.dtype == x.dtype and out.shape == x.shape
    expected = sh.l21_prox(np.asarray(w, np.float64), t, group_axis)
    # A group whose norm ties with t within rounding may be kept by one side with a factor of
    # about eps: an absolute error of rtol * max|w| covers it. Results in the subnormal range
    # are rounded to the subnormal spacing: the floor `tiny / rtol` gives them `tiny`.
    scale = max(float(np.abs(np.asarray(w, np.float64)).max()), tiny(dtype) / rtol(dtype))
    assert_close(numpy(out), expected, dtype, atol_scale=scale)
    # Groups clearly inside the threshold (not a rounding tie) are exactly 0, as in the core.
    index = [slice(None)] * w.ndim
    index[group_axis] = norms <= t * (1 - 1e-3)
    assert (numpy(out)[tuple(index)] == 0).all()
    inplace = tensor(w, dtype)
    assert l21_prox_(inplace, t, group_axis) is inplace
    np.testing.assert_array_equal(numpy(inplace), numpy(out))
