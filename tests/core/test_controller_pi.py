"""`DampedPI` (νPI in log λ on the averaged measure) against hand-derived sequences and an
independent closed form; its reductions to `DualAscent`; its period across a restart; the clip.

The closed form used here is the *position* form of the rule, written from the recursions
(Sohrabi et al., ICML 2024, Eq. 7), not from the code's velocity form: with no clip binding,

    log λ_t = log λ_0 + η Σ_{k<=t} e_k + η K_P (ξ_t - ξ_{-1}),   ξ_{-1} = e_0,
    ξ_t     = ν^{t+1} ξ_{-1} + (1 - ν) Σ_{k<=t} ν^{t-k} e_k,
    s̄_t     = β^t s_0 + (1 - β) Σ_{1<=k<=t} β^{t-k} s_k,      e_t = sign (s̄_t - s*).
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sparsehead.controller import (
    CONTROLLERS,
    MEASURES,
    PI_DEFAULTS,
    DampedPI,
    DualAscent,
    adaptive_controller,
    smooth_measure,
)

WIDE = {"min_l21": 1e-250, "max_l21": 1e250}  # never binds in the closed-form tests


def run(ctrl, l21, series):
    """λ after each update, feeding the measures of `series` in turn."""
    out = []
    for s in series:
        l21 = ctrl.update(l21, s)
        out.append(l21)
    return out


# ---------------------------------------------------------------- hand-derived sequences


def test_hand_derived_sequence_no_smoothing():
    # target 0.25, s = 0.75, 0.25, 0.05 (lower is sparser): e = 0.5, 0, -0.2
    # ν = 0.5: ξ_{-1} = 0.5, ξ = 0.5, 0.25, 0.025
    # steps η (e + K_P Δξ), η = 1, K_P = 2: 0.5, 0 - 0.5 = -0.5, -0.2 - 0.45 = -0.65
    ctrl = DampedPI(0.25, dual_lr=1.0, kp=2.0, nu=0.5, smoothing=0.0, **WIDE)
    got = [math.log(x) for x in run(ctrl, 1.0, [0.75, 0.25, 0.05])]
    assert got == pytest.approx([0.5, 0.0, -0.65], abs=1e-12)
    assert ctrl.state_dict() == pytest.approx({"xi": 0.025, "smoothed": 0.05})


def test_hand_derived_sequence_with_smoothing_and_step():
    # β = 0.5: s̄ = 0.75, 0.5, 0.275; e = 0.5, 0.25, 0.025; ξ (ν = 0.5) = 0.5, 0.375, 0.2
    # steps with η = 0.5, K_P = 2: 0.5 (0.5), 0.5 (0.25 - 0.25) = 0, 0.5 (0.025 - 0.35)
    ctrl = DampedPI(0.25, dual_lr=0.5, kp=2.0, nu=0.5, smoothing=0.5, **WIDE)
    got = [math.log(x / 3.0) for x in run(ctrl, 3.0, [0.75, 0.25, 0.05])]
    assert got == pytest.approx([0.25, 0.25, 0.25 - 0.1625], abs=1e-12)


@pytest.mark.parametrize("measure", ["frac_below_1pct", "frac_below_0p1pct", "zero_groups"])
def test_higher_is_sparser_flips_every_step(measure):
    """The same series on a measure where higher is sparser: every step of the first hand
    sequence, negated (the error, so ξ and both terms, change sign)."""
    ctrl = DampedPI(0.25, measure=measure, dual_lr=1.0, kp=2.0, nu=0.5, smoothing=0.0, **WIDE)
    got = [math.log(x) for x in run(ctrl, 1.0, [0.75, 0.25, 0.05])]
    assert got == pytest.approx([-0.5, 0.0, 0.65], abs=1e-12)


def test_nu_zero_is_the_classic_pi():
    # ν = 0: ξ = e, the step is η (e_t + K_P (e_t - e_{t-1})), and the first one η e_0.
    # e = 0.5, 0.1, -0.1, -0.1 (target 0.4); K_P = 3: 0.5, 0.1 - 1.2, -0.1 - 0.6, -0.1
    ctrl = DampedPI(0.4, kp=3.0, nu=0.0, smoothing=0.0, **WIDE)
    steps = [math.log(x) for x in run(ctrl, 1.0, [0.9, 0.5, 0.3, 0.3])]
    assert steps == pytest.approx([0.5, -0.6, -1.3, -1.4], abs=1e-12)


# ---------------------------------------------------------------- against the closed form


def position_form(series, target, sign, eta, kp, nu, beta):
    """log λ_t - log λ_0 after each update, from the position form in the module docstring."""
    out = []
    for t in range(len(series)):
        sbar = [
            beta**j * series[0]
            + (1 - beta) * sum(beta ** (j - k) * series[k] for k in range(1, j + 1))
            for j in range(t + 1)
        ]
        e = [sign * (x - target) for x in sbar]
        xi = nu ** (t + 1) * e[0] + (1 - nu) * sum(nu ** (t - k) * e[k] for k in range(t + 1))
        out.append(eta * sum(e) + eta * kp * (xi - e[0]))
    return out


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=12),
    st.floats(0.05, 0.95),
    st.sampled_from(sorted(MEASURES)),
    st.floats(0.01, 2.0),
    st.floats(0, 5),
    st.floats(0, 0.99),
    st.floats(0, 0.99),
)
def test_update_is_the_closed_form(series, target, measure, eta, kp, nu, beta):
    ctrl = DampedPI(target, measure=measure, dual_lr=eta, kp=kp, nu=nu, smoothing=beta, **WIDE)
    got = [math.log(x) for x in run(ctrl, 1.0, series)]
    want = position_form(series, target, MEASURES[measure], eta, kp, nu, beta)
    assert got == pytest.approx(want, abs=1e-9)


@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=12),
    st.floats(0.05, 0.95),
    st.sampled_from(sorted(MEASURES)),
    st.floats(0.01, 2.0),
    st.floats(0, 0.99),
)
def test_kp_zero_is_the_dual_step(series, target, measure, eta, nu):
    """`K_P = 0` (whatever `ν`), no smoothing: exactly `DualAscent`'s sequence."""
    pi = DampedPI(target, measure=measure, dual_lr=eta, kp=0.0, nu=nu, smoothing=0.0)
    dual = DualAscent(target, measure=measure, dual_lr=eta)
    assert run(pi, 1e-3, series) == pytest.approx(run(dual, 1e-3, series), rel=1e-12)


