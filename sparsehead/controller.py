"""λ from a sparsity target: the dual-ascent controller every adapter's `AdaptiveL21` runs.

"The head's sparsity measure `s(W)` reaches `s*`" is treated as a constraint and the L2,1
strength `λ` as its Lagrange multiplier (Gallego-Posada et al., "Controlled Sparsity via
Constrained Optimization", NeurIPS 2022). Every `every` optimizer steps `λ` takes the
multiplicative dual step, projected onto `[min_l21, max_l21]`,

    λ <- clip(λ * exp(sign * η * (s - s*)), min_l21, max_l21),

with `sign = MEASURES[measure]`: `+1` for a measure where lower is sparser (λ grows while the
weights are denser than the target), `-1` where higher is sparser. It is projected gradient
ascent on `log λ`: `λ` stays positive, one step changes it by at most a factor `exp(η)`, and it
crosses decades in a few updates from a poor `λ0`.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import check_choice, check_int, check_real
from .groups import sparsity_summary
from .schedule import is_due

__all__ = ["MEASURES", "DualAscent", "measure_fraction"]

# measure -> sign: +1 if lower is sparser, -1 if higher is sparser. Each is a fraction of the
# groups in [0, 1] (`measure_fraction`), unchanged when the weight is scaled.
MEASURES: dict[str, int] = {
    "groups_95_energy": +1,
    "frac_below_1pct": -1,
    "frac_below_0p1pct": -1,
    "zero_groups": -1,
}


def measure_fraction(w: np.ndarray, group_axis: int, measure: str) -> float:
    """`measure` of `w` as a fraction of its `G` groups, in `[0, 1]`.

    `groups_95_energy / G` (the fewest groups holding 95 % of `||W||_F^2`), `frac_below_1pct`,
    `frac_below_0p1pct` (groups below 1 % / 0.1 % of the largest norm), `zero_groups / G`
    (groups exactly 0); from `sparsehead.sparsity_summary`. A weight holding NaN or inf is
    refused (`ValueError`): a measure of it would mean nothing.
    """
    check_choice(measure, "measure", MEASURES)
    summary = sparsity_summary(w, group_axis)
    value = summary[measure]
    if measure in ("groups_95_energy", "zero_groups"):
        return value / summary["groups"]
    return float(value)


class DualAscent:
    """The rule that drives a measure towards `target` by moving `λ` (see the module).

    Args:
        target: `s*`, a fraction in the open interval `(0, 1)`.
        measure: one of `MEASURES` (`measure_fraction`).
        dual_lr: `η > 0`.
        every: update after optimizer steps `every, 2 * every, ...` (`>= 1`).
        min_l21: the floor `λ_min > 0`.
        max_l21: the cap `λ_max >= min_l21`.

    Attributes: the arguments, and `sign` (`MEASURES[measure]`).
    """

    def __init__(
        self,
        target: float,
        *,
        measure: str = "groups_95_energy",
        dual_lr: float = 1.0,
        every: int = 50,
        min_l21: float = 1e-12,
        max_l21: float = 1000.0,
    ) -> None:
        self.target = check_real(target, "target", low=0, high=1, low_open=True, high_open=True)
        self.measure = check_choice(measure, "measure", MEASURES)
        self.sign = MEASURES[self.measure]
        self.dual_lr = check_real(dual_lr, "dual_lr", low=0, low_open=True)
        self.every = check_int(every, "every", low=1)
        self.min_l21 = check_real(min_l21, "min_l21", low=0, low_open=True)
        self.max_l21 = check_real(max_l21, "max_l21", low=self.min_l21)

    def __repr__(self) -> str:
        return (
            f"DualAscent({self.target}, measure={self.measure!r}, dual_lr={self.dual_lr}, "
            f"every={self.every}, min_l21={self.min_l21}, max_l21={self.max_l21})"
        )

    def due(self, step: int) -> bool:
        """Whether to update after optimizer step `step` (`>= 1`): `is_due(step, every)`."""
        return is_due(step, self.every)

    def clip(self, l21: float) -> float:
        """`l21` projected onto `[min_l21, max_l21]`."""
        return self._clip(check_real(l21, "l21", low=0, low_open=True))

    def _clip(self, l21: float) -> float:
        return min(self.max_l21, max(self.min_l21, l21))

    def update(self, l21: float, s: float) -> float:
        """One dual step: `clip(l21 * exp(sign * dual_lr * (s - target)))`.

        `l21 > 0` is the current `λ`, `s` the measure now, a fraction in `[0, 1]`.
        """
        l21 = check_real(l21, "l21", low=0, low_open=True)
        s = check_real(s, "s", low=0, high=1)
        # exp overflows above ~709.78 (OverflowError); the clip gives max_l21 either way, and
        # a product that overflows to inf or underflows to 0 is clipped too.
        factor = math.exp(min(self.sign * self.dual_lr * (s - self.target), 709.0))
        return self._clip(l21 * factor)

    def at_cap(self, l21: float) -> bool:
        """Whether `l21` sits at the cap `max_l21` (the measure did not respond to `λ`)."""
        return check_real(l21, "l21", low=0, low_open=True) >= self.max_l21


def adaptive_controller(
    prox_type, prox, targets, target, measure, dual_lr, every, min_l21, max_l21
) -> DualAscent:
    """The checks every framework's `AdaptiveL21` shares, then its `DualAscent` (the other
    arguments are `DualAscent`'s, all given: the adapters pass their own, documented, values).

    `prox` is `None` or a `prox_type` (the framework's `ProximalL21`); `targets=None` needs a
    `prox`, whose weights then are the targets. Both mistakes are a `TypeError`, as a missing
    or wrongly typed argument is.
    """
    if prox is not None and not isinstance(prox, prox_type):
        raise TypeError(f"prox must be a {prox_type.__name__}; got {type(prox).__name__}")
    if targets is None and prox is None:
        raise TypeError("targets must be given when prox is None (AdaptiveL21 takes its weights)")
    return DualAscent(
        target, measure=measure, dual_lr=dual_lr, every=every, min_l21=min_l21, max_l21=max_l21
    )
