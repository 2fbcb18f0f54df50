"""The L2,0 projection and the cubic budget schedule, against brute force and closed forms."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsehead as sh
from sparsehead.budget import budget_steps, resolve_keep

from .strategies import grouped_weights
from .test_groups import brute_group_norms


def brute_project(w, k, group_axis):
    """Sort `(-norm, index)` pairs; keep the first k groups."""
    g = brute_group_norms(w, group_axis)
    ranked = sorted(range(g.size), key=lambda j: (-g[j], j))
    out = np.zeros_like(w)
    for j in ranked[:k]:
        idx = [slice(None)] * w.ndim
        idx[group_axis] = j
        out[tuple(idx)] = w[tuple(idx)]
    return out


def nonzero_groups(w, group_axis):
    return int(np.count_nonzero(brute_group_norms(w, group_axis)))


@given(grouped_weights(), st.data())
def test_project_matches_brute_force(case, data):
    w, ax = case
    k = data.draw(st.integers(0, w.shape[ax]))
    np.testing.assert_array_equal(sh.l20_project(w, k, ax), brute_project(w, k, ax))


@given(grouped_weights(dtype=np.float32), st.data())
def test_project_keeps_exactly_k_groups_and_the_largest(case, data):
    w, ax = case
    k = data.draw(st.integers(0, w.shape[ax]))
    p = sh.l20_project(w, k, ax)
    assert p.dtype == np.float32
    assert nonzero_groups(p, ax) == min(k, nonzero_groups(w, ax))
    g = brute_group_norms(w, ax)
    kept = brute_group_norms(p, ax) > 0
    if kept.any() and (~kept).any():
        assert g[kept].min() >= g[~kept].max()
    # Kept groups are copied bit for bit.
    mask = np.take(np.ones_like(w), np.flatnonzero(kept), axis=ax)
    np.testing.assert_array_equal(
        np.take(p, np.flatnonzero(kept), axis=ax) * mask, np.take(w, np.flatnonzero(kept), axis=ax)
    )


@given(grouped_weights(), st.data())
def test_project_is_idempotent_and_in_place(case, data):
    w, ax = case
    k = data.draw(st.integers(0, w.shape[ax]))
    once = sh.l20_project(w, k, ax)
    np.testing.assert_array_equal(sh.l20_project(once, k, ax), once)
    v = w.copy()
    assert sh.l20_project(v, k, ax, out=v) is v
    np.testing.assert_array_equal(v, once)


def test_ties_go_to_the_lower_index():
    w = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [0.0, 2.0], [-1.0, 0.0]])
    # norms 1, 1, 1, 2, 1: keep the 2 and then the lowest indices.
    np.testing.assert_array_equal(sh.l20_project(w, 3), w * np.array([[1], [1], [0], [1], [0]]))
    np.testing.assert_array_equal(sh.l20_project(w.T, 2, -1), (w * [[1], [0], [0], [1], [0]]).T)


def test_fraction_keep_rounds_up():
    assert resolve_keep(0.25, 10) == 3
    assert resolve_keep(0.07, 100) == 7  # 0.07 * 100 is 7.000000000000001 in floats
    assert resolve_keep(1.0, 7) == 7
    assert resolve_keep(1e-9, 7) == 1
    assert resolve_keep(np.float32(0.5), 5) == 3
    assert resolve_keep(np.float32(0.3), 10) == 3  # float32 0.3 is 0.30000001192...
    assert resolve_keep(Fraction(1, 3), 7) == 3
    w = np.arange(1.0, 11.0)[:, None] * np.ones((1, 3))
    assert nonzero_groups(sh.l20_project(w, 0.25), -2) == 3


@given(st.floats(0, 1, exclude_min=True), st.integers(1, 10_000))
def test_fraction_is_the_exact_ceiling(frac, groups):
    k = resolve_keep(frac, groups)
    assert k - 1 < Fraction(repr(frac)) * groups <= k  # the decimal the user wrote


def test_project_out_and_dtypes():
    w = np.arange(6, dtype=np.int64).reshape(3, 2)
    p = sh.l20_project(w, 1)
    assert p.dtype == np.float64
    np.testing.assert_array_equal(p, [[0, 0], [0, 0], [4, 5]])
    out = np.empty((3, 2), np.float64)
    assert sh.l20_project(w, 2, out=out) is out
    np.testing.assert_array_equal(out, [[0, 0], [2, 3], [4, 5]])
    for bad in (np.empty((3, 2), np.float32), np.empty((2, 3)), [[0.0] * 2] * 3):
        with pytest.raises(ValueError, match="out"):
            sh.l20_project(w, 2, out=bad)
    h = np.ones((4, 2), np.float16)
    assert sh.l20_project(h, 0.5).dtype == np.float16


def test_bad_keep_and_input():
    w = np.ones((4, 2))
    for bad in (-1, 5, 0.0, 1.5, float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="keep"):
            sh.l20_project(w, bad)
    for bad in (True, "2", None, [2]):
        with pytest.raises(TypeError, match="keep"):
            sh.l20_project(w, bad)
    for value in (np.nan, np.inf):
        v = w.copy()
        v[0, 0] = value
        with pytest.raises(ValueError, match="w must be finite"):
            sh.l20_project(v, 2)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        sh.l20_project(np.ones(3), 1)
    with pytest.raises(TypeError, match="group_axis"):
        sh.l20_project(w, 1, group_axis="rows")


# ---------------------------------------------------------------- schedule


schedules = st.tuples(
    st.integers(1, 300), st.integers(0, 300), st.integers(0, 50), st.integers(0, 200)
).map(lambda t: (t[0], min(t[1], t[0]), t[2], t[2] + t[3]))


@given(schedules)
def test_schedule_endpoints_and_closed_form(args):
    groups, keep, t0, t1 = args
    assert sh.budget_schedule(t0 - 1 if t0 else 0, groups, keep, t0, t1) in (groups, keep)
    assert sh.budget_schedule(t1, groups, keep, t0, t1) == keep
    assert sh.budget_schedule(t1 + 7, groups, keep, t0, t1) == keep
    if t1 > t0:
        assert sh.budget_schedule(t0, groups, keep, t0, t1) == groups
    for t in range(t0 + 1, t1):
        v = keep + (groups - keep) * (1 - (t - t0) / (t1 - t0)) ** 3
        k = sh.budget_schedule(t, groups, keep, t0, t1)
        # the exact ceiling; float rounding can only matter within 1e-9 of an integer
        assert math.ceil(v - 1e-9) <= k <= math.ceil(v + 1e-9)


@given(schedules)
def test_schedule_is_non_increasing_and_budget_steps_agree(args):
    groups, keep, t0, t1 = args
    ks = [sh.budget_schedule(t, groups, keep, t0, t1) for t in range(t1 + 3)]
    assert all(a >= b for a, b in itertools.pairwise(ks))
    steps = budget_steps(groups, keep, t0, t1)
    assert steps.shape == (groups - keep,)
    assert [groups - int(np.count_nonzero(t >= steps)) for t in range(t1 + 3)] == ks


def test_schedule_by_hand():
    # G = 9, k_f = 1, t0 = 0, t1 = 2: k(1) = 1 + 8 / 8 = 2 exactly (no rounding up to 3).
    assert [sh.budget_schedule(t, 9, 1, 0, 2) for t in range(4)] == [9, 2, 1, 1]
    # G = 28, k_f = 1, t1 - t0 = 3: k(t0 + 2) = 1 + 27 / 27 = 2, k(t0 + 1) = 1 + 27 * 8 / 27.
    assert [sh.budget_schedule(t, 28, 1, 5, 8) for t in range(4, 10)] == [28, 28, 9, 2, 1, 1]
    assert sh.budget_schedule(3, 10, 0.25, 0, 0) == 3


def test_schedule_bad_input():
    with pytest.raises(ValueError, match="end_step"):
        sh.budget_schedule(0, 10, 2, 5, 4)
    with pytest.raises(ValueError, match="begin_step"):
        sh.budget_schedule(0, 10, 2, -1, 4)
    with pytest.raises(TypeError, match="step"):
        sh.budget_schedule(1.0, 10, 2, 0, 4)
    with pytest.raises(ValueError, match="groups"):
        sh.budget_schedule(0, 0, 0, 0, 4)
    with pytest.raises(ValueError, match="keep"):
        sh.budget_schedule(0, 10, 11, 0, 4)