@given(st.lists(st.floats(0, 1), min_size=1, max_size=12), st.floats(0, 0.99))
def test_kp_zero_with_smoothing_is_the_dual_step_on_the_average(series, beta):
    pi = DampedPI(0.3, kp=0.0, nu=0.0, smoothing=beta)
    dual, l21, previous, want = DualAscent(0.3), 1e-3, None, []
    for s in series:
        previous = s if previous is None else beta * previous + (1 - beta) * s
        l21 = dual.update(l21, previous)
        want.append(l21)
    assert run(pi, 1e-3, series) == pytest.approx(want, rel=1e-12)


def test_smooth_measure():
    assert smooth_measure(None, 0.7, 0.9) == 0.7  # s̄_0 = s_0: no pull towards 0
    assert smooth_measure(0.2, 0.6, 0.75) == pytest.approx(0.3)
    assert smooth_measure(0.2, 0.6, 0.0) == 0.6


# ---------------------------------------------------------------- period and restart


@pytest.mark.parametrize("cut", [4, 5, 7])  # a restart after a step that is / is not due
def test_every_three_across_a_restart_matches_one_run(cut):
    """An adapter's loop (update after steps t with due(t)), stopped after `cut` steps and
    continued in a fresh controller from `state_dict()`: the same λ after every step."""
    series = [0.9, 0.8, 0.6, 0.5, 0.1, 0.05, 0.3, 0.2, 0.4, 0.25, 0.3, 0.7]
    kw = dict(every=3, kp=2.0, nu=0.6, smoothing=0.3)

    def loop(ctrl, l21, steps):
        lams = []
        for t in steps:
            if ctrl.due(t):
                l21 = ctrl.update(l21, series[t - 1])
            lams.append(l21)
        return lams

    whole = loop(DampedPI(0.3, **kw), 1e-3, range(1, 13))
    first = DampedPI(0.3, **kw)
    head = loop(first, 1e-3, range(1, cut + 1))
    second = DampedPI(0.3, **kw)
    second.load_state_dict(first.state_dict())
    tail = loop(second, head[-1], range(cut + 1, 13))
    assert head + tail == whole
    assert [t for t in range(1, 13) if DampedPI(0.3, **kw).due(t)] == [3, 6, 9, 12]
    # the lost state is seen: a fresh controller restarts ξ and s̄, and so λ's path
    third = DampedPI(0.3, **kw)
    assert head + loop(third, head[-1], range(cut + 1, 13)) != whole


