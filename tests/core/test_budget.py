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


def brute_rank_key(group):
    """NaN groups first, then groups holding +inf, then finite norms descending."""
    group = np.asarray(group, np.float64)
    if np.isnan(group).any():
        return (0, 0.0)
    if np.isinf(group).any():
        return (1, 0.0)
    return (2, -float(np.sqrt(math.fsum((group * group).ravel()))))


def brute_project(w, k, group_axis):
    """Sort `(rank key, index)` pairs; keep the first k groups."""
    g = brute_group_norms(w, group_axis) if np.isfinite(w).all() else None
    n = w.shape[group_axis]
    if g is None:
        keys = [brute_rank_key(np.take(w, j, axis=group_axis)) for j in range(n)]
    else:
        keys = [(2, -g[j]) for j in range(n)]
    ranked = sorted(range(n), key=lambda j: (keys[j], j))
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
    k = data.draw(st.integers(1, w.shape[ax]))
    np.testing.assert_array_equal(sh.l20_project(w, k, ax), brute_project(w, k, ax))


@given(grouped_weights(zero_groups=False), st.data())
def test_project_ranks_nan_then_inf_then_norms(case, data):
    """NaN/inf propagate: with some entries set to NaN or +-inf, the kept groups are NaN
    groups first, then inf groups, then the largest finite norms, ties to the lower index."""
    w, ax = case
    flat = w.reshape(-1)
    for i in data.draw(st.lists(st.integers(0, flat.size - 1), max_size=4)):
        flat[i] = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    k = data.draw(st.integers(1, w.shape[ax]))
    np.testing.assert_array_equal(sh.l20_project(w, k, ax), brute_project(w, k, ax))


def test_project_never_hides_nan():
    # Bug 6 of issue 18: norms [inf, 1, nan, 3], room for one: the NaN group is kept.
    w = np.array([[np.inf, 0.0], [1.0, 0.0], [np.nan, 1.0], [0.0, 3.0]])
    np.testing.assert_array_equal(sh.l20_project(w, 1), [[0, 0], [0, 0], [np.nan, 1], [0, 0]])
    np.testing.assert_array_equal(sh.l20_project(w, 2), [[np.inf, 0], [0, 0], [np.nan, 1], [0, 0]])
    np.testing.assert_array_equal(sh.l20_project(w, 3), w * [[1], [0], [1], [1]])
    # A group with both NaN and inf is a NaN group; NaN groups tie by index.
    v = np.array([[1.0, 2.0], [np.inf, np.nan], [np.nan, 0.0], [np.inf, 0.0]])
    np.testing.assert_array_equal(sh.l20_project(v, 1), [[0, 0], [np.inf, np.nan], [0, 0], [0, 0]])


@given(
    st.lists(st.sampled_from([0.0, 1.0, 2.0, np.inf, np.nan]), min_size=17, max_size=120), st.data()
)
def test_many_ties_go_to_the_lower_index(norms, data):
    """More than 16 tied groups (an unstable sort reorders ties beyond its insertion-sort size)."""
    w = np.array(norms)[:, None] * np.ones((1, 2))
    k = data.draw(st.integers(1, len(norms)))
    np.testing.assert_array_equal(sh.l20_project(w, k), brute_project(w, k, -2))


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
    for bad in (-1, 0, 5, 0.0, 1.5, float("nan"), float("inf"), -0.5):
        with pytest.raises(ValueError, match="keep must be"):
            sh.l20_project(w, bad)
    with pytest.raises(ValueError, match=r"keep must be >= 1 or a fraction in \(0, 1\]; got 0"):
        resolve_keep(0, 4)
    for bad in (True, "2", None, [2]):
        with pytest.raises(TypeError, match="keep"):
            sh.l20_project(w, bad)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        sh.l20_project(np.ones(3), 1)
    with pytest.raises(TypeError, match="group_axis"):
        sh.l20_project(w, 1, group_axis="rows")


# ---------------------------------------------------------------- schedule


schedules = st.tuples(
    st.integers(1, 300), st.integers(1, 300), st.integers(0, 50), st.integers(0, 200)
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
    with pytest.raises(ValueError, match="keep"):
        sh.budget_schedule(0, 10, 0, 0, 4)
