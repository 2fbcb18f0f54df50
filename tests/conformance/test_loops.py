"""The budget schedule and the adaptive-λ controller driven through each framework's real
training loop, compared after every optimizer step with the core's rule
(`sparsehead.schedule.BudgetSchedule`, `sparsehead.controller.DualAscent`).

The configurations expose off-by-one errors: `every > 1`, a ramp that starts after step 0,
`end_step=None` (the budget from `begin_step` on), a fraction `keep`, a second Keras `fit`
(the count continues), and each of the four measures.
"""

from __future__ import annotations

import math

import pytest

from sparsehead.controller import MEASURES, DampedPI, DualAscent, measure_fraction
from sparsehead.schedule import BudgetSchedule

from . import loops
from .conftest import backend_id, make_backend

STEPS = 12
BUDGETS = [  # keep, begin_step, end_step, every
    (2, 2, 7, 1),
    (3, 1, 9, 3),
    (0.25, 4, None, 2),
]


@pytest.mark.parametrize("framework", list(loops.BUDGET), ids=backend_id)
@pytest.mark.parametrize(("keep", "begin_step", "end_step", "every"), BUDGETS)
def test_budget_follows_the_core_schedule_step_by_step(
    framework, keep, begin_step, end_step, every
):
    make_backend(framework)  # skipped, with the reason, if the framework is missing
    counts = loops.BUDGET[framework](keep, begin_step, end_step, every, STEPS)
    schedule = BudgetSchedule(
        loops.GROUPS, keep, begin_step=begin_step, end_step=end_step, every=every
    )
    # a step that does not project leaves every group non-zero (the constant gradient)
    expected = [
        schedule.keep_at(t) if schedule.due(t) else loops.GROUPS for t in range(1, STEPS + 1)
    ]
    assert counts == expected


# the damped PI rule: a gain, damping and averaging that change every step after the first
PI = {"controller": "pi", "kp": 2.0, "nu": 0.6, "smoothing": 0.3}
RULES = {  # name -> (AdaptiveL21's keywords, the core rule it must follow, restart)
    "dual": ({}, lambda **kw: DualAscent(**kw), False),
    "pi": (PI, lambda **kw: DampedPI(kp=2.0, nu=0.6, smoothing=0.3, **kw), False),
    "pi-restart": (PI, lambda **kw: DampedPI(kp=2.0, nu=0.6, smoothing=0.3, **kw), True),
}
CASES = [(m, "dual") for m in MEASURES] + [
    ("frac_below_1pct", "pi"),  # the one measure that moves on this plant (0.375, then 0.5)
    ("frac_below_1pct", "pi-restart"),
]


@pytest.mark.parametrize("framework", list(loops.ADAPTIVE), ids=backend_id)
@pytest.mark.parametrize(("measure", "rule"), CASES)
def test_adaptive_l21_takes_the_core_dual_step_step_by_step(framework, measure, rule):
    """Each step's λ is the core rule's, fed the measure of the weight as it was after that
    step; the PI rule's state (ξ, s̄) carries over a second Keras fit and, with a restart,
    a checkpoint (`state_dict` into a new `AdaptiveL21` after step 5, not a multiple of 3)."""
    make_backend(framework)
    l21, every, target = 0.05, 3, 0.5
    keywords, core, restart = RULES[rule]
    lams, weights, group_axis = loops.ADAPTIVE[framework](
        target, measure, l21, every, STEPS, restart, **keywords
    )
    controller = core(target=target, measure=measure, dual_lr=1.0, every=every)
    previous = controller.clip(l21)
    updates, read = 0, []
    for t, (lam, w) in enumerate(zip(lams, weights, strict=True), start=1):
        if controller.due(t):
            read.append(measure_fraction(w, group_axis, measure))
            expected = controller.update(previous, read[-1])
            updates += 1
        else:
            expected = previous
        # λ is held in float32 by Keras: one rounding
        assert math.isclose(lam, expected, rel_tol=1e-6), (t, lam, expected)
        previous = lam
    assert updates == STEPS // every
    assert len(set(lams)) > 1  # λ moved: the updates were taken
    if rule != "dual":  # ξ and s̄ matter only where the measure moves between updates
        assert len(set(read)) > 1, read
