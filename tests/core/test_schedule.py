"""`is_due` and `BudgetSchedule` against brute force: the period from the definition, the
cubic `k(t)` in exact rationals, `end_step=None` as no ramp."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsehead as sh
from sparsehead.schedule import BudgetSchedule, is_due


def brute_keep(t, groups, kf, t0, t1):
    """The cubic budget evaluated on exact rationals and rounded up."""
    if t <= t0 and t < t1:
        return groups
    if t >= t1:
        return kf
    return math.ceil(kf + (groups - kf) * Fraction(t1 - t, t1 - t0) ** 3)


@given(st.integers(2, 12), st.integers(1, 60))
def test_due_is_every_multiple_counted_from_one(every, n):
    due = [t for t in range(1, n + 1) if is_due(t, every)]
    assert due == list(range(every, n + 1, every))  # first after `every` steps, not after 1


def test_due_with_every_one_is_every_step_and_bad_steps():
    assert all(is_due(t, 1) for t in range(1, 20))
    assert [is_due(t, 3) for t in range(1, 7)] == [False, False, True, False, False, True]
    with pytest.raises(ValueError, match="step must be >= 1"):
        is_due(0, 2)
    with pytest.raises(ValueError, match="every must be >= 1"):
        is_due(4, 0)
    with pytest.raises(TypeError, match="every must be an int"):
        is_due(4, 2.0)


keeps = st.one_of(st.integers(1, 300), st.floats(0, 1, exclude_min=True))


@given(st.integers(1, 300), keeps, st.integers(0, 40), st.one_of(st.none(), st.integers(0, 60)))
def test_keep_at_is_the_exact_cubic(groups, keep, t0, ramp):
    keep = min(keep, groups) if isinstance(keep, int) else keep
    end = None if ramp is None else t0 + ramp
    sched = BudgetSchedule(groups, keep, begin_step=t0, end_step=end)
    kf = keep if isinstance(keep, int) else math.ceil(Fraction(repr(keep)) * groups)
    t1 = t0 if end is None else end
    assert (sched.groups, sched.keep, sched.begin_step, sched.end_step) == (groups, kf, t0, t1)
    for t in range(0, t1 + 3):
        assert sched.keep_at(t) == brute_keep(t, groups, kf, t0, t1), t
    drops = sched.drop_steps()
    assert drops.dtype == np.int64 and drops.shape == (groups - kf,)
    assert [groups - int(np.count_nonzero(t >= drops)) for t in range(t1 + 3)] == [
        sched.keep_at(t) for t in range(t1 + 3)
    ]


def test_end_step_none_means_no_ramp():
    sched = BudgetSchedule(10, 2, begin_step=5)
    assert sched.end_step == 5
    assert [sched.keep_at(t) for t in range(3, 8)] == [10, 10, 2, 2, 2]
    assert BudgetSchedule(10, 0.25).keep_at(1) == 3


@given(st.integers(2, 9), st.integers(1, 80))
def test_due_steps_of_a_ramp(every, n):
    """What an adapter applies: after each due step t, `keep_at(t)` groups."""
    sched = BudgetSchedule(16, 2, begin_step=3, end_step=13, every=every)
    applied = [(t, sched.keep_at(t)) for t in range(1, n + 1) if sched.due(t)]
    assert [t for t, _ in applied] == list(range(every, n + 1, every))
    assert [k for _, k in applied] == [brute_keep(t, 16, 2, 3, 13) for t, _ in applied]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((10, 0), {}, ValueError, r"keep must be >= 1 or a fraction in \(0, 1\]"),
        ((10, 11), {}, ValueError, "keep must be <= 10"),
        ((10, 0.0), {}, ValueError, "keep must be"),
        ((10, True), {}, TypeError, "keep"),
        ((0, 1), {}, ValueError, "groups must be >= 1"),
        ((10.0, 1), {}, TypeError, "groups must be an int"),
        ((10, 2), {"begin_step": -1}, ValueError, "begin_step must be >= 0"),
        ((10, 2), {"begin_step": 5, "end_step": 4}, ValueError, "end_step must be >= 5"),
        ((10, 2), {"every": 0}, ValueError, "every must be >= 1"),
        ((10, 2), {"every": 1.5}, TypeError, "every must be an int"),
    ],
)
def test_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        BudgetSchedule(*args, **kwargs)


def test_exported_and_keyword_only():
    assert sh.BudgetSchedule is BudgetSchedule
    with pytest.raises(TypeError):
        BudgetSchedule(10, 2, 0)  # begin_step is keyword-only
