"""`measure_fraction` and `DualAscent` against brute force and the closed form of the dual step."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import sparsehead as sh
from sparsehead.controller import MEASURES, DualAscent, measure_fraction

from .test_groups import brute_group_norms

# The meaning of each measure, from docs/concepts.md: +1 where lower is sparser.
LOWER_IS_SPARSER = {
    "groups_95_energy": True,
    "frac_below_1pct": False,
    "frac_below_0p1pct": False,
    "zero_groups": False,
}


def brute_measure(w, group_axis, measure):
    g = brute_group_norms(w, group_axis)
    n = g.size
    if measure == "zero_groups":
        return sum(x == 0 for x in g) / n
    if measure.startswith("frac_below"):
        rel = 0.01 if measure == "frac_below_1pct" else 0.001
        return sum(x < rel * g.max() for x in g) / n if g.max() > 0 else 1.0
    energy = sorted((x * x for x in g), reverse=True)
    total = sum(energy)
    if total == 0:
        return 0.0
    return next(k for k in range(1, n + 1) if sum(energy[:k]) >= 0.95 * total) / n


def test_measures_table():
    assert set(MEASURES) == set(LOWER_IS_SPARSER)
    assert all(MEASURES[m] == (1 if LOWER_IS_SPARSER[m] else -1) for m in MEASURES)


# Small-integer entries: energies and their partial sums are exact, so the 95 % boundary is
# decided the same way by any correct implementation.
int_weights = st.tuples(st.integers(1, 12), st.integers(1, 4), st.sampled_from([-2, -1])).flatmap(
    lambda t: st.tuples(
        hnp.arrays(np.float64, t[:2], elements=st.integers(-3, 3).map(float)), st.just(t[2])
    )
)


@given(int_weights, st.sampled_from(sorted(MEASURES)), st.sampled_from([1e-3, 1.0, 1e3]))
def test_measure_fraction_matches_brute_force_and_is_scale_free(case, measure, scale):
    w, ax = case
    s = measure_fraction(w, ax, measure)
    assert isinstance(s, float) and 0 <= s <= 1
    assert s == pytest.approx(brute_measure(w, ax, measure), abs=1e-15)
    assert measure_fraction(scale * w, ax, measure) == pytest.approx(s, abs=1e-15)


def test_measure_fraction_by_hand():
    w = np.array([[3.0, 4.0], [0.0, 0.0], [0.0, 0.001], [1.0, 0.0]])  # norms 5, 0, 1e-3, 1
    assert measure_fraction(w, -2, "zero_groups") == 0.25  # a fraction, not the count 1
    assert measure_fraction(w, -2, "groups_95_energy") == 0.25  # 25 of 26.000001 >= 95 %
    assert measure_fraction(w, -2, "frac_below_1pct") == 0.5  # 0 and 1e-3 < 0.05
    assert measure_fraction(w, -2, "frac_below_0p1pct") == 0.5  # 0 and 1e-3 < 5e-3
    with pytest.raises(ValueError, match="measure must be one of"):
        measure_fraction(w, -2, "groups")
    with pytest.raises(ValueError, match="w must be finite"):
        measure_fraction(np.array([[np.nan, 1.0]]), -1, "zero_groups")


def closed_form(l21, s, target, measure, dual_lr, lo, hi):
    """The projected step on log λ, written independently: clip(log λ + sign η (s - s*))."""
    sign = 1 if LOWER_IS_SPARSER[measure] else -1
    return math.exp(
        min(math.log(hi), max(math.log(lo), math.log(l21) + sign * dual_lr * (s - target)))
    )


@given(
    st.floats(1e-12, 1e3),
    st.floats(0, 1),
    st.floats(0.01, 0.99),
    st.sampled_from(sorted(MEASURES)),
    st.floats(0.01, 50),
    st.floats(1e-12, 1e-2),
    st.floats(1e-1, 1e3),
)
def test_update_is_the_closed_form(l21, s, target, measure, dual_lr, lo, hi):
    ctrl = DualAscent(target, measure=measure, dual_lr=dual_lr, min_l21=lo, max_l21=hi)
    got = ctrl.update(l21, s)
    assert got == pytest.approx(closed_form(l21, s, target, measure, dual_lr, lo, hi), rel=1e-12)
    assert lo <= got <= hi
    assert ctrl.at_cap(got) == (got >= hi)


@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_update_direction_and_clip(measure):
    ctrl = DualAscent(0.3, measure=measure, dual_lr=0.5)
    denser = 0.6 if LOWER_IS_SPARSER[measure] else 0.0  # 0.3 less sparse than the target
    assert ctrl.update(1e-3, denser) == pytest.approx(1e-3 * math.exp(0.15), rel=1e-14)
    sparser = 0.0 if LOWER_IS_SPARSER[measure] else 0.6
    assert ctrl.update(1e-3, sparser) == pytest.approx(1e-3 * math.exp(-0.15), rel=1e-14)
    assert ctrl.update(1e-3, 0.3) == 1e-3
    huge = DualAscent(0.5, measure=measure, dual_lr=1e6)  # exp overflows: the cap, no error
    assert huge.update(1.0, 1.0 if LOWER_IS_SPARSER[measure] else 0.0) == 1000.0
    assert huge.at_cap(1000.0) and not huge.at_cap(999.0)
    assert huge.update(1.0, 0.0 if LOWER_IS_SPARSER[measure] else 1.0) == 1e-12
    assert ctrl.clip(1e9) == 1000.0 and ctrl.clip(1e-20) == 1e-12 and ctrl.clip(0.5) == 0.5


@given(st.integers(2, 9), st.integers(1, 100))
def test_a_loop_updates_every_every_steps(every, n):
    """The loop an adapter runs: after optimizer step t (from 1), update if due(t)."""
    ctrl = DualAscent(0.4, dual_lr=0.25, every=every)
    l21, updates = 1e-4, []
    for t in range(1, n + 1):
        if ctrl.due(t):
            l21 = ctrl.update(l21, 0.9)
            updates.append(t)
    assert updates == list(range(every, n + 1, every))
    assert l21 == pytest.approx(1e-4 * math.exp(0.25 * 0.5 * len(updates)), rel=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"target": 0.0}, ValueError, r"target must be in \(0, 1\)"),
        ({"target": 1.0}, ValueError, r"target must be in \(0, 1\)"),
        ({"target": "0.5"}, TypeError, "target must be a real number"),
        ({"target": 0.5, "measure": "groups"}, ValueError, "measure must be one of"),
        ({"target": 0.5, "measure": 3}, TypeError, "measure must be a str"),
        ({"target": 0.5, "dual_lr": 0.0}, ValueError, "dual_lr must be > 0"),
        ({"target": 0.5, "every": 0}, ValueError, "every must be >= 1"),
        ({"target": 0.5, "every": None}, TypeError, "every must be an int"),
        ({"target": 0.5, "min_l21": 0.0}, ValueError, "min_l21 must be > 0"),
        ({"target": 0.5, "min_l21": 1.0, "max_l21": 0.5}, ValueError, "max_l21 must be >= 1"),
        ({"target": float("nan")}, ValueError, "target must be finite"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DualAscent(**kwargs)


def test_bad_update_arguments_and_defaults():
    ctrl = DualAscent(0.5)
    assert (ctrl.measure, ctrl.dual_lr, ctrl.every, ctrl.min_l21, ctrl.max_l21) == (
        "groups_95_energy",
        1.0,
        50,
        1e-12,
        1000.0,
    )
    with pytest.raises(ValueError, match="s must be finite"):
        ctrl.update(1.0, float("nan"))
    with pytest.raises(ValueError, match=r"s must be in \[0, 1\]"):
        ctrl.update(1.0, 3.0)  # a count, not a fraction
    with pytest.raises(ValueError, match="l21 must be > 0"):
        ctrl.update(0.0, 0.5)
    assert sh.DualAscent is DualAscent
    with pytest.raises(TypeError):
        DualAscent(0.5, "zero_groups")  # measure is keyword-only


class _Prox:
    """A stand-in for a framework's ProximalL21."""


DEFAULTS = ("groups_95_energy", 1.0, 50, 1e-12, 1000.0)  # DualAscent's, as the adapters pass


def test_adaptive_controller_checks_prox_and_targets_then_builds_the_controller():
    from sparsehead.controller import adaptive_controller

    ctrl = adaptive_controller(_Prox, _Prox(), None, 0.25, "zero_groups", 2.0, 3, 1e-6, 10.0)
    assert (ctrl.target, ctrl.measure, ctrl.dual_lr, ctrl.every) == (0.25, "zero_groups", 2.0, 3)
    assert (ctrl.min_l21, ctrl.max_l21) == (1e-6, 10.0)
    assert adaptive_controller(_Prox, None, ["w"], 0.25, *DEFAULTS).every == 50
    with pytest.raises(TypeError, match="prox must be a _Prox; got int"):
        adaptive_controller(_Prox, 3, ["w"], 0.25, *DEFAULTS)
    with pytest.raises(TypeError, match="targets must be given when prox is None"):
        adaptive_controller(_Prox, None, None, 0.25, *DEFAULTS)
    with pytest.raises(ValueError, match="target must be"):
        adaptive_controller(_Prox, None, ["w"], 1.0, *DEFAULTS)
