"""InfoNCE (Eq. 2), BYOL and Barlow Twins against plain loops and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsehead as sh

from .strategies import embeddings


def cos(a, b):
    """cos(a, b) with each vector first divided by its largest entry (no underflow); 0 for 0."""
    ma, mb = max(map(abs, a)), max(map(abs, b))
    if ma == 0 or mb == 0:
        return 0.0
    a, b = [x / ma for x in a], [x / mb for x in b]
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(x * x for x in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / (na * nb)


def info_nce_loop(z1, z2, tau):
    """Eq. 2 written out: -sum_l log(exp(cos(z^l, z^{3-l})/tau) / sum_{z != z^l} exp(cos/tau))."""
    z = [list(map(float, r)) for r in np.concatenate([z1, z2])]
    n = len(z1)
    total = 0.0
    for a in range(2 * n):
        pos = (a + n) % (2 * n)
        logits = {b: cos(z[a], z[b]) / tau for b in range(2 * n) if b != a}
        top = max(logits.values())  # log-sum-exp shifted by the max: exp cannot overflow
        log_denom = top + math.log(math.fsum(math.exp(v - top) for v in logits.values()))
        total -= logits[pos] - log_denom
    return total


def two_views(n_min=1):
    return embeddings(n_min=n_min).flatmap(
        lambda z: st.tuples(st.just(z), embeddings(z.shape[0], z.shape[0], z.shape[1], z.shape[1]))
    )


@given(two_views(), st.floats(0.05, 2.0))
def test_info_nce_matches_eq2_loop(views, tau):
    z1, z2 = views
    expected = info_nce_loop(z1, z2, tau)
    assert sh.info_nce(z1, z2, tau, reduction="sum") == pytest.approx(expected, rel=1e-9, abs=1e-9)
    assert sh.info_nce(z1, z2, tau) == pytest.approx(expected / (2 * len(z1)), rel=1e-9, abs=1e-9)
    per = sh.info_nce(z1, z2, tau, reduction="none")
    assert per.shape == (2 * len(z1),)


@given(two_views(), st.floats(0.01, 100), st.floats(0.01, 100))
def test_info_nce_invariant_to_positive_rescaling(views, c1, c2):
    z1, z2 = views
    assert sh.info_nce(c1 * z1, c2 * z2) == pytest.approx(sh.info_nce(z1, z2), rel=1e-9, abs=1e-12)


@given(two_views(), st.randoms(use_true_random=False))
def test_info_nce_invariant_to_permuting_pairs(views, rnd):
    z1, z2 = views
    perm = list(range(len(z1)))
    rnd.shuffle(perm)
    assert sh.info_nce(z1[perm], z2[perm]) == pytest.approx(
        sh.info_nce(z1, z2), rel=1e-9, abs=1e-12
    )


@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_info_nce_equal_embeddings_is_log_2n_minus_1(n):
    z = np.tile([[0.3, -1.2, 2.0]], (n, 1))
    assert sh.info_nce(z, z) == pytest.approx(math.log(2 * n - 1), rel=1e-12, abs=1e-15)


def test_info_nce_small_temperature_is_finite():
    rng = np.random.default_rng(0)
    z1, z2 = rng.standard_normal((2, 16, 8))
    loss = sh.info_nce(z1, z2, temperature=1e-3)
    assert math.isfinite(loss)
    assert loss == pytest.approx(info_nce_loop(z1, z2, 1e-3) / 32, rel=1e-9)


def test_info_nce_float32_close_to_float64():
    rng = np.random.default_rng(1)
    z1, z2 = rng.standard_normal((2, 128, 32))
    ref = sh.info_nce(z1, z2)
    got = sh.info_nce(z1.astype(np.float32), z2.astype(np.float32))
    assert got == pytest.approx(ref, rel=1e-5)  # tests/tolerances.py: float32


def test_zero_vectors_have_zero_cosine():
    z1 = np.array([[0.0, 0.0], [1.0, 0.0]])
    z2 = np.array([[0.0, 1.0], [0.0, 0.0]])
    np.testing.assert_array_equal(sh.cosine_similarity(z1, z2), [0.0, 0.0])
    assert sh.info_nce(z1, z2, reduction="sum") == pytest.approx(info_nce_loop(z1, z2, 0.5))
    assert math.isfinite(sh.byol_loss(z1, z2))


@given(two_views())
def test_byol_loss_closed_form(views):
    p, z = views
    expected = np.mean([2 - 2 * cos(a, b) for a, b in zip(p, z, strict=True)])
    assert sh.byol_loss(p, z) == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_byol_loss_values():
    p = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    z = np.array([[2.0, 0.0], [0.0, 3.0], [-1.0, 0.0]])
    np.testing.assert_allclose(sh.byol_loss(p, z, reduction="none"), [0.0, 2.0, 4.0], atol=1e-15)


def barlow_loop(z1, z2, lam, eps):
    n, m = z1.shape

    def std(z):
        out = np.empty_like(z)
        for k in range(m):
            col = z[:, k]
            mu = sum(col) / n
            var = sum((x - mu) ** 2 for x in col) / n
            out[:, k] = (col - mu) / math.sqrt(var + eps)
        return out

    a, b = std(z1), std(z2)
    loss = 0.0
    for i in range(m):
        for j in range(m):
            c = sum(a[k, i] * b[k, j] for k in range(n)) / n
            loss += (1 - c) ** 2 if i == j else lam * c * c
    return loss


@given(two_views(n_min=2), st.floats(0, 1))
def test_barlow_twins_matches_loop(views, lam):
    z1, z2 = views
    expected = barlow_loop(z1, z2, lam, 1e-5)
    assert sh.barlow_twins_loss(z1, z2, lam) == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_barlow_twins_identity_correlation_is_zero():
    # Hadamard columns (without the all-ones one): zero mean, unit variance, orthogonal, so
    # with eps = 0 the cross-correlation of two identical views is exactly I.
    h = np.array([[1.0]])
    for _ in range(3):
        h = np.block([[h, h], [h, -h]])
    z = h[:, 1:5]
    assert sh.barlow_twins_loss(z, z, eps=0.0) == pytest.approx(0.0, abs=1e-12)
    assert sh.barlow_twins_loss(z, -z, eps=0.0) == pytest.approx(4 * 2**2, rel=1e-12)
