"""An exact group budget in PyTorch: the L2,0 projection and the cubic schedule to reach it.

Theorem 5.6 of the paper is stated for "at most k non-zero groups" (`||W||_{2,0} <= k`), which
L2,1 only relaxes. The projection onto that set keeps the k groups of largest norm (ties to the
lower index) and zeroes the rest. `GroupBudget` applies it after optimizer steps, with the
budget lowered along the cubic schedule of gradual pruning (Zhu and Gupta, 2017). Reference:
`sparsehead.l20_project` and `sparsehead.budget_schedule` (the NumPy core).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import torch
from torch import nn

from sparsehead.budget import budget_schedule, resolve_keep

from ._ops import _check_weight, _norms_keepdim
from ._targets import resolve

__all__ = ["GroupBudget", "l20_project", "l20_project_"]


def _kept_groups(weight: torch.Tensor, ax: int, keep) -> torch.Tensor:
    """Bool mask, broadcastable against `weight`: the `k` groups of largest norm, ties to the
    lower index (a stable sort of the norms, descending, as in the core)."""
    g = _norms_keepdim(weight.detach(), ax)
    dims = tuple(d for d in range(weight.ndim) if d != ax)
    # a group holding NaN ranks first (as +inf): it is kept, so the NaN stays visible
    nan = weight.detach().isnan().any(dim=dims, keepdim=True)
    flat = torch.where(nan, torch.inf, g).reshape(-1)
    k = resolve_keep(keep, flat.numel())
    order = torch.sort(flat, descending=True, stable=True).indices
    mask = torch.zeros(flat.shape, dtype=torch.bool, device=flat.device)
    mask[order[:k]] = True
    return mask.reshape(g.shape)


def l20_project(weight: torch.Tensor, keep, group_axis: int = -1) -> torch.Tensor:
    """Projection onto `{W : at most k groups non-zero}`: keep the `k` groups of largest norm.

    The `k = resolve_keep(keep, G)` groups with the largest `||W_j||_2` are copied bit for
    bit, all others set to exactly 0; ties go to the lower index (norms accumulated in float32
    for half and float32 weights, float64 for float64). A group holding NaN counts as the
    largest and is kept, so a NaN is never hidden by the projection.

    Args:
        weight: tensor of at least 2 dimensions.
        keep: an int in `[0, G]`, or a float fraction in `(0, 1]` (`ceil(keep * G)` groups).
        group_axis: the axis whose index names a group (`-1` for `nn.Linear.weight`).

    Returns:
        A new tensor of `weight`'s shape and dtype, outside autograd.
    """
    return l20_project_(weight.detach().clone(), keep, group_axis)


@torch.no_grad()
def l20_project_(weight: torch.Tensor, keep, group_axis: int = -1) -> torch.Tensor:
    """In-place `l20_project`: zero all but the `k` largest groups of `weight`; return it."""
    ax = _check_weight(weight, group_axis)
    return weight.masked_fill_(~_kept_groups(weight, ax, keep), 0)


def _check_step(value, name: str, low: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}")
    return int(value)


class GroupBudget:
    """The L2,0 projection of chosen weights after optimizer steps, on a cubic schedule.

    After the `t`-th optimizer step (`t = 1, 2, ...`, counted by this object), each chosen
    weight keeps its `k(t)` groups of largest norm and the others are set to exactly 0, with

        k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,   rounded up,

    `G` (no projection) for `t <= t0`, and `k_f = resolve_keep(keep, G)` for `t >= t1`: the
    core's `sparsehead.budget_schedule(t, G, keep, t0, t1)`, per weight. Between `t0` and `t1`
    the projection runs when `t` is a multiple of `every`; from `t1` on it runs after every
    step, so that exactly `k_f` groups are non-zero after each step (when the weight has that
    many non-zero groups).

    Args:
        optimizer: the optimizer that updates the chosen weights.
        keep: the final budget `k_f`: an int (at most every chosen weight's `G`) or a fraction
            of each weight's groups in `(0, 1]`.
        targets: parameters, or modules whose `.weight` is meant (e.g. `[model.head[-1]]`).
        group_axis: the axis that names a group; `None` infers it from the module (`-1` for
            `nn.Linear`, `1` for `nn.Conv*d`), as `ProximalL21` does.
        begin_step: `t0 >= 0`; the budget starts to fall after it.
        end_step: `t1 >= t0`; `None` means `t0` (the whole budget at once after step `t0`).
        every: project every `every` steps between `t0` and `t1` (`>= 1`).

    Use `budget.step()` after `optimizer.step()`, or `budget.attach()` once to run it from an
    optimizer post-step hook (skipped steps, e.g. by `GradScaler`, are then not counted).
    `current_keep` gives the budgets now, for logging; `state_dict()` / `load_state_dict()`
    carry the step count across a checkpoint.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        keep,
        targets: Iterable[torch.Tensor | nn.Module] | torch.Tensor | nn.Module,
        *,
        group_axis: int | None = None,
        begin_step: int = 0,
        end_step: int | None = None,
        every: int = 1,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer)}")
        resolved = resolve(targets, group_axis, optimizer=optimizer)
        chosen = [p for _, p, _ in resolved]
        self._axes = [ax for _, _, ax in resolved]
        for p in chosen:
            if not any(q is p for g in optimizer.param_groups for q in g["params"]):
                raise ValueError(
                    f"targets: a parameter of shape {tuple(p.shape)} is not in any parameter "
                    "group of the optimizer"
                )
        self.begin_step = _check_step(begin_step, "begin_step")
        end = self.begin_step if end_step is None else end_step
        self.end_step = _check_step(end, "end_step", low=self.begin_step)
        self.every = _check_step(every, "every", low=1)
        self._sizes = [p.shape[ax] for p, ax in zip(chosen, self._axes, strict=True)]
        for size in self._sizes:  # a clear error now, not at the first projection
            resolve_keep(keep, size)
        self.keep = keep
        self.optimizer = optimizer
        self.targets = chosen
        self.group_axis = group_axis
        self.step_count = 0

    def budgets(self, step: int) -> list[int]:
        """`k(step)` for each chosen weight (the core's `budget_schedule`)."""
        return [
            budget_schedule(step, size, self.keep, self.begin_step, self.end_step)
            for size in self._sizes
        ]

    @property
    def current_keep(self) -> list[int]:
        """The budget after the steps taken so far, one int per chosen weight."""
        return self.budgets(self.step_count)

    @torch.no_grad()
    def step(self) -> None:
        """Count one optimizer step; project the chosen weights if this step calls for it."""
        self.step_count += 1
        t = self.step_count
        if t <= self.begin_step or (t < self.end_step and t % self.every):
            return
        for p, ax, k, size in zip(
            self.targets, self._axes, self.current_keep, self._sizes, strict=True
        ):
            if k < size:
                l20_project_(p, k, ax)

    def attach(self) -> torch.utils.hooks.RemovableHandle:
        """Run `step()` after every `optimizer.step()`; returns a handle with `.remove()`."""
        return self.optimizer.register_step_post_hook(lambda *_: self.step())

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = _check_step(state["step_count"], "step_count")

    @torch.no_grad()
    def nonzero_groups(self) -> list[int]:
        """The number of groups that are not exactly 0, in each chosen weight."""
        return [
            int((_norms_keepdim(p, ax) != 0).sum())
            for p, ax in zip(self.targets, self._axes, strict=True)
        ]
