"""InfoNCE, BYOL and Barlow Twins in keras.ops against the NumPy core."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sparsehead.adapters import keras as shk

import sparsehead as sh
from tests.conformance.keras_seam import jit, run, tensor, to_numpy, value_and_grad
from tests.tolerances import assert_close

from .strategies import backend_settings, embedding_pairs


def compute(dtype: str) -> str:
    return "float64" if dtype == "float64" else "float32"


@backend_settings
@given(
    embedding_pairs(),
    st.sampled_from([0.1, 0.5, 2.0]),
    st.sampled_from(["mean", "sum", "none"]),
)
def test_info_nce_matches_core(case, temperature, reduction):
    z1, z2, dtype = case
    got = run(
        lambda a, b: shk.info_nce(a, b, temperature, reduction),
        tensor(z1, dtype),
        tensor(z2, dtype),
    )
    want = sh.info_nce(z1, z2, temperature, reduction)
    # log-sum-exp of cosines / tau: absolute error ~ rtol * (1 / tau) per term.
    assert_close(to_numpy(got), want, compute(dtype), atol_scale=1 / temperature)


@backend_settings
@given(embedding_pairs(), st.sampled_from(["mean", "sum", "none"]))
def test_byol_loss_matches_core(case, reduction):
    p, z, dtype = case
    got = run(lambda a, b: shk.byol_loss(a, b, reduction), tensor(p, dtype), tensor(z, dtype))
    assert_close(to_numpy(got), sh.byol_loss(p, z, reduction), compute(dtype), atol_scale=4)


@backend_settings
@given(embedding_pairs(min_rows=2), st.sampled_from([0.0, 5e-3, 1.0]))
def test_barlow_twins_loss_matches_core(case, lambda_offdiag):
    z1, z2, dtype = case
    got = run(
        lambda a, b: shk.barlow_twins_loss(a, b, lambda_offdiag),
        tensor(z1, dtype),
        tensor(z2, dtype),
    )
    want = sh.barlow_twins_loss(z1, z2, lambda_offdiag)
    m = z1.shape[1]
    # Each C_ij is a mean of standardised products, |C_ij| <= 1 up to eps: terms are O(1);
    # the standardisation divides by sqrt(var + eps), which magnifies rounding by up to
    # |z| / sqrt(eps) for near-constant features: scale the floor by the number of terms.
    assert_close(to_numpy(got), want, compute(dtype), atol_scale=m * (1 + lambda_offdiag * m))


@pytest.mark.parametrize("name", ["info_nce", "byol_loss", "barlow_twins_loss"])
def test_gradients_finite_with_zero_rows(name):
    rng = np.random.default_rng(0)
    z1 = rng.normal(size=(6, 4)).astype(np.float32)
    z2 = rng.normal(size=(6, 4)).astype(np.float32)
    z1[2] = 0
    z2[2] = 0
    z1[:, 1] = 0  # a constant feature for Barlow Twins
    fn = getattr(shk, name)
    b = tensor(z2, "float32")
    value, grad = value_and_grad(lambda a: fn(a, b), tensor(z1, "float32"))
    assert np.isfinite(to_numpy(value)) and np.isfinite(to_numpy(grad)).all()


def test_info_nce_gradient_matches_finite_differences():
    """An independent check of the gradient: central differences of the float64 core."""
    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    b = tensor(z2, "float32")
    _, grad = value_and_grad(lambda a: shk.info_nce(a, b, 0.5), tensor(z1, "float32"))
    h = 1e-6
    fd = np.zeros_like(z1)
    for idx in np.ndindex(z1.shape):
        e = np.zeros_like(z1)
        e[idx] = h
        fd[idx] = (sh.info_nce(z1 + e, z2) - sh.info_nce(z1 - e, z2)) / (2 * h)
    np.testing.assert_allclose(to_numpy(grad), fd, rtol=1e-4, atol=1e-5)


def test_losses_under_jit_match_eager():
    rng = np.random.default_rng(2)
    a = tensor(rng.normal(size=(5, 3)), "float32")
    b = tensor(rng.normal(size=(5, 3)), "float32")
    for fn in (shk.info_nce, shk.byol_loss, shk.barlow_twins_loss):
        assert_close(to_numpy(jit(fn)(a, b)), to_numpy(fn(a, b)), "float32", atol_scale=1)


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda a, b: shk.info_nce(a, b, temperature=0.0), "temperature"),
        (lambda a, b: shk.info_nce(a, b, temperature=float("nan")), "temperature"),
        (lambda a, b: shk.info_nce(a, b, reduction="avg"), "reduction"),
        (lambda a, b: shk.info_nce(a, b[:2]), "same shape"),
        (lambda a, b: shk.byol_loss(a[0], b[0]), "2-D"),
        (lambda a, b: shk.barlow_twins_loss(a[:1], b[:1]), "at least 2 rows"),
        (lambda a, b: shk.barlow_twins_loss(a, b, lambda_offdiag=-1.0), "lambda_offdiag"),
    ],
)
def test_bad_arguments_raise_value_error(call, match):
    a = tensor(np.ones((3, 2)), "float32")
    with pytest.raises(ValueError, match=match):
        call(a, a)
