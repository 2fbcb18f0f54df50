"""The PyTorch adapter against the NumPy core: value, gradient and prox on random weights.

Shapes, group axes, scales over many decades and exactly-zero groups come from Hypothesis;
tolerances from `tests.tolerances` (the table every adapter suite uses).
"""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given
from hypothesis import strategies as st
from sparsehead.adapters.torch import group_norms, l21_norm, l21_prox, l21_prox_

import sparsehead as sh
from tests.conformance import assert_same_nonfinite, expected_group_norms
from tests.tolerances import assert_close, rtol

from .strategies import grouped_weights, nonfinite_weights


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


@given(grouped_weights())
def test_penalty_and_group_norms_equal_core(case):
    w, group_axis, dtype = case
    x = tensor(w, dtype)
    value = l21_norm(x, group_axis)
    assert value.dtype == getattr(torch, result_dtype(dtype)) and value.ndim == 0
    assert_close(numpy(value), sh.l21_norm(w, group_axis), result_dtype(dtype))
    norms = sh.group_norms(w, group_axis)
    assert_close(numpy(group_norms(x, group_axis)), norms, result_dtype(dtype))


@given(grouped_weights(), st.sampled_from([1e-4, 1.0, 3.0]))
def test_gradient_equals_core_subgradient(case, lam):
    w, group_axis, dtype = case
    x = tensor(w, dtype).requires_grad_()
    (lam * l21_norm(x, group_axis)).backward()
    grad = numpy(x.grad)
    assert x.grad.dtype == x.dtype
    assert np.isfinite(grad).all()
    expected = lam * sh.l21_subgradient(w, group_axis).astype(np.float64)
    # |subgradient| <= 1 entrywise; stored in the weight's dtype: one rounding on each side.
    assert_close(grad, expected, dtype, atol_scale=lam)
    index = [slice(None)] * w.ndim
    index[group_axis] = sh.group_norms(w, group_axis) == 0
    assert (grad[tuple(index)] == 0).all()  # the minimum-norm subgradient: exactly 0


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


@given(nonfinite_weights())
def test_nan_and_inf_propagate_and_zero_groups_keep_a_zero_gradient(case):
    """A NaN group has norm NaN and an inf group norm inf (never 0), and so has the penalty;
    the gradient stays exactly 0 on exact-zero groups and finite on finite groups."""
    w, group_axis, dtype = case
    expected = expected_group_norms(w, group_axis, sh.group_norms)
    x = tensor(w, dtype).requires_grad_()
    norms = numpy(group_norms(x, group_axis))
    assert_same_nonfinite(norms, expected)
    finite = np.isfinite(expected)
    assert_close(norms[finite], expected[finite], result_dtype(dtype))
    value = l21_norm(x, group_axis)
    assert_same_nonfinite(numpy(value), expected.sum())
    value.backward()
    grad = np.moveaxis(numpy(x.grad), group_axis, 0)
    clean = np.moveaxis(np.asarray(w, np.float64), group_axis, 0).copy()
    clean[~finite] = 0
    sub = sh.l21_subgradient(clean, 0)
    assert_close(grad[finite], sub[finite], dtype, atol_scale=1.0)
    assert (grad[expected == 0] == 0).all()
