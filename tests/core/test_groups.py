"""The L2,1 norm, its subgradient and its prox, against brute force and against the math."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import sparsehead as sh

from .strategies import grouped_weights, like


def brute_group_norms(w, group_axis):
    """Exactly rounded float64 group norms: squares of float32/float64 are summed with fsum."""
    w = np.asarray(w, dtype=np.float64)
    out = []
    for j in range(w.shape[group_axis]):
        v = np.take(w, j, axis=group_axis).ravel()
        peak = max((abs(x) for x in v), default=0.0)
        if peak == 0:
            out.append(0.0)
            continue
        out.append(peak * math.sqrt(math.fsum((x / peak) ** 2 for x in v)))
    return np.array(out)


def brute_prox(w, t, group_axis):
    w = np.asarray(w, dtype=np.float64)
    out = np.zeros_like(w)
    for j, g in enumerate(brute_group_norms(w, group_axis)):
        idx = [slice(None)] * w.ndim
        idx[group_axis] = j
        if g > t:
            out[tuple(idx)] = (1 - t / g) * w[tuple(idx)]
    return out


# ---------------------------------------------------------------- exactness


@given(grouped_weights())
def test_group_norms_match_brute_force_float64(case):
    w, ax = case
    np.testing.assert_allclose(sh.group_norms(w, ax), brute_group_norms(w, ax), rtol=1e-12)


@given(grouped_weights(dtype=np.float32))
def test_group_norms_float32_within_1e6_of_float64_brute_force(case):
    # The bar: 1e-6 relative for float32 input (float32 rounding alone is 6e-8).
    # A norm in float32's subnormal range has an absolute spacing of 2**-149 (1.4e-45), so no
    # float32 result can be within 1e-6 relative there: one subnormal ulp is the floor.
    w, ax = case
    got = sh.group_norms(w, ax)
    assert got.dtype == np.float32
    np.testing.assert_allclose(
        got, brute_group_norms(w, ax), rtol=1e-6, atol=np.finfo(np.float32).smallest_subnormal
    )


@pytest.mark.parametrize("group_axis", [-2, -1])
def test_large_float32_matrix_within_1e6(group_axis):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((1024, 1024)).astype(np.float32)
    expected = np.sqrt(np.sum(w.astype(np.float64) ** 2, axis=1 if group_axis == -2 else 0))
    np.testing.assert_allclose(sh.group_norms(w, group_axis), expected, rtol=1e-6)
    assert sh.l21_norm(w, group_axis) == pytest.approx(expected.sum(), rel=1e-6)


@pytest.mark.parametrize("group_axis", [-2, -1, 0])
def test_no_overflow_or_underflow_in_float32(group_axis):
    w = np.full((4, 5), 1e30, dtype=np.float32)
    w[1] = 3e-30  # squares underflow float32
    w[2] = 0
    expected = brute_group_norms(w, group_axis)
    got = sh.group_norms(w, group_axis)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    assert sh.l21_norm(w, group_axis) == pytest.approx(expected.sum(), rel=1e-6)


def test_no_overflow_in_float64():
    w = np.array([[1e200, 1e200], [1e-200, 1e-200]])
    np.testing.assert_allclose(sh.group_norms(w), [math.sqrt(2) * 1e200, math.sqrt(2) * 1e-200])


def test_half_precision_accumulates_in_float32():
    # 300**2 * 2 = 180000 overflows float16 (max 65504); the norm 424.26 does not.
    w = np.full((3, 2), 300, dtype=np.float16)
    got = sh.group_norms(w)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, np.full(3, 300 * math.sqrt(2)), rtol=1e-6)
    ml_dtypes = pytest.importorskip("ml_dtypes")
    wb = np.full((3, 2), 300, dtype=ml_dtypes.bfloat16)
    np.testing.assert_allclose(sh.group_norms(wb), np.full(3, 300 * math.sqrt(2)), rtol=1e-6)


def test_conv_kernel_groups_are_input_channels():
    rng = np.random.default_rng(1)
    k = rng.standard_normal((3, 3, 4, 5))  # (kh, kw, in, out)
    expected = [np.linalg.norm(k[:, :, c, :]) for c in range(4)]
    np.testing.assert_allclose(sh.group_norms(k), expected, rtol=1e-12)


def test_torch_layout_groups_are_columns():
    w = np.array([[3.0, 0.0, 1.0], [4.0, 0.0, 1.0]])  # (out, in)
    np.testing.assert_allclose(sh.group_norms(w, group_axis=-1), [5.0, 0.0, math.sqrt(2)])
    assert sh.l21_norm(w, group_axis=-1) == pytest.approx(5 + math.sqrt(2))


def test_column_groups_many_rows_use_blocks():
    # More rows than one block: the blocked float64 accumulation path.
    rng = np.random.default_rng(2)
    w = rng.standard_normal((70_000, 3)).astype(np.float32)
    expected = np.sqrt((w.astype(np.float64) ** 2).sum(axis=0))
    np.testing.assert_allclose(sh.group_norms(w, -1), expected, rtol=1e-6)


# ---------------------------------------------------------------- the L2,1 norm is a norm


@given(
    grouped_weights(zero_groups=False),
    st.one_of(st.just(0.0), st.floats(1e-3, 10), st.floats(-10, -1e-3)),
)
@example(case=(np.array([[2.22507384e-316, 2.22507384e-316]]), 0), c=-2.0)  # found: subnormals
def test_absolute_homogeneity(case, c):
    w, ax = case
    # rel: float64 accumulation. abs: among subnormals the grid is absolute: each product c*w
    # is rounded to the subnormal spacing s of w's dtype (<= s/2 per element, so <= sqrt(g) s/2
    # per group of g, <= size * s/2 in all); each side's result is rounded to float64's grid
    # (<= s/2, times |c| on the right): (size / 2 + 2 (1 + |c|)) s bounds it.
    s = float(np.finfo(w.dtype).smallest_subnormal)
    expected = abs(c) * sh.l21_norm(w, ax)
    tol = (w.size / 2 + 2 * (1 + abs(c))) * s
    assert sh.l21_norm(c * w, ax) == pytest.approx(expected, rel=1e-12, abs=tol)


@given(grouped_weights(), st.data())
def test_triangle_inequality(case, data):
    w, ax = case
    v = data.draw(like(w))
    lhs = sh.l21_norm(w + v, ax)
    assert lhs <= (sh.l21_norm(w, ax) + sh.l21_norm(v, ax)) * (1 + 1e-12)


@given(grouped_weights())
def test_zero_only_at_zero(case):
    w, ax = case
    assert (sh.l21_norm(w, ax) == 0) == (not np.any(w))


@given(grouped_weights(), st.randoms(use_true_random=False))
def test_permuting_groups_permutes_norms(case, rnd):
    w, ax = case
    perm = list(range(w.shape[ax]))
    rnd.shuffle(perm)
    np.testing.assert_array_equal(
        sh.group_norms(np.take(w, perm, axis=ax), ax), sh.group_norms(w, ax)[perm]
    )


# ---------------------------------------------------------------- subgradient


@given(grouped_weights(), st.data())
def test_subgradient_inequality(case, data):
    w, ax = case
    v = data.draw(like(w))
    g = sh.l21_subgradient(w, ax)
    lhs = sh.l21_norm(v, ax)
    rhs = sh.l21_norm(w, ax) + float(np.sum(g * (v - w)))
    assert lhs >= rhs - 1e-9 * (1 + abs(lhs) + abs(rhs))


@given(grouped_weights())
def test_subgradient_is_unit_on_nonzero_groups_and_zero_elsewhere(case):
    w, ax = case
    g = sh.l21_subgradient(w, ax)
    gn = brute_group_norms(g, ax)
    nonzero = brute_group_norms(w, ax) > 0
    np.testing.assert_allclose(gn[nonzero], 1.0, rtol=1e-12)
    np.testing.assert_array_equal(gn[~nonzero], 0.0)
    assert np.isfinite(g).all()
    # Euler's identity for a 1-homogeneous function: <g, W> = ||W||_{2,1}.
    assert float(np.sum(g * w)) == pytest.approx(sh.l21_norm(w, ax), rel=1e-12, abs=1e-300)


def test_subgradient_dtypes():
    w = np.ones((2, 3), np.float32)
    assert sh.l21_subgradient(w).dtype == np.float32
    assert sh.l21_subgradient(np.ones((2, 3), np.int64)).dtype == np.float64
    big = np.full((2, 3), 3e38, np.float32)  # the group norm overflows float32
    np.testing.assert_allclose(sh.l21_subgradient(big), 1 / math.sqrt(3), rtol=1e-6)


# ---------------------------------------------------------------- prox


@given(grouped_weights(), st.floats(0, 5))
def test_prox_matches_brute_force(case, t):
    w, ax = case
    np.testing.assert_allclose(sh.l21_prox(w, t, ax), brute_prox(w, t, ax), rtol=1e-12, atol=1e-300)


@given(grouped_weights(), st.floats(0, 5))
def test_prox_optimality_condition(case, t):
    # p = prox_t(W)  <=>  (W - p) / t is a subgradient of ||.||_{2,1} at p:
    # equal to p_j / ||p_j|| where p_j != 0, and of norm <= 1 where p_j = 0.
    w, ax = case
    p = sh.l21_prox(w, t, ax)
    r = w - p
    pn = brute_group_norms(p, ax)
    rn = brute_group_norms(r, ax)
    scale = 1e-9 * (1 + np.abs(w).max())
    zero = pn == 0
    assert np.all(rn[zero] <= t + scale)
    np.testing.assert_allclose(rn[~zero], t, atol=scale)
    np.testing.assert_allclose(np.sum(r * p), t * pn.sum(), atol=scale * (1 + pn.sum()))


@given(grouped_weights(), st.floats(0, 5))
def test_moreau_identity(case, t):
    # W = prox_{t||.||}(W) + t * proj_{dual ball}(W / t); the dual norm is the L2,inf norm.
    w, ax = case
    p = sh.l21_prox(w, t, ax)
    g = np.maximum(brute_group_norms(w, ax), t)
    shape = [1] * w.ndim
    shape[ax] = -1
    proj = w * (t / np.where(g > 0, g, 1)).reshape(shape)  # t * projection of W/t on the ball
    np.testing.assert_allclose(p + proj, w, rtol=1e-12, atol=1e-12 * (1 + np.abs(w).max()))


@given(grouped_weights(), st.floats(0, 5), st.floats(0.01, 100))
def test_prox_scaling(case, t, c):
    w, ax = case
    np.testing.assert_allclose(
        sh.l21_prox(c * w, t, ax), c * sh.l21_prox(w, t / c, ax), rtol=1e-9, atol=1e-9 * c
    )


@given(grouped_weights(zero_groups=False), st.data(), st.floats(0, 5))
def test_prox_is_nonexpansive(case, data, t):
    w, ax = case
    v = data.draw(like(w))
    d_out = np.linalg.norm(sh.l21_prox(w, t, ax) - sh.l21_prox(v, t, ax))
    assert d_out <= np.linalg.norm(w - v) * (1 + 1e-12) + 1e-12


@given(grouped_weights())
def test_prox_at_zero_threshold_is_identity(case):
    w, ax = case
    np.testing.assert_array_equal(sh.l21_prox(w, 0.0, ax), w)


def test_group_at_threshold_goes_to_exactly_zero():
    w = np.array([[3.0, 4.0], [0.6, 0.8], [6.0, 8.0]], dtype=np.float32)
    p = sh.l21_prox(w, 5.0)
    np.testing.assert_array_equal(p[0], 0.0)
    np.testing.assert_array_equal(p[1], 0.0)
    np.testing.assert_allclose(p[2], [3.0, 4.0], rtol=1e-6)
    assert sh.group_sparsity(p) == pytest.approx(2 / 3)


def test_prox_out_in_place_and_dtypes():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 4)).astype(np.float32)
    expected = brute_prox(w, 1.0, -2)
    res = sh.l21_prox(w, 1.0, out=w)
    assert res is w
    np.testing.assert_allclose(w, expected, rtol=1e-6, atol=1e-7)
    h = rng.standard_normal((6, 4)).astype(np.float16)
    assert sh.l21_prox(h, 0.5).dtype == np.float16
    with pytest.raises(ValueError, match="out"):
        sh.l21_prox(w, 1.0, out=np.empty((6, 4), np.float64))
    with pytest.raises(ValueError, match="out"):
        sh.l21_prox(w, 1.0, out=np.empty((4, 6), np.float32))


# ---------------------------------------------------------------- sparsity measures


def test_group_sparsity_and_summary():
    w = np.zeros((10, 3))
    w[0] = 10.0  # 300 of the energy
    w[1] = 1.0  # 3
    w[2] = 0.05  # below 1 % of the largest norm
    w[3] = 0.001  # below 0.1 %
    assert sh.group_sparsity(w) == pytest.approx(0.6)
    assert sh.group_sparsity(w, atol=0.1) == pytest.approx(0.8)
    s = sh.sparsity_summary(w)
    assert s["groups"] == 10
    assert s["zero_groups"] == 6
    assert s["groups_95_energy"] == 1  # 300 / 303.0075 > 0.95
    assert s["frac_below_1pct"] == pytest.approx(0.8)
    assert s["frac_below_0p1pct"] == pytest.approx(0.7)
    assert s["l21"] == pytest.approx(math.sqrt(3) * (10 + 1 + 0.05 + 0.001))
    # Scale free: every measure but l21 is unchanged by a uniform rescaling.
    s2 = sh.sparsity_summary(1e-3 * w)
    assert {k: v for k, v in s2.items() if k != "l21"} == {k: v for k, v in s.items() if k != "l21"}


def test_summary_of_zero_matrix():
    s = sh.sparsity_summary(np.zeros((4, 2)))
    assert s["zero_groups"] == 4 and s["groups_95_energy"] == 0 and s["frac_below_1pct"] == 1.0
