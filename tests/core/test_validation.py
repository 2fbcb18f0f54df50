"""Bad input gets a ValueError or TypeError that names the argument."""

from __future__ import annotations

import numpy as np
import pytest

import sparsehead as sh
from sparsehead._validation import (
    check_choice,
    check_float_dtype,
    check_int,
    check_nonempty,
    check_real,
    check_weight,
)

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
    one_inf = np.array(Z, dtype=float)
    one_inf[1, 2] = np.inf
    with pytest.raises(ValueError, match=f"{names[0]} must be finite"):
        fn(one_inf, Z)
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


# ---------------------------------------------------------------- the one checker set


@pytest.mark.parametrize(
    ("value", "kwargs", "error", "match"),
    [
        (True, {}, TypeError, "x must be a real number; got bool"),
        ("1", {}, TypeError, "x must be a real number; got str"),
        (float("nan"), {}, ValueError, "x must be finite"),
        (float("-inf"), {}, ValueError, "x must be finite"),
        (0.0, {"low": 0, "low_open": True}, ValueError, "x must be > 0; got 0.0"),
        (-1, {"low": 0}, ValueError, "x must be >= 0; got -1.0"),
        (2, {"high": 1}, ValueError, "x must be <= 1; got 2.0"),
        (1, {"high": 1, "high_open": True}, ValueError, "x must be < 1; got 1.0"),
        (1, {"low": 0, "high": 1, "low_open": True, "high_open": True}, ValueError,
         r"x must be in \(0, 1\); got 1.0"),
        (-0.5, {"low": 0, "high": 1}, ValueError, r"x must be in \[0, 1\]; got -0.5"),
    ],
)  # fmt: skip
def test_check_real_rejects(value, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_real(value, "x", **kwargs)


def test_check_real_accepts_the_bounds_it_should():
    assert check_real(np.float32(0.5), "x", low=0, high=1) == 0.5
    assert check_real(0, "x", low=0) == 0.0 and check_real(1, "x", high=1) == 1.0
    assert type(check_real(np.int64(3), "x")) is float


def test_check_int_and_choice():
    assert check_int(np.int64(3), "n", low=3) == 3
    for bad, error, match in [
        (2, ValueError, "n must be >= 3; got 2"),
        (3.0, TypeError, "n must be an int; got float"),
        (True, TypeError, "n must be an int; got bool"),
        (None, TypeError, "n must be an int; got NoneType"),
    ]:
        with pytest.raises(error, match=match):
            check_int(bad, "n", low=3)
    assert check_choice("b", "mode", ("a", "b")) == "b"
    with pytest.raises(ValueError, match=r"mode must be one of \['a', 'b'\]; got 'c'"):
        check_choice("c", "mode", ("a", "b"))
    with pytest.raises(TypeError, match="mode must be a str"):
        check_choice(1, "mode", ("a", "b"))


@pytest.mark.parametrize(
    "name", ["float16", "bfloat16", "float32", "float64", "torch.float32", "<dtype: 'float64'>"]
)
def test_check_float_dtype_accepts(name):
    check_float_dtype(name, "w")


@pytest.mark.parametrize(
    "name", ["int32", "int64", "uint8", "bool", "complex64", "torch.int64", "torch.bool", "<U1"]
)
def test_check_float_dtype_rejects(name):
    with pytest.raises(TypeError, match=f"w must be floating point; got dtype {name}"):
        check_float_dtype(name, "w")


def test_check_nonempty():
    check_nonempty((3, 2), -2, "w")
    for shape, axis in [((0, 2), -2), ((3, 0), -2), ((2, 3, 0), 0), ((), 0)]:
        with pytest.raises(ValueError, match=r"w must not be empty; got shape \("):
            check_nonempty(shape, axis, "w")


def test_check_weight_runs_every_check_in_order():
    assert check_weight("float32", (3, 2), -2) == 0
    assert check_weight("bfloat16", (2, 3, 4), -1, "kernel") == 2
    for args, error, match in [
        (("int64", (0,), 0), TypeError, "w must be floating point"),  # dtype first
        (("float32", (3,), 0), ValueError, r"w must have at least 2 dimensions; got shape \(3,\)"),
        (("float32", (3, 2), 2), ValueError, "group_axis=2 is out of range"),
        (("float32", (3, 2), 1.0), TypeError, "group_axis must be an int"),
        (("float32", (0, 2), 0), ValueError, r"w must not be empty; got shape \(0, 2\)"),
    ]:
        with pytest.raises(error, match=match):
            check_weight(*args)
