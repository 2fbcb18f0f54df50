"""When an adapter acts, and how many groups the budget keeps: one schedule for every framework.

Steps count *completed optimizer steps* over the whole training (`step = 1` after the first
`optimizer.step()`; a second Keras `fit` continues the count). An entry with period `every`
acts after steps `every, 2 * every, ...` (`is_due`). `BudgetSchedule` adds the cubic budget of
gradual pruning (Zhu and Gupta, 2017; `sparsehead.budget.budget_schedule`),

    k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,   rounded up, for t0 < t < t1,

`G` for `t <= t0` and `k_f` for `t >= t1`, with `end_step=None` meaning `t1 = t0` (no ramp:
the budget holds from `begin_step` on).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_int
from .budget import budget_schedule, budget_steps, resolve_keep

__all__ = ["BudgetSchedule", "is_due"]


def is_due(step: int, every: int) -> bool:
    """Whether an entry with period `every` acts after optimizer step `step`.

    `step` counts completed steps from 1; the entry acts after steps `every`, `2 * every`, ...:
    `step % every == 0`.
    """
    step = check_int(step, "step", low=1)
    every = check_int(every, "every", low=1)
    return step % every == 0


class BudgetSchedule:
    """The L2,0 budget `k(t)` of `G` groups, ramped from `G` at `begin_step` to `keep` at
    `end_step`, applied after every `every`-th optimizer step.

    An adapter, after optimizer step `t` (from 1): if `due(t)`, project the weight onto
    `keep_at(t)` groups (`l20_project`). With `every > 1` the final budget is first applied
    at the first due step `>= end_step`.

    Args:
        groups: `G >= 1`, the number of groups of the weight.
        keep: the final budget: an int in `[1, G]` or a float fraction in `(0, 1]`
            (`sparsehead.budget.resolve_keep`; `0` is refused).
        begin_step: `t0 >= 0`; the budget is `G` up to and including `t0`.
        end_step: `t1 >= t0`, the step from which the budget is `k_f`; `None` means `t0`.
        every: act after steps `every, 2 * every, ...` (`>= 1`).

    Attributes: `groups`, `keep` (the resolved `k_f`, an int), `begin_step`, `end_step` (the
    resolved `t1`), `every`.
    """

    def __init__(
        self,
        groups: int,
        keep: int | float,
        *,
        begin_step: int = 0,
        end_step: int | None = None,
        every: int = 1,
    ) -> None:
        self.groups = check_int(groups, "groups", low=1)
        self.keep = resolve_keep(keep, self.groups)
        self.begin_step = check_int(begin_step, "begin_step", low=0)
        if end_step is None:
            end_step = self.begin_step
        self.end_step = check_int(end_step, "end_step", low=self.begin_step)
        self.every = check_int(every, "every", low=1)

    def __repr__(self) -> str:
        return (
            f"BudgetSchedule(groups={self.groups}, keep={self.keep}, "
            f"begin_step={self.begin_step}, end_step={self.end_step}, every={self.every})"
        )

    def keep_at(self, step: int) -> int:
        """`k(step)`, in exact integer arithmetic (the cubic above, rounded up)."""
        return budget_schedule(step, self.groups, self.keep, self.begin_step, self.end_step)

    def due(self, step: int) -> bool:
        """Whether to project after optimizer step `step` (`>= 1`): `is_due(step, every)`."""
        return is_due(step, self.every)

    def drop_steps(self) -> np.ndarray:
        """The steps `T` (int64, shape `(G - k_f,)`, non-decreasing) at which `k` drops:
        `k(t) = G - count(t >= T)` for every int `t`, for evaluating the schedule inside a
        compiled step with one comparison and a sum."""
        return budget_steps(self.groups, self.keep, self.begin_step, self.end_step)
