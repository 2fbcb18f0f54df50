"""Bad input gets a ValueError or TypeError that names the argument."""

from __future__ import annotations

import numpy as np
import pytest

import sparsehead as sh

W = np.ones((3, 2))
Z = np.ones((4, 3))

GROUP_FUNCTIONS = [
    sh.group_norms,
    sh.l21_norm,
    sh.l21_subgradient,
    sh.group_sparsity,
    sh.sparsity_summary,
    lambda w, **kw: sh.l21_prox(w, 0.1, **kw),
]


@pytest.mark.parametrize("fn", GROUP_FUNCTIONS)
@pytest.mark.parametrize(
    ("w", "kwargs", "error", "match"),
    [
        (np.ones(3), {}, ValueError, "w must have at least 2 dimensions"),
        (np.array([[1.0, np.nan]]), {}, ValueError, "w must be finite"),
        (np.array([[1.0, np.inf]]), {"group_axis": -1}, ValueError, "w must be finite"),
        (W, {"group_axis": 2}, ValueError, "group_axis=2 is out of range"),
        (W, {"group_axis": -3}, ValueError, "group_axis=-3 is out of range"),
        (W, {"group_axis": 0.5}, TypeError, "group_axis must be an int"),
        (np.array([["a", "b"]]), {}, TypeError, "w must hold real numbers"),
        (np.ones((2, 2), bool), {}, TypeError, "w must hold real numbers"),
        (np.ones((2, 2), complex), {}, TypeError, "w must hold real numbers"),
        (np.ones((0, 2)), {}, ValueError, "w must not be empty"),
    ],
)
def test_group_functions_reject(fn, w, kwargs, error, match):
    with pytest.raises(error, match=match):
        fn(w, **kwargs)


@pytest.mark.parametrize(
    ("threshold", "error"),
    [(-0.1, ValueError), (float("nan"), ValueError), (float("inf"), ValueError), ("1", TypeError)],
)
def test_prox_rejects_bad_threshold(threshold, error):
    with pytest.raises(error, match="threshold"):
        sh.l21_prox(W, threshold)


def test_group_sparsity_rejects_bad_atol():
    with pytest.raises(ValueError, match="atol"):
        sh.group_sparsity(W, atol=-1)


@pytest.mark.parametrize("fn", [sh.info_nce, sh.byol_loss, sh.barlow_twins_loss])
def test_losses_reject_bad_embeddings(fn):
    names = ("p", "z") if fn is sh.byol_loss else ("z1", "z2")
    with pytest.raises(ValueError, match="same shape"):
        fn(Z, np.ones((4, 2)))
    with pytest.raises(ValueError, match="empty batch"):
        fn(np.ones((0, 3)), np.ones((0, 3)))
    with pytest.raises(ValueError, match=f"{names[0]} must be 2-D"):
        fn(np.ones(3), np.ones(3))
    with pytest.raises(ValueError, match=f"{names[1]} must be finite"):
        fn(Z, np.full((4, 3), np.nan))
    with pytest.raises(TypeError, match=f"{names[0]} must hold real numbers"):
        fn(np.full((4, 3), "x"), Z)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("nan"), float("inf")])
def test_info_nce_rejects_bad_temperature(tau):
    with pytest.raises(ValueError, match="temperature"):
        sh.info_nce(Z, Z, temperature=tau)


def test_bad_reduction_and_lambda():
    with pytest.raises(ValueError, match="reduction"):
        sh.info_nce(Z, Z, reduction="avg")
    with pytest.raises(ValueError, match="lambda_offdiag"):
        sh.barlow_twins_loss(Z, Z, lambda_offdiag=-1)
    with pytest.raises(ValueError, match="at least 2 rows"):
        sh.barlow_twins_loss(np.ones((1, 3)), np.ones((1, 3)))


def test_diagnostics_reject_bad_input():
    with pytest.raises(ValueError, match="at least 2 rows"):
        sh.min_max_distance_ratio(np.ones((1, 3)))
    with pytest.raises(ValueError, match="z must be finite"):
        sh.min_max_distance_ratio(np.array([[0.0], [np.inf]]))
    with pytest.raises(ValueError, match="x must be 2-D"):
        sh.eigenvalue_spectrum(np.ones(3))
    with pytest.raises(ValueError, match="x must be finite"):
        sh.effective_rank(np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="eps"):
        sh.rankme(Z, eps=-1)
