"""An exact group budget in PyTorch: the L2,0 projection and the cubic schedule to reach it.

Theorem 5.6 of the paper is stated for "at most k non-zero groups" (`||W||_{2,0} <= k`), which
L2,1 only relaxes. The projection onto that set keeps the k groups of largest norm (ties to the
lower index) and zeroes the rest. `GroupBudget` applies it after optimizer steps, with the
budget lowered along the cubic schedule of gradual pruning (Zhu and Gupta, 2017). Reference:
`sparsehead.l20_project` and `sparsehead.schedule.BudgetSchedule` (the NumPy core).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from sparsehead._validation import check_int
from sparsehead.budget import resolve_keep
from sparsehead.schedule import BudgetSchedule

from .._deprecation import legacy
from ._ops import _check_weight, _norms_keepdim
from ._targets import resolve

__all__ = ["GroupBudget", "l20_project", "l20_project_"]


def _ranks(w: torch.Tensor, ax: int) -> torch.Tensor:
    """The rank of each group (0 first, int64), broadcastable against `w`, by the core's rule
    (`sparsehead.budget.rank_groups`): a group holding NaN first, then +inf, then the finite
    norms descending; ties to the lower index (stable sorts). Computed on the device."""
    g = _norms_keepdim(w.detach(), ax)
    dims = tuple(d for d in range(w.ndim) if d != ax)
    nan = w.detach().isnan().any(dim=dims, keepdim=True).reshape(-1)
    flat = g.reshape(-1)
    # two stable sorts: by norm descending (NaN set aside as 0), then NaN groups to the front
    order = torch.sort(torch.where(nan, 0.0, flat), descending=True, stable=True).indices
    order = order[torch.sort((~nan[order]).to(torch.uint8), stable=True).indices]
    places = torch.arange(order.numel(), device=order.device)
    return torch.empty_like(order).scatter_(0, order, places).reshape(g.shape)


def _kept_groups(w: torch.Tensor, ax: int, k: int | torch.Tensor) -> torch.Tensor:
    """Bool mask, broadcastable against `w`: the `k` first-ranked groups (`k` an int, or a
    0-d integer tensor on `w`'s device: no host read)."""
    return _ranks(w, ax) < k


def l20_project(w: torch.Tensor, keep: int | float, group_axis: int = -1) -> torch.Tensor:
    """Projection onto `{W : at most k groups non-zero}`: keep the `k` groups of largest norm.

    The `k = resolve_keep(keep, G)` groups with the largest `||W_j||_2` are copied bit for
    bit, all others set to exactly 0; ties go to the lower index (norms accumulated in float32
    for half and float32 weights, float64 for float64). NaN and inf are never hidden: a group
    holding NaN ranks above every other group, then a group holding inf, then the finite
    norms, so with room for one of `[inf, 1, nan, 3]` the NaN group is kept.

    Args:
        w: tensor of at least 2 dimensions, floating point.
        keep: an int in `[1, G]`, or a float fraction in `(0, 1]` (`ceil(keep * G)` groups);
            `0` is refused (it would remove the whole head).
        group_axis: the axis whose index names a group (`-1` for `nn.Linear.weight`).

    Returns:
        A new tensor of `w`'s shape and dtype, outside autograd.
    """
    return l20_project_(w.detach().clone(), keep, group_axis)


@torch.no_grad()
def l20_project_(w: torch.Tensor, keep: int | float, group_axis: int = -1) -> torch.Tensor:
    """In-place `l20_project`: zero all but the `k` first-ranked groups of `w`; return it."""
    ax = _check_weight(w, group_axis)
    return w.masked_fill_(~_kept_groups(w, ax, resolve_keep(keep, w.shape[ax])), 0)


class GroupBudget:
    """The L2,0 projection of chosen weights after optimizer steps, on a cubic schedule.

    After the `t`-th optimizer step (`t = 1, 2, ...`, counted by this object) that is due
    (`t` a multiple of `every`), each chosen weight keeps its `k(t)` groups of largest norm and
    the others are set to exactly 0, with

        k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,   rounded up,

    `G` (no projection) for `t <= t0`, and `k_f` for `t >= t1`: the core's
    `sparsehead.schedule.BudgetSchedule(G, keep, begin_step=t0, end_step=t1, every=every)`,
    one per weight. With `every=1` exactly `k_f` groups are non-zero after each step from `t1`
    on (when the weight has that many non-zero groups).

    Args:
        optimizer: the optimizer that updates the chosen weights.
        keep: the final budget `k_f`: an int `>= 1` (at most every chosen weight's `G`) or a
            fraction of each weight's groups in `(0, 1]`.
        targets: modules (their `.weight`) or parameters, e.g. `model.head[-1]`. A name is a
            `TypeError`: the optimizer does not know the model (use `select_parameters`).
        begin_step: `t0 >= 0`; the budget starts to fall after it.
        end_step: `t1 >= t0`; `None` means `t0` (the whole budget at once after step `t0`).
        every: project after optimizer steps `every, 2 * every, ...` (`>= 1`).
        group_axis: the axis that names a group; `None` infers it from the module (`-1` for
            `nn.Linear`, `1` for `nn.Conv*d`), as `ProximalL21` does.

    Use `budget.step()` after `optimizer.step()`, or `budget.attach()` once to run it from an
    optimizer post-step hook (skipped steps, e.g. by `GradScaler`, are then not counted).
    `current_keep` gives the budgets now, for logging; `state_dict()` / `load_state_dict()`
    carry the step count across a checkpoint.

    A step reads nothing back to the host, and compiles (`torch.compile(fullgraph=True)`)
    into one graph for every step: the step count `t` is a 0-d tensor on each weight's
    device, `k(t) = G - count(t >= T)` with `T` the core's `BudgetSchedule.drop_steps()`, and
    a step that is not due (or keeps every group) applies an all-true mask. The price: the
    group norms and their ranks are computed at every step, also between due steps.
    `step_count` (a host int) is read from the device when asked for, e.g. at a checkpoint.
    """

    @legacy("GroupBudget", lead=2, order=("keep", "targets"))
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        keep: int | float,
        targets: Iterable[torch.Tensor | nn.Module] | torch.Tensor | nn.Module,
        *,
        begin_step: int = 0,
        end_step: int | None = None,
        every: int = 1,
        group_axis: int | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer)}")
        resolved = resolve(targets, group_axis, optimizer=optimizer)
        for c in resolved:
            if not any(q is c.param for g in optimizer.param_groups for q in g["params"]):
                raise ValueError(
                    f"targets: parameter {c.name!r} is not in any parameter group of the optimizer"
                )
        self.schedules = [
            BudgetSchedule(
                c.param.shape[c.axis], keep, begin_step=begin_step, end_step=end_step, every=every
            )
            for c in resolved
        ]
        first = self.schedules[0]
        self.begin_step, self.end_step, self.every = first.begin_step, first.end_step, first.every
        self._axes = [c.axis for c in resolved]
        self.keep = keep
        self.optimizer = optimizer
        self.targets = [c.param for c in resolved]
        self.group_axis = group_axis
        # on each weight's device: the steps counted, and the steps at which k drops
        self._counts = [torch.zeros((), dtype=torch.int64, device=p.device) for p in self.targets]
        self._drops = [
            torch.as_tensor(s.drop_steps(), dtype=torch.int64).to(p.device)
            for s, p in zip(self.schedules, self.targets, strict=True)
        ]

    @property
    def step_count(self) -> int:
        """Optimizer steps counted so far (a host int: one read from the device)."""
        return int(self._counts[0])

    @step_count.setter
    def step_count(self, value: int) -> None:
        value = check_int(value, "step_count", low=0)
        for count in self._counts:
            count.fill_(value)

    def budgets(self, step: int) -> list[int]:
        """`k(step)` for each chosen weight (the core's `BudgetSchedule.keep_at`)."""
        return [schedule.keep_at(step) for schedule in self.schedules]

    @property
    def current_keep(self) -> list[int]:
        """The budget after the steps taken so far, one int per chosen weight."""
        return self.budgets(self.step_count)

    @torch.no_grad()
    def step(self) -> None:
        """Count one optimizer step; project the chosen weights if this step is due.

        On the device, with no host read: `k(t) = G - count(t >= T)`, and a step that is not
        due keeps every group (the core's `keep_at` and `due`, as tensors)."""
        for i, (p, ax, schedule) in enumerate(
            zip(self.targets, self._axes, self.schedules, strict=True)
        ):
            count, drops = self._counts[i], self._drops[i]
            if count.device != p.device:  # the model moved after this was built: once
                count = self._counts[i] = count.to(p.device)
                drops = self._drops[i] = drops.to(p.device)
            t = count.add_(1)
            k = schedule.groups - (t >= drops).sum()
            kept = torch.where(t % schedule.every == 0, k, schedule.groups)
            p.masked_fill_(~_kept_groups(p, ax, kept), 0)

    def attach(self) -> torch.utils.hooks.RemovableHandle:
        """Run `step()` after every `optimizer.step()`; returns a handle with `.remove()`."""
        return self.optimizer.register_step_post_hook(lambda *_: self.step())

    def state_dict(self) -> dict:
        return {"step_count": self.step_count}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step_count"]

    @torch.no_grad()
    def nonzero_groups(self) -> list[int]:
        """The number of groups that are not exactly 0, in each chosen weight."""
        return [
            int((_norms_keepdim(p, ax) != 0).sum())
            for p, ax in zip(self.targets, self._axes, strict=True)
        ]
