"""λ from a sparsity target instead of a sweep: dual ascent on the L2,1 strength, in PyTorch.

"The head's sparsity reaches `s*`" is treated as a constraint and `λ` as its multiplier
(Gallego-Posada et al., "Controlled Sparsity via Constrained Optimization", NeurIPS 2022).
Every `every` optimizer steps the scale-free measure `s` of the chosen weights is read (the
core's `sparsehead.sparsity_summary`) and `λ` takes the multiplicative dual step

    λ <- max(λ_min, λ * exp(η * (s - s*)))     (measures where lower is sparser)
    λ <- max(λ_min, λ * exp(η * (s* - s)))     (measures where higher is sparser)

which is projected dual ascent on `log λ`: it stays positive and crosses decades in a few
updates from a poor `λ0`. The floor `λ_min` keeps `λ` where it can come back from.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from sparsehead import sparsity_summary
from sparsehead._validation import check_nonnegative, check_positive

from ._ops import l21_penalty
from ._targets import resolve

__all__ = ["MEASURES", "AdaptiveL21"]

# measure -> (value from sparsity_summary as a fraction of the groups, +1 if lower is sparser)
MEASURES = {
    "groups_95_energy": +1,
    "frac_below_1pct": -1,
    "frac_below_0p1pct": -1,
    "zero_groups": -1,
}


def measure_of(weight: torch.Tensor, group_axis: int, measure: str) -> float:
    """`measure` of `weight` as a fraction of its groups, by the core's `sparsity_summary`."""
    w = weight.detach().to("cpu")
    w = w.double() if w.dtype == torch.float64 else w.float()
    if not torch.isfinite(w).all():
        raise ValueError("targets: a chosen weight holds NaN or inf; λ cannot be updated")
    summary = sparsity_summary(w.numpy(), group_axis)
    value = summary[measure]
    return value / summary["groups"] if measure in ("groups_95_energy", "zero_groups") else value


