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

from sparsehead.controller import MEASURES, DualAscent, measure_fraction
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


@pytest.mark.parametrize("framework", list(loops.ADAPTIVE), ids=backend_id)
@pytest.mark.parametrize("measure", list(MEASURES))
def test_adaptive_l21_takes_the_core_dual_step_step_by_step(framework, measure):
    make_backend(framework)
    l21, every, target = 0.05, 3, 0.5
    lams, weights, group_axis = loops.ADAPTIVE[framework](target, measure, l21, every, STEPS)
    controller = DualAscent(target, measure=measure, dual_lr=1.0, every=every)
    previous = controller.clip(l21)
    updates = 0
    for t, (lam, w) in enumerate(zip(lams, weights, strict=True), start=1):
        if controller.due(t):
            expected = controller.update(previous, measure_fraction(w, group_axis, measure))
            updates += 1
        else:
            expected = previous
        # λ is held in float32 by Keras: one rounding
        assert math.isclose(lam, expected, rel_tol=1e-6), (t, lam, expected)
        previous = lam
    assert updates == STEPS // every
    assert len(set(lams)) > 1  # λ moved: the updates were taken
