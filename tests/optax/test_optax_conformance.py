"""The optax adapter against the NumPy core: value, gradient and prox, under `jax.jit`.

Shapes, group axes, scales over many decades and exactly-zero groups come from Hypothesis;
tolerances from `tests.tolerances` (the table every adapter suite uses). float64 cases run
with `jax.enable_x64` switched on for that example only.
"""

from __future__ import annotations

import contextlib
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st
from sparsehead.adapters.optax import group_norms, l21_norm, l21_prox

import sparsehead as sh
from tests.conformance import assert_same_nonfinite, expected_group_norms
from tests.tolerances import assert_close, rtol

from .strategies import grouped_weights, nonfinite_weights


def precision(dtype: str):
    return jax.enable_x64(True) if dtype == "float64" else contextlib.nullcontext()


def result_dtype(dtype: str) -> str:
    return "float64" if dtype == "float64" else "float32"


def numpy(x) -> np.ndarray:
    return np.asarray(jnp.asarray(x, jnp.float32 if x.dtype != jnp.float64 else x.dtype))


@partial(jax.jit, static_argnames=("group_axis", "lam"))
def everything(x, t, group_axis, lam):
    """Penalty, group norms, gradient and prox in one jitted call: one compilation per shape
    (compiling is what costs time here, so each example compiles once)."""
    value, grad = jax.value_and_grad(lambda w: lam * l21_norm(w, group_axis))(x)
    return value, group_norms(x, group_axis), grad, l21_prox(x, t, group_axis)


# Each example compiles once (0.2 to 0.5 s): two thirds of the profile's examples (40 of the
# default 60) keep this test under ~20 s.
@settings(max_examples=max(10, settings().max_examples * 2 // 3))
@given(grouped_weights(), st.sampled_from([1e-4, 1.0, 3.0]), st.floats(0.0, 1.5))
# a penalty of 6.1e-39 is subnormal, and XLA on CPU flushes it to 0 (found in CI)
@example(case=(np.array([[6.1035156e-35]], np.float32), -2, "float32"), lam=1e-4, frac=0.0)
@example(case=(np.array([[6.1035156e-35]], np.float32), -2, "float32"), lam=1.0, frac=0.0)
def test_value_gradient_and_prox_equal_core_under_jit(case, lam, frac):
    w, group_axis, dtype = case
    norms = sh.group_norms(w, group_axis)
    t = float(frac * norms.max())  # thresholds across the range of group norms, 0 included
    with precision(dtype):
        x = jnp.asarray(w)
        assert x.dtype == w.dtype
        value, got_norms, grad, prox = everything(x, t, group_axis=group_axis, lam=lam)
        assert value.dtype == result_dtype(dtype) and value.shape == ()
        assert grad.dtype == prox.dtype == w.dtype and prox.shape == w.shape
        value, got_norms, grad, prox = (numpy(a) for a in (value, got_norms, grad, prox))

    # value and group norms: float32 (float64) results, accumulated from the same numbers
    assert_close(value, lam * sh.l21_norm(w, group_axis), result_dtype(dtype))
    assert_close(got_norms, norms, result_dtype(dtype))

    # gradient: the minimum-norm subgradient, |entries| <= lam, stored in the leaf's dtype.
    # Its chain rule passes through lam * (the group's largest entry): XLA on CPU flushes that
    # to 0 below the smallest normal number, so such groups are left out (a known limit).
    groups = np.moveaxis(np.abs(np.asarray(w, np.float64)), group_axis, 0)
    peaks = groups.reshape(groups.shape[0], -1).max(axis=1)
    tiny = np.finfo(np.float64 if dtype == "float64" else np.float32).tiny
    assume(((peaks == 0) | (lam * peaks >= tiny)).all())
    assert np.isfinite(grad).all()
    expected = lam * sh.l21_subgradient(w, group_axis).astype(np.float64)
    assert_close(grad, expected, dtype, atol_scale=lam)
    index = [slice(None)] * w.ndim
    index[group_axis] = norms == 0
    assert (grad[tuple(index)] == 0).all()  # exactly 0 on zero groups, not NaN

    # prox: ties between a group norm and t within rounding are covered by rtol * max|w|;
    # results in the subnormal range are rounded to the subnormal spacing (floor tiny / rtol)
    w64 = np.asarray(w, np.float64)
    expected = sh.l21_prox(w64, t, group_axis)
    scale = max(float(np.abs(w64).max()), float(jnp.finfo(dtype).tiny) / rtol(dtype))
    assert_close(prox, expected, dtype, atol_scale=scale)
    index[group_axis] = norms <= t * (1 - 1e-3)
    assert (prox[tuple(index)] == 0).all()


@settings(max_examples=max(10, settings().max_examples // 3))
@given(nonfinite_weights())
def test_nan_and_inf_propagate_and_zero_groups_keep_a_zero_gradient(case):
    """A NaN group has norm NaN and an inf group norm inf (never 0), and so has the penalty;
    the gradient stays exactly 0 on exact-zero groups and finite on finite groups."""
    w, group_axis, dtype = case
    expected = expected_group_norms(w, group_axis, sh.group_norms)
    with precision(dtype):
        value, norms, grad, _ = everything(jnp.asarray(w), 0.0, group_axis=group_axis, lam=1.0)
        value, norms, grad = (numpy(a) for a in (value, norms, grad))
    assert_same_nonfinite(norms, expected)
    finite = np.isfinite(expected)
    assert_close(norms[finite], expected[finite], result_dtype(dtype))
    assert_same_nonfinite(value, expected.sum())
    grad = np.moveaxis(grad, group_axis, 0)
    clean = np.moveaxis(np.asarray(w, np.float64), group_axis, 0).copy()
    clean[~finite] = 0
    assert_close(grad[finite], sh.l21_subgradient(clean, 0)[finite], dtype, atol_scale=1.0)
    assert (grad[expected == 0] == 0).all()
