"""λ from a sparsity target instead of a sweep: dual ascent on the L2,1 strength, in PyTorch.

"The head's sparsity reaches `s*`" is treated as a constraint and `λ` as its multiplier
(Gallego-Posada et al., "Controlled Sparsity via Constrained Optimization", NeurIPS 2022).
After optimizer steps `every, 2 * every, ...` the scale-free measure `s` of the chosen weights
is read (the core's `sparsehead.controller.measure_fraction`, a fraction of the groups) and `λ`
takes the core's multiplicative dual step (`sparsehead.controller.DualAscent`)

    λ <- clip(λ * exp(η * (s - s*)), λ_min, λ_max)     (measures where lower is sparser)
    λ <- clip(λ * exp(η * (s* - s)), λ_min, λ_max)     (measures where higher is sparser)

which is projected dual ascent on `log λ`: it stays positive and crosses decades in a few
updates from a poor `λ0`. The floor `λ_min` keeps `λ` where it can come back from.
`controller="pi"` takes the core's damped PI step instead (`sparsehead.controller.DampedPI`,
νPI in `log λ` on the averaged measure).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np
import torch
from torch import nn

from sparsehead._validation import check_int, check_positive
from sparsehead.controller import MEASURES, adaptive_controller, measure_fraction

from .._deprecation import legacy
from ._ops import l21_norm
from ._prox import ProximalL21
from ._targets import resolve

__all__ = ["MEASURES", "AdaptiveL21"]


def _acc(p: torch.Tensor) -> torch.dtype:
    return torch.float64 if p.dtype == torch.float64 else torch.float32


def measure_of(w: torch.Tensor, group_axis: int, measure: str) -> float:
    """`measure` of `w` as a fraction of its groups (the core's `measure_fraction`).

    The one read from the device of `AdaptiveL21`, once per update (every `every` steps)."""
    x = w.detach().to("cpu")  # the copy to the host: everything after runs there
    x = (x.double() if x.dtype == torch.float64 else x.float()).numpy()
    if not np.isfinite(x).all():
        raise ValueError("targets: a chosen weight holds NaN or inf; λ cannot be updated")
    return measure_fraction(x, group_axis, measure)


class AdaptiveL21:
    """The L2,1 strength `λ` held as a value and driven towards a sparsity target.

    Use it with a `ProximalL21` passed as `prox=`, whose strength it then sets at each
    update, or with the penalty, `loss = loss + adaptive.penalty()` (`λ * sum_W ||W||_{2,1}`
    over the targets, Eq. 13). Call `adaptive.step()` after every `optimizer.step()`, or
    `adaptive.attach(optimizer)` once.

    After optimizer steps `every, 2 * every, ...` it reads `s`, the mean over the targets of
    `measure` as a fraction of each weight's groups (scale-free: it does not change when a
    weight is scaled), and takes the core's dual step (`sparsehead.controller.DualAscent`):
    `λ <- clip(λ * exp(dual_lr * (s - target)), min_l21, max_l21)` (sign reversed for
    measures where higher is sparser): `λ` grows while the weights are denser than the
    target, shrinks while they are sparser. `controller="pi"` takes the damped PI step of
    `sparsehead.controller.DampedPI` instead (νPI, Sohrabi et al. 2024): the same integral
    step on the averaged measure `s̄`, plus `kp` times the change of the error's average `ξ`
    (damping `nu`); its state `(ξ, s̄)` is part of `state_dict()`.

    Prefer `prox=`: the penalty's subgradient leaves the groups it would remove oscillating
    around 0 with an amplitude of about `lr * λ` (about `lr` under Adam, whatever `λ`),
    which the measure reads as dense, so `λ` can keep growing (to `max_l21`, with a warning).
    The prox sets them to exactly 0.

    Args:
        target: `s*`, a fraction in the open interval `(0, 1)`.
        targets: modules (their `.weight`) or parameters, e.g. `model.head[-1]`; `None`
            (default) takes the weights of `prox`. A name is a `TypeError`: this object does
            not know the model (use `select_parameters`).
        measure: `"groups_95_energy"` (the fewest groups holding 95 % of `||W||_F^2`, lower is
            sparser), `"frac_below_1pct"` / `"frac_below_0p1pct"` (groups below 1 % / 0.1 %
            of the largest, higher is sparser) or `"zero_groups"` (exact zeros, higher is
            sparser); each a fraction of the groups (`sparsehead.controller.measure_fraction`).
        l21: `λ0 > 0`, the starting strength.
        dual_lr: `η > 0`; one update changes `λ` by at most a factor `exp(η)`.
        every: update `λ` after optimizer steps `every, 2 * every, ...` (`>= 1`); between
            updates the primal steps let the weights follow the new `λ`.
        min_l21: the floor `λ_min > 0`.
        max_l21: the cap `λ_max >= min_l21`; reaching it warns (`RuntimeWarning`) that the
            measure does not respond to `λ` (e.g. the penalty under Adam, see above).
        group_axis: the axis that names a group; `None` infers it from the module (`-1` for
            `nn.Linear`, `1` for `nn.Conv*d`), as `ProximalL21` does.
        prox: an optional `ProximalL21`, whose strength follows `λ`.
        controller: `"dual"` (the dual step, `DualAscent`) or `"pi"` (`DampedPI`).
        kp: `DampedPI`'s proportional gain `K_P >= 0`. For `kp`, `nu` and `smoothing`,
            `None` takes `sparsehead.controller.PI_DEFAULTS`; a value with
            `controller="dual"` is a `ValueError`.
        nu: `DampedPI`'s damping `ν` in `[0, 1)` (the error's average `ξ`).
        smoothing: `DampedPI`'s averaging `β` in `[0, 1)` of the measure (`s̄`).

    On an accelerator: `step()` between updates reads nothing from the device (the step count
    is a host int), and `penalty()` multiplies by `λ` held as a 0-d tensor on each weight's
    device (filled in place at an update, so a compiled step does not recompile). An update
    reads the weights to the host once (the core's `measure_fraction` and `DualAscent` run
    there): one read per `every` steps, the only one; keep `step()` outside a compiled step.

    Attributes: `l21` (the current `λ`, a float), `measure_value` (the last `s`, `None`
    before the first update), `history` (a list of `(step, λ, s)` per update, for logging),
    `controller` (the core's rule: a `DualAscent` or a `DampedPI`).
    """

    @legacy("AdaptiveL21", lead=1, order=("target", "targets"), old_positional=("measure", "l21"))
    def __init__(
        self,
        target: float,
        targets: Iterable[torch.Tensor | nn.Module] | torch.Tensor | nn.Module | None = None,
        *,
        measure: str = "groups_95_energy",
        l21: float = 0.0001,
        dual_lr: float = 1.0,
        every: int = 50,
        min_l21: float = 1e-12,
        max_l21: float = 1000.0,
        group_axis: int | None = None,
        prox: ProximalL21 | None = None,
        controller: str = "dual",
        kp: float | None = None,
        nu: float | None = None,
        smoothing: float | None = None,
    ) -> None:
        self.controller = adaptive_controller(
            ProximalL21,
            prox,
            targets,
            target,
            measure,
            dual_lr,
            every,
            min_l21,
            max_l21,
            controller=controller,
            kp=kp,
            nu=nu,
            smoothing=smoothing,
        )
        if targets is None:
            if group_axis is not None:
                raise ValueError("group_axis applies to targets; with targets=None prox's is used")
            self.targets, self._axes = list(prox.targets), list(prox._axes)
        else:
            resolved = resolve(targets, group_axis)
            self.targets, self._axes = [c.param for c in resolved], [c.axis for c in resolved]
        self._strengths = [torch.zeros((), dtype=_acc(p), device=p.device) for p in self.targets]
        self.l21 = self.controller.clip(check_positive(l21, "l21"))
        c = self.controller
        self.target, self.measure, self.dual_lr = c.target, c.measure, c.dual_lr
        self.every, self.min_l21, self.max_l21 = c.every, c.min_l21, c.max_l21
        self.group_axis = group_axis
        self.prox = prox
        self.step_count = 0
        self.measure_value: float | None = None
        self.history: list[tuple[int, float, float]] = []
        self._sync_prox()

    @property
    def l21(self) -> float:
        """`λ` now (a float; kept as a 0-d tensor on each weight's device too)."""
        return self._l21

    @l21.setter
    def l21(self, value: float) -> None:
        self._l21 = float(value)
        for s in self._strengths:
            s.fill_(self._l21)  # in place, on the device: no copy, no recompile

    def _sync_prox(self) -> None:
        if self.prox is not None:
            self.prox.l21 = self.l21

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
        for i, p in enumerate(self.targets):
            if self._strengths[i].device != p.device:  # the model moved: once
                self._strengths[i] = self._strengths[i].to(p.device)
        return sum(
            s * l21_norm(p, ax)
            for s, p, ax in zip(self._strengths, self.targets, self._axes, strict=True)
        )

    def update(self) -> float:
        """One dual step from the measure now; returns the new `λ`."""
        s = self.current_measure()
        before = self.l21
        self.l21 = self.controller.update(before, s)
        if self.controller.at_cap(self.l21) and self.l21 >= before:
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
        """Count one optimizer step; update `λ` if this step is due (`every, 2 * every, ...`)."""
        self.step_count += 1
        if self.controller.due(self.step_count):
            self.update()

    def attach(self, optimizer: torch.optim.Optimizer) -> torch.utils.hooks.RemovableHandle:
        """Run `step()` after every `optimizer.step()`; returns a handle with `.remove()`.

        Attach it after the `ProximalL21` hook, so that `s` is read after the prox."""
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer)}")
        return optimizer.register_step_post_hook(lambda *_: self.step())

    def state_dict(self) -> dict:
        """`λ`, the step count and the rule's state (`ξ` and `s̄` for `controller="pi"`)."""
        return {
            "l21": self.l21,
            "step_count": self.step_count,
            "controller": self.controller.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()`; a state without `"controller"` (older) resets the rule's."""
        self.l21 = self.controller.clip(check_positive(state["l21"], "l21"))
        self.step_count = check_int(state["step_count"], "step_count", low=0)
        self.controller.load_state_dict(state.get("controller", {}))
        self._sync_prox()
