"""Proximal gradient for SparseHead in PyTorch: group soft-thresholding after `optimizer.step()`.

A proximal gradient step on `loss(W) + lambda * ||W||_{2,1}` takes the optimizer's step on the
loss alone, then applies the prox of `lr * lambda * ||.||_{2,1}` (group soft-thresholding).
Unlike the penalty's subgradient, it sets weak groups to exactly 0.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from ._torch_dist import on_state_owner, whole
from ._torch_ops import _check_weight, _norms_keepdim, l21_prox_

__all__ = ["ProximalL21"]

_PRECONDITIONERS = (None, "adam")


def _as_parameter(item, name: str) -> torch.Tensor:
    if isinstance(item, nn.Module):
        weight = getattr(item, "weight", None)
        if not isinstance(weight, torch.Tensor):
            raise TypeError(f"{name}: module {type(item).__name__} has no `weight` tensor")
        return weight
    if isinstance(item, torch.Tensor):
        return item
    raise TypeError(f"{name} must hold nn.Module or torch.Tensor items; got {type(item).__name__}")


class ProximalL21:
    """Group soft-thresholding of chosen parameters after each optimizer step.

    After `optimizer.step()`, each chosen weight `W` becomes `prox_{t ||.||_{2,1}}(W)` with
    `prox(W)_j = max(0, 1 - t_j / ||W_j||_2) * W_j` and `t = lr * lam`, where `lr` is the
    learning rate of the parameter group that holds `W`, read at every step (so schedulers and
    per-group learning rates are honoured).

    `precondition="adam"` divides the threshold of group `j` by Adam's preconditioner averaged
    over the group, `d_j = mean_{i in j}(sqrt(v_i / (1 - beta2^k)) + eps)`: `t_j = lr * lam /
    d_j`. Adam moves a weight by about `lr / d` per unit of gradient, so `lr * lam` alone is a
    threshold `d` times weaker than the penalty `lam * ||W||_{2,1}` the loss would feel. It is the
    exact prox in the metric `diag(d) / lr` when `d` is constant within each group, an
    approximation otherwise. Needs `torch.optim.Adam` or `AdamW` (state `exp_avg_sq`).

    Args:
        optimizer: the optimizer that updates the chosen parameters.
        lam: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}` (paper: 1e-4).
        params: parameters, or modules whose `.weight` is meant (e.g. `[model.head[-1]]`).
        group_axis: the axis that names a group (`-1` for `nn.Linear.weight`).
        precondition: `None` (threshold `lr * lam`) or `"adam"` (see above).

    Use `prox.step()` after `optimizer.step()`, or `prox.attach()` once to run it from an
    optimizer post-step hook.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        lam: float,
        params: Iterable[torch.Tensor | nn.Module] | torch.Tensor | nn.Module,
        *,
        group_axis: int = -1,
        precondition: Literal["adam"] | None = None,
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer)}")
        if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
            raise TypeError(f"lam must be a real number; got {type(lam).__name__}")
        if not (math.isfinite(lam) and lam >= 0):
            raise ValueError(f"lam must be finite and >= 0; got {lam}")
        if precondition not in _PRECONDITIONERS:
            raise ValueError(
                f"precondition must be one of {_PRECONDITIONERS}; got {precondition!r}"
            )
        if isinstance(params, (torch.Tensor, nn.Module)):
            params = [params]
        chosen = [_as_parameter(p, "params") for p in params]
        if not chosen:
            raise ValueError("params must name at least one parameter")
        self._axes = [_check_weight(p, group_axis, "params") for p in chosen]
        self._groups = []
        for p in chosen:
            found = [g for g in optimizer.param_groups if any(q is p for q in g["params"])]
            if not found:
                raise ValueError(
                    f"params: a parameter of shape {tuple(p.shape)} is not in any parameter "
                    "group of the optimizer"
                )
            self._groups.append(found[0])
        self.optimizer = optimizer
        self.lam = float(lam)
        self.params = chosen
        self.group_axis = group_axis
        self.precondition = precondition

    def thresholds(self) -> list[float | torch.Tensor]:
        """The threshold for each chosen parameter now: a float, or one value per group."""
        out = []
        for p, ax, group in zip(self.params, self._axes, self._groups, strict=True):
            t = float(group["lr"]) * self.lam
            if self.precondition == "adam":
                t = t / self._adam_denominator(p, ax, group)
            out.append(t)
        return out

    def _adam_denominator(self, p: torch.Tensor, ax: int, group: dict) -> torch.Tensor:
        # under ZeroRedundancyOptimizer only the owner rank holds the state: it computes, sends
        acc = torch.float64 if p.dtype == torch.float64 else torch.float32
        compute = functools.partial(self._local_adam_denominator, p, ax)
        return on_state_owner(self.optimizer, p, compute, p.shape[ax], acc)

    def _local_adam_denominator(self, p, ax: int, optimizer, group: dict) -> torch.Tensor:
        state = optimizer.state.get(p, {})
        key = "max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq"
        if key not in state or "step" not in state:
            raise ValueError(
                "precondition='adam' needs Adam/AdamW state ('exp_avg_sq', 'step') for every "
                "chosen parameter; call it after optimizer.step()"
            )
        beta2 = float(group["betas"][1])
        step = float(state["step"])
        v = state[key].to(torch.float64 if p.dtype == torch.float64 else torch.float32)
        d = (v / (1 - beta2**step)).sqrt() + float(group["eps"])
        dims = tuple(i for i in range(p.ndim) if i != ax)
        return whole(d.mean(dim=dims))  # (G,), plain: a sharded state is reduced first

    @torch.no_grad()
    def step(self) -> None:
        """Apply the prox to every chosen parameter, in place."""
        for p, ax, t in zip(self.params, self._axes, self.thresholds(), strict=True):
            l21_prox_(p, t, ax)

    def attach(self) -> torch.utils.hooks.RemovableHandle:
        """Run `step()` after every `optimizer.step()`; returns a handle with `.remove()`."""
        return self.optimizer.register_step_post_hook(lambda *_: self.step())

    @torch.no_grad()
    def zero_groups(self) -> list[int]:
        """The number of exactly-zero groups in each chosen parameter."""
        return [
            int((whole(_norms_keepdim(p, ax)) == 0).sum())
            for p, ax in zip(self.params, self._axes, strict=True)
        ]