class AdaptiveL21:
    """The L2,1 strength `λ` held as a value and driven towards a sparsity target.

    Use it with the penalty, `loss = loss + adaptive.penalty()` (`λ * sum_W ||W||_{2,1}` over
    the targets, Eq. 13), or with a `ProximalL21` passed as `prox=`, whose strength it then
    sets at each update. Call `adaptive.step()` after every `optimizer.step()`, or
    `adaptive.attach(optimizer)` once.

    Every `every` steps it reads `s`, the mean over the targets of `measure` as a fraction of
    each weight's groups (scale-free: it does not change when a weight is scaled), and updates
    `λ <- max(min_l21, λ * exp(dual_lr * (s - target)))` (sign reversed for measures where
    higher is sparser): `λ` grows while the weights are denser than the target, shrinks while
    they are sparser.

    Prefer `prox=`: the penalty's subgradient leaves the groups it would remove oscillating
    around 0 with an amplitude of about `lr * λ` (about `lr` under Adam, whatever `λ`),
    which the measure reads as dense, so `λ` can keep growing (to `max_l21`, with a warning).
    The prox sets them to exactly 0.

    Args:
        targets: parameters, or modules whose `.weight` is meant (e.g. `[model.head[-1]]`).
        target: `s*`, a fraction in `[0, 1]`.
        measure: `"groups_95_energy"` (the fewest groups holding 95 % of `||W||_F^2`, lower is
            sparser), `"frac_below_1pct"` / `"frac_below_0p1pct"` (groups below 1 % / 0.1 %
            of the largest, higher is sparser) or `"zero_groups"` (exact zeros, higher is
            sparser); see `sparsehead.sparsity_summary`.
        l21: `λ0 > 0`, the starting strength.
        dual_lr: `η > 0`; one update changes `λ` by at most a factor `exp(η)`.
        every: update `λ` every `every` optimizer steps (`>= 1`); between updates the primal
            steps let the weights follow the new `λ`.
        min_l21: the floor `λ_min > 0`.
        max_l21: the cap `λ_max >= min_l21`; reaching it warns (`RuntimeWarning`) that the
            measure does not respond to `λ` (e.g. the penalty under Adam, see above).
        group_axis: the axis that names a group; `None` infers it from the module (`-1` for
            `nn.Linear`, `1` for `nn.Conv*d`), as `ProximalL21` does.
        prox: an optional `ProximalL21` on the same weights, whose strength follows `λ`.

    Attributes: `l21` (the current `λ`, a float), `measure_value` (the last `s`, `None`
    before the first update), `history` (a list of `(step, λ, s)` per update, for logging).
    """

    def __init__(
        self,
        targets: Iterable[torch.Tensor | nn.Module] | torch.Tensor | nn.Module,
        target: float,
        measure: str = "groups_95_energy",
        l21: float = 1e-4,
        *,
        dual_lr: float = 1.0,
        every: int = 50,
        min_l21: float = 1e-12,
        max_l21: float = 1e3,
        group_axis: int | None = None,
        prox=None,
    ) -> None:
        resolved = resolve(targets, group_axis)
        chosen = [p for _, p, _ in resolved]
        self._axes = [ax for _, _, ax in resolved]
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {sorted(MEASURES)}; got {measure!r}")
        target = check_nonnegative(target, "target")
        if target > 1:
            raise ValueError(f"target must be a fraction in [0, 1]; got {target}")
        if isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1:
            raise ValueError(f"every must be an int >= 1; got {every!r}")
        self.min_l21 = check_positive(min_l21, "min_l21")
        self.max_l21 = check_positive(max_l21, "max_l21")
        if self.max_l21 < self.min_l21:
            raise ValueError(f"max_l21 must be >= min_l21 ({self.min_l21}); got {max_l21}")
        self.l21 = min(max(check_positive(l21, "l21"), self.min_l21), self.max_l21)
        self.dual_lr = check_positive(dual_lr, "dual_lr")
        if prox is not None and not hasattr(prox, "thresholds"):
            raise TypeError(f"prox must be a ProximalL21; got {type(prox).__name__}")
        self.targets = chosen
        self.target = target
        self.measure = measure
        self.every = int(every)
        self.group_axis = group_axis
        self.prox = prox
        self.step_count = 0
        self.measure_value: float | None = None
        self.history: list[tuple[int, float, float]] = []
        self._sync_prox()

    def _sync_prox(self) -> None:
        if self.prox is not None:
            # ProximalL21 names its strength `lam` (to become `l21`): set whichever it has.
            setattr(self.prox, "l21" if hasattr(self.prox, "l21") else "lam", self.l21)

    def current_measure(self) -> float:
        """`s` now: the mean over the targets of `measure`, as a fraction of the groups."""
        return float(
            np.mean(
                [
                    measure_of(p, ax, self.measure)
                    for p, ax in zip(self.targets, self._axes, strict=True)
                ]
            )
        )

    def penalty(self) -> torch.Tensor:
        """`λ * sum_W ||W||_{2,1}` over the targets, to add to the loss (a 0-d tensor)."""
        return self.l21 * sum(
            l21_penalty(p, ax) for p, ax in zip(self.targets, self._axes, strict=True)
        )

    def update(self) -> float:
        """One dual step from the measure now; returns the new `λ`."""
        s = self.current_measure()
        sign = MEASURES[self.measure]
        step = math.exp(sign * self.dual_lr * (s - self.target))
        self.l21 = min(self.max_l21, max(self.min_l21, self.l21 * step))
        if self.l21 == self.max_l21 and step > 1:
            warnings.warn(
                f"AdaptiveL21: λ reached max_l21={self.max_l21} with the measure at {s:.3g} "
                f"(target {self.target}): the weights do not get sparser as λ grows; with the "
                "penalty under Adam or a large lr, use prox=",
                RuntimeWarning,
                stacklevel=2,
            )
        self.measure_value = s
        self.history.append((self.step_count, self.l21, s))
        self._sync_prox()
        return self.l21

    def step(self) -> None:
        """Count one optimizer step; update `λ` every `every` steps."""
        self.step_count += 1
        if self.step_count % self.every == 0:
            self.update()

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.utils.hooks.RemovableHandle:
        """Run `step()` after every `optimizer.step()`; returns a handle with `.remove()`.

        Attach it after the `ProximalL21` hook, so that `s` is read after the prox."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer)}")
        return optimizer.register_step_post_hook(lambda *_: self.step())

    def state_dict(self) -> dict:
        return {"l21": self.l21, "step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.l21 = max(check_positive(state["l21"], "l21"), self.min_l21)
        self.step_count = int(state["step_count"])
        self._sync_prox()
