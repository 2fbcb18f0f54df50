"""Spectrum diagnostics against closed forms and independent computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsehead as sh

from .strategies import embeddings


def test_spectrum_of_known_covariance():
    # Rows +-a e_1 and +-b e_2 (centred): covariance diag(a^2, b^2) * 2 / 3 with n - 1 = 3.
    x = np.array([[3.0, 0, 0], [-3.0, 0, 0], [0, 1.0, 0], [0, -1.0, 0]])
    np.testing.assert_allclose(sh.eigenvalue_spectrum(x), [6.0, 2 / 3, 0.0], atol=1e-12)


@given(embeddings(n_min=2, n_max=10, d_max=5))
def test_spectrum_matches_numpy_cov(x):
    ev = sh.eigenvalue_spectrum(x)
    ref = np.sort(np.linalg.eigvalsh(np.atleast_2d(np.cov(x, rowvar=False))))[::-1]
    assert np.all(ev >= 0) and np.all(np.diff(ev) <= 0)
    np.testing.assert_allclose(ev, np.clip(ref, 0, None), atol=1e-12)
    assert ev.sum() == pytest.approx(np.trace(np.atleast_2d(np.cov(x, rowvar=False))), abs=1e-12)


def test_effective_rank_closed_forms():
    # k orthogonal directions of equal spread: singular values equal, effective rank k.
    h = np.array([[1.0]])
    for _ in range(3):
        h = np.block([[h, h], [h, -h]])
    x = h[:, 1:5]  # zero-mean orthogonal columns of equal norm
    assert sh.effective_rank(x) == pytest.approx(4.0, rel=1e-12)
    # Unequal singular values s = (3, 1): p = (3/4, 1/4), exp(H) = 4 / 3**(3/4).
    y = x[:, :2] * [3.0, 1.0]
    assert sh.effective_rank(y) == pytest.approx(4 / 3**0.75, rel=1e-12)
    assert sh.effective_rank(np.ones((4, 3))) == 0.0  # all rows equal: nothing left after centring


def test_rankme_formula():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 6))
    s = np.linalg.svd(x, compute_uv=False)
    p = s / s.sum() + 1e-7
    assert sh.rankme(x) == pytest.approx(math.exp(-np.sum(p * np.log(p))), rel=1e-12)
    # RankMe does not centre: a constant offset adds a direction.
    assert sh.rankme(np.ones((4, 3))) == pytest.approx(1.0, rel=1e-5)


@given(embeddings(n_min=2, n_max=10, d_max=5))
def test_effective_rank_bounds(x):
    r = sh.effective_rank(x)
    assert r == 0.0 or 1.0 - 1e-9 <= r <= min(x.shape) + 1e-9


@given(embeddings(n_min=2, n_max=10, d_max=5), st.sampled_from([1e-3, 7.0, 1e3]))
def test_effective_rank_is_zero_only_for_equal_rows_and_is_scale_and_rotation_invariant(x, c):
    r = sh.effective_rank(x)
    centred = x - x.mean(axis=0)
    if np.abs(centred).max() > 1e-6:  # rows not all equal: at least one direction
        assert 1.0 - 1e-9 <= r <= min(x.shape[0] - 1, x.shape[1]) + 1e-9
        # exp(H(s / sum s)) depends on the singular values up to scale only.
        assert sh.effective_rank(c * x) == pytest.approx(r, rel=1e-9)
        q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(x.shape[1],) * 2))
        assert sh.effective_rank(x @ q) == pytest.approx(r, rel=1e-9)
    if not np.any(x - x[0]):  # all rows exactly equal
        assert r == 0.0
