"""Group Hoyer-square and its gradient, against brute force, finite differences and the math."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sparsehead as sh

from .strategies import grouped_weights
from .test_groups import brute_group_norms


def brute_hoyer(w, group_axis):
    g = brute_group_norms(w, group_axis)
    if not g.any():
        return 0.0
    g = g / g.max()  # HS(cW) = HS(W); keeps subnormal norms from squaring to 0
    return math.fsum(g) ** 2 / math.fsum(g * g)


def formula_gradient(w, group_axis):
    """`2 S/Q u_j - 2 S^2/Q^2 W_j` straight from design.md, in float64, evaluated at
    `W / m` (m = max norm) and divided by m (`grad HS(cW) = grad HS(W) / c`), so that
    subnormal weights do not square to 0."""
    w = np.asarray(w, np.float64)
    m = brute_group_norms(w, group_axis).max()
    if m == 0:
        return np.zeros_like(w)
    w = w / m
    g = brute_group_norms(w, group_axis)
    s, q = math.fsum(g), math.fsum(g * g)
    shape = [1] * w.ndim
    shape[group_axis] = g.size
    gb = g.reshape(shape)
    u = np.where(gb > 0, w / np.where(gb > 0, gb, 1.0), 0.0)
    return (2 * s / q * u - 2 * s**2 / q**2 * w) / m


def formula_scale(w, group_axis):
    """`2 S/Q`, the size of each of the formula's two terms (`|u_j| <= 1`, `S/Q |W_j| <= 1`):
    the floor for comparing a gradient whose terms cancel (one group: exactly 0)."""
    g = brute_group_norms(w, group_axis)
    return 2 * math.fsum(g / g.max()) / math.fsum((g / g.max()) ** 2) / g.max() if g.any() else 0


def dense_weights(min_norm=0.1):
    """`(w, group_axis)` in float64 with every group's norm at least `min_norm` (so that HS is
    differentiable there): entries in [-1, 1] plus one entry of each group pushed away from 0."""

    @st.composite
    def build(draw):
        w, ax = draw(grouped_weights(zero_groups=False, max_ndim=3, max_side=5))
        idx = [0] * w.ndim
        for j in range(w.shape[ax]):
            idx[ax] = j
            w[tuple(idx)] = math.copysign(abs(w[tuple(idx)]) + min_norm * 1e3, w[tuple(idx)])
        return w, ax

    return build()


@given(grouped_weights())
def test_matches_brute_force_float64(case):
    w, ax = case
    assert sh.group_hoyer(w, ax) == pytest.approx(brute_hoyer(w, ax), rel=1e-12, abs=0)


@given(grouped_weights(dtype=np.float32))
def test_matches_brute_force_float32(case):
    # float32 group norms are within 1e-6 of exact (test_groups); S^2 / Q then within
    # 2e-6 + 2e-6 relative.
    w, ax = case
    assert sh.group_hoyer(w, ax) == pytest.approx(brute_hoyer(w, ax), rel=4e-6, abs=0)


@given(grouped_weights())
def test_range_one_to_groups(case):
    w, ax = case
    assume(np.any(w))
    hs = sh.group_hoyer(w, ax)
    assert 1 - 1e-12 <= hs <= w.shape[ax] * (1 + 1e-12)


@given(grouped_weights(), st.sampled_from([-1e3, -1.0, 1e-3, 0.37, 1e5]))
def test_scale_invariant(case, c):
    w, ax = case
    assert sh.group_hoyer(c * w, ax) == pytest.approx(sh.group_hoyer(w, ax), rel=1e-12, abs=0)


@given(
    hnp.arrays(np.float64, st.integers(1, 6), elements=st.floats(0.1, 10)),
    hnp.arrays(np.bool_, (7,)),
)
def test_equal_norms_give_groups(v, signs):
    # Seven groups (rows) that are sign flips of one vector: exactly equal norms.
    w = np.where(signs[:, None], 1.0, -1.0) * v[None, :]
    assert sh.group_hoyer(w) == pytest.approx(7.0, rel=1e-14)


@given(grouped_weights(zero_groups=False), st.data())
def test_one_group_gives_one(case, data):
    w, ax = case
    j = data.draw(st.integers(0, w.shape[ax] - 1))
    mask = np.zeros(w.shape[ax], bool)
    mask[j] = True
    shape = [1] * w.ndim
    shape[ax] = w.shape[ax]
    w = w * mask.reshape(shape)
    assume(np.any(w))
    assert sh.group_hoyer(w, ax) == pytest.approx(1.0, rel=1e-14)


def test_zero_and_extreme_scales():
    assert sh.group_hoyer(np.zeros((4, 3))) == 0.0
    w = np.array([[3.0, 4.0], [0.0, 5.0], [0.0, 0.0]])  # norms 5, 5, 0: HS = 100 / 50
    assert sh.group_hoyer(w) == pytest.approx(2.0, rel=1e-15)
    for scale in (1e30, 1e-30):  # float32 squares overflow / underflow
        w32 = (w * scale).astype(np.float32)
        assert sh.group_hoyer(w32) == pytest.approx(2.0, rel=1e-6)
    assert sh.group_hoyer(w * 1e300) == pytest.approx(2.0, rel=1e-14)


# ---------------------------------------------------------------- gradient


@given(dense_weights())
def test_gradient_matches_central_differences(case):
    w, ax = case
    grad = sh.group_hoyer_gradient(w, ax)
    h = 1e-6 * np.abs(w).max()
    fd = np.empty_like(w)
    for i in np.ndindex(w.shape):
        e = np.zeros_like(w)
        e[i] = h
        fd[i] = (sh.group_hoyer(w + e, ax) - sh.group_hoyer(w - e, ax)) / (2 * h)
    # Central differences: truncation O(h^2 |HS'''|) and rounding O(eps HS / h); with h at
    # 1e-6 of the weights' scale both are below 1e-6 of the gradient's scale.
    scale = np.abs(grad).max() + 1.0 / np.abs(w).max()
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6 * scale)


@given(grouped_weights())
def test_gradient_matches_formula(case):
    w, ax = case
    grad = sh.group_hoyer_gradient(w, ax)
    expected = formula_gradient(w, ax)
    np.testing.assert_allclose(grad, expected, rtol=1e-10, atol=1e-13 * formula_scale(w, ax))


def orthogonality_bound(w, group_axis):
    """A bound on the rounding error of `<grad HS(W), W>`, whose exact value is 0.

    `<grad, W>` is the difference of two terms that cancel: with `S = sum g_j`, `Q = sum g_j^2`,
    `sum_i |2 S/Q u_i| |W_i| = 2 S^2/Q = 2 HS` and `sum_i |2 S^2/Q^2 W_i| |W_i| = 2 HS`. The
    error is relative to their size `4 HS`, not to `|grad|` (which is tiny where the group
    norms are nearly equal, so that the old bound `1e-10 |grad|_max |W|_1` was 100 times too
    small). Rounding enters through the group norms (sums of up to `n` squares), `S` and `Q`
    (sums of `G` terms), a few divisions and products, and the final dot product of `n` terms:
    a relative error of at most `(2 n + G + 8) eps` of `4 HS`, plus `n` subnormal ulps for the
    products `grad_i W_i` that underflow.
    """
    n, groups = w.size, w.shape[group_axis]
    info = np.finfo(w.dtype)
    return (2 * n + groups + 8) * info.eps * 4 * brute_hoyer(
        w, group_axis
    ) + n * info.smallest_subnormal


# Nearly equal group norms: |grad| is ~1e-7 of its terms (1.2e-15 against the old 2.4e-17).
@example(([[0.3, 0.7], [0.7, 0.3000001], [0.7467879938056768, 0.14935759876113536]], -2))
@given(grouped_weights())
def test_gradient_is_orthogonal_to_w_and_zero_on_zero_groups(case):
    # Euler: HS is homogeneous of degree 0, so <grad, W> = 0.
    w, ax = case
    w = np.asarray(w, np.float64)
    # Below a largest norm of ~1e-308 the gradient (of size 1/m) overflows float64.
    assume(sh.group_norms(w, ax).max() > 1e-300 or not w.any())
    grad = sh.group_hoyer_gradient(w, ax)
    assert abs(math.fsum((grad * w).ravel())) <= orthogonality_bound(w, ax)
    zero = brute_group_norms(w, ax) == 0
    assert not np.take(grad, np.flatnonzero(zero), axis=ax).any()


def test_gradient_at_zero_and_dtypes():
    for dtype in (np.float16, np.float32, np.float64):
        grad = sh.group_hoyer_gradient(np.zeros((3, 2), dtype))
        assert grad.dtype == dtype and not grad.any()
    assert sh.group_hoyer_gradient(np.eye(3, dtype=np.int64)).dtype == np.float64
    w = np.array([[1e30, 0.0], [2e30, 1e30]], np.float32)
    grad = sh.group_hoyer_gradient(w)
    assert grad.dtype == np.float32 and np.isfinite(grad).all()
    np.testing.assert_allclose(grad, formula_gradient(w, -2), rtol=1e-6)


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("fn", [sh.group_hoyer, sh.group_hoyer_gradient])
def test_bad_input(fn):
    for bad in (np.nan, np.inf):
        w = np.ones((3, 2))
        w[1, 0] = bad
        with pytest.raises(ValueError, match="w must be finite"):
            fn(w)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        fn(np.ones(3))
    with pytest.raises(ValueError, match="empty"):
        fn(np.ones((0, 3)))
    with pytest.raises(TypeError, match="real numbers"):
        fn(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="group_axis"):
        fn(np.ones((3, 2)), 1.0)
    with pytest.raises(ValueError, match="group_axis"):
        fn(np.ones((3, 2)), 2)