# ---------------------------------------------------------------- clip


def test_clip_in_log_space_without_windup():
    ctrl = DampedPI(0.25, kp=0.0, nu=0.0, smoothing=0.0, min_l21=0.5, max_l21=2.0)
    up = run(ctrl, 1.0, [0.75, 0.75, 0.75])  # +0.5 per update
    assert up == pytest.approx([math.exp(0.5), 2.0, 2.0], rel=1e-12)
    assert ctrl.at_cap(up[-1])
    # no windup: the first step back starts from the cap, not from exp(1.5)
    assert ctrl.update(2.0, 0.0) == pytest.approx(2.0 * math.exp(-0.25), rel=1e-12)
    assert run(ctrl, 0.6, [0.0, 0.0]) == [0.5, 0.5]  # the floor
    huge = DampedPI(0.5, dual_lr=1e6)  # exp would overflow: the cap, no error
    assert huge.update(1.0, 1.0) == 1000.0
    assert DampedPI(0.5, dual_lr=1e6).update(1.0, 0.0) == 1e-12


# ---------------------------------------------------------------- arguments and state


def test_defaults_and_selection():
    ctrl = DampedPI(0.5)
    assert (ctrl.kp, ctrl.nu, ctrl.smoothing) == (
        PI_DEFAULTS["kp"],
        PI_DEFAULTS["nu"],
        PI_DEFAULTS["smoothing"],
    )
    assert ctrl.state_dict() == {"xi": None, "smoothed": None}
    assert set(CONTROLLERS) == {"dual", "pi"}
    args = (object, None, ["w"], 0.25, "zero_groups", 2.0, 3, 1e-6, 10.0)
    assert type(adaptive_controller(*args)) is DualAscent
    pi = adaptive_controller(*args, controller="pi", kp=0.5, smoothing=0.0)
    assert type(pi) is DampedPI and (pi.kp, pi.nu, pi.smoothing) == (0.5, PI_DEFAULTS["nu"], 0.0)
    assert (pi.measure, pi.dual_lr, pi.every, pi.min_l21, pi.max_l21) == (
        "zero_groups",
        2.0,
        3,
        1e-6,
        10.0,
    )
    with pytest.raises(ValueError, match="kp, nu apply to controller='pi' only"):
        adaptive_controller(*args, kp=1.0, nu=0.5)
    with pytest.raises(ValueError, match="controller must be one of"):
        adaptive_controller(*args, controller="pid")
    with pytest.raises(TypeError, match="controller must be a str"):
        adaptive_controller(*args, controller=DampedPI)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"kp": -1.0}, ValueError, "kp must be >= 0"),
        ({"nu": 1.0}, ValueError, r"nu must be in \[0, 1\)"),
        ({"nu": -0.1}, ValueError, r"nu must be in \[0, 1\)"),
        ({"smoothing": 1.0}, ValueError, r"smoothing must be in \[0, 1\)"),
        ({"kp": "1"}, TypeError, "kp must be a real number"),
        ({"nu": float("nan")}, ValueError, "nu must be finite"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        DampedPI(0.5, **kwargs)


def test_bad_state():
    ctrl = DampedPI(0.5)
    with pytest.raises(TypeError, match="state must be a dict"):
        ctrl.load_state_dict([0.1, 0.2])
    with pytest.raises(ValueError, match=r"unknown keys \['ki'\]"):
        ctrl.load_state_dict({"ki": 1.0})
    with pytest.raises(ValueError, match=r"smoothed must be in \[0, 1\]"):
        ctrl.load_state_dict({"xi": 0.1, "smoothed": 3.0})
    ctrl.update(1.0, 0.9)
    ctrl.load_state_dict({})  # an old checkpoint (DualAscent's or pre-PI): a fresh state
    assert ctrl.state_dict() == {"xi": None, "smoothed": None}
    with pytest.raises(ValueError, match="state of a DualAscent must be empty"):
        DualAscent(0.5).load_state_dict({"xi": 0.1})
