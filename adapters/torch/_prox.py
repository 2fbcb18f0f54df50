"""Proximal gradient for SparseHead in PyTorch: group soft-thresholding after `optimizer.step()`.

A proximal gradient step on `loss(W) + lambda * ||W||_{2,1}` takes the optimizer's step on the
loss alone, then applies the prox of `lr * lambda * ||.||_{2,1}` (group soft-thresholding).
Unlike the penalty's subgradient, it sets weak groups to exactly 0.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Iterable
from typing import Literal

import torch
from torch import nn

from sparsehead._validation import check_choice, check_nonnegative

from .._deprecation import legacy
from ._dist import is_zero, local_optimizer, on_state_owner, whole
from ._ops import _norms_keepdim, l21_prox_
from ._targets import resolve

__all__ = ["ProximalL21", "bias_correction2", "is_adam_like"]

_PRECONDITIONS = ("auto", "adam", "lr")


def bias_correction2(
    beta2: float | torch.Tensor, step: torch.Tensor | float, dtype: torch.dtype
) -> torch.Tensor:
    """Adam's `1 - beta2^k` as a 0-d tensor on `step`'s device, with no read of `step`.

    `k` is Adam's `state["step"]`: a tensor on the host (plain Adam), or on the device
    (`capturable=True`, `fused=True`). Computed as `-expm1(k * log(beta2))`, which keeps
    the relative precision of `dtype` when `beta2^k` is close to 1 (`1 - 0.999` in float32
    loses 4 digits to cancellation; `expm1` loses none).
    """
    if not isinstance(step, torch.Tensor):  # an old or hand-made state: a host number
        step = torch.tensor(step)
    if isinstance(beta2, torch.Tensor):
        log_beta2 = torch.log(beta2.to(dtype))
    else:
        log_beta2 = math.log(beta2) if beta2 > 0 else -math.inf
    return -torch.expm1(step.to(dtype) * log_beta2)


def is_adam_like(optimizer: torch.optim.Optimizer) -> bool:
    """Adam or AdamW (AMSGrad included, or wrapped by ZeroRedundancyOptimizer): the optimizers
    whose `exp_avg_sq` state this reads."""
    return isinstance(local_optimizer(optimizer), (torch.optim.Adam, torch.optim.AdamW))


class ProximalL21:
    """Group soft-thresholding of chosen parameters after each optimizer step.

    After `optimizer.step()`, each chosen weight `W` becomes `prox_{t ||.||_{2,1}}(W)` with
    `prox(W)_j = max(0, 1 - t_j / ||W_j||_2) * W_j` and `t = lr * l21`, where `lr` is the
    learning rate of the parameter group that holds `W`, read at every step (so schedulers and
    per-group learning rates are honoured).

    Nothing is read back to the host at a step: a tensor learning rate (`lr=torch.tensor(...)`)
    and Adam's step count (a tensor, on the device under `capturable=True` or `fused=True`)
    enter the threshold as tensors, and `l21` is held as a 0-d tensor on each weight's device
    (setting `prox.l21` fills it in place), so a `torch.compile`d step does not recompile
    when `l21` changes.

    The Adam-aware threshold (`precondition="adam"`, and `"auto"` under Adam/AdamW) divides
    the threshold of group `j` by Adam's preconditioner averaged over the group,
    `d_j = mean_{i in j}(sqrt(v_i / (1 - beta2^k)) + eps)`: `t_j = lr * l21 / d_j`. Adam moves
    a weight by about `lr / d` per unit of gradient, so `lr * l21` alone is a threshold `d`
    times weaker than the penalty `l21 * ||W||_{2,1}` the loss would feel (measured inert). It
    is the exact prox in the metric `diag(d) / lr` when `d` is constant within each group, an
    approximation otherwise.

    Args:
        optimizer: the optimizer that updates the chosen parameters.
        l21: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}` (paper: 1e-4). `lam=` is its
            deprecated name.
        targets: modules (their `.weight`) or parameters, e.g. `model.head[-1]`. A name is a
            `TypeError`: the optimizer does not know the model (use `select_parameters`).
            Errors name a parameter by its qualified name when the optimizer was built from
            `model.named_parameters()`. `params=` is its deprecated name.
        group_axis: the axis that names a group; `None` (default) infers it from a module
            target's type (`nn.Linear`: -1, `nn.Conv1d/2d/3d`: 1), and -1 for tensors.
        precondition: `"auto"` (default: `"adam"` for `torch.optim.Adam`/`AdamW`, `"lr"`
            otherwise), `"adam"` (needs Adam/AdamW: another optimizer is a ValueError here), or
            `"lr"` (the textbook `lr * l21`). `None` is the deprecated spelling of `"lr"`.

    Use `prox.step()` after `optimizer.step()`, or `prox.attach()` once to run it from an
    optimizer post-step hook.
    """

    @legacy("ProximalL21", lead=2, order=("l21", "targets"), lam="l21", params="targets")
    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        l21: float,
        targets: Iterable[torch.Tensor | nn.Module] | torch.Tensor | nn.Module,
        *,
        group_axis: int | None = None,
        precondition: Literal["auto", "adam", "lr"] = "auto",
    ) -> None:
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer; got {type(optimizer)}")
        l21 = check_nonnegative(l21, "l21")
        if precondition is None:
            warnings.warn(
                'ProximalL21(precondition=None) is deprecated; use precondition="lr"',
                DeprecationWarning,
                stacklevel=2,
            )
            precondition = "lr"
        check_choice(precondition, "precondition", _PRECONDITIONS)
        if precondition == "adam" and not is_adam_like(optimizer):
            raise ValueError(
                'precondition="adam" needs torch.optim.Adam or AdamW; got '
                f'{type(optimizer).__name__} (use precondition="lr" or "auto")'
            )
        if precondition == "auto":
            precondition = "adam" if is_adam_like(optimizer) else "lr"
        chosen = resolve(targets, group_axis, optimizer=optimizer)
        self._axes = [ax for _, _, ax in chosen]
        self._groups = []
        for name, p, _ in chosen:
            found = [g for g in optimizer.param_groups if any(q is p for q in g["params"])]
            if not found:
                raise ValueError(
                    f"targets: parameter {name!r} is not in any parameter group of the optimizer"
                )
            self._groups.append(found[0])
        self.optimizer = optimizer
        self._l21 = float(l21)
        acc = [torch.float64 if p.dtype == torch.float64 else torch.float32 for _, p, _ in chosen]
        self._strengths = [
            torch.full((), self._l21, dtype=a, device=p.device)
            for (_, p, _), a in zip(chosen, acc, strict=True)
        ]
        self._state_checked = False  # under ZeRO: whether the owner's state was seen once
        self.names = [name for name, _, _ in chosen]
        self.targets = [p for _, p, _ in chosen]
        self.group_axis = group_axis
        self.precondition = precondition

    @property
    def l21(self) -> float:
        """`lambda`, the strength (a float; kept as a tensor on each weight's device too)."""
        return self._l21

    @l21.setter
    def l21(self, value: float) -> None:
        self._l21 = check_nonnegative(value, "l21")
        for s in self._strengths:
            s.fill_(self._l21)  # in place, on the device: no copy, no recompile

    @property
    def lam(self) -> float:
        """Deprecated name of `l21`."""
        return self.l21

    @property
    def params(self) -> list[torch.Tensor]:
        """Deprecated name of `targets`."""
        return self.targets

    def thresholds(self) -> list[torch.Tensor]:
        """The threshold of each chosen parameter now: a 0-d tensor (`"lr"`) or one value per
        group (`"adam"`), on the parameter's device, float32 (float64 for float64 weights)."""
        out = []
        for i, (p, ax, group) in enumerate(
            zip(self.targets, self._axes, self._groups, strict=True)
        ):
            strength = self._strengths[i]
            if strength.device != p.device:  # the model moved after this was built: once
                strength = self._strengths[i] = strength.to(p.device)
            lr = group["lr"]
            if isinstance(lr, torch.Tensor):
                # kept on its device: a 0-d tensor on the host enters as a scalar, no copy
                lr = lr.to(dtype=strength.dtype)
            t = lr * strength
            if self.precondition == "adam":
                t = t / self._adam_denominator(p, ax, group)
            out.append(t)
        return out

    def _adam_denominator(self, p: torch.Tensor, ax: int, group: dict) -> torch.Tensor:
        # under ZeroRedundancyOptimizer only the owner rank holds the state: it computes, sends
        acc = torch.float64 if p.dtype == torch.float64 else torch.float32
        compute = functools.partial(self._local_adam_denominator, p, ax)
        if not is_zero(self.optimizer):
            return compute(self.optimizer, group)
        # under ZeRO, whether the owner had a state is read on the host: once, as it stays
        out = on_state_owner(
            self.optimizer, p, compute, p.shape[ax], acc, check=not self._state_checked
        )
        self._state_checked = True
        return out

    def _local_adam_denominator(self, p, ax: int, optimizer, group: dict) -> torch.Tensor:
        state = optimizer.state.get(p, {})
        key = "max_exp_avg_sq" if group.get("amsgrad") else "exp_avg_sq"
        if key not in state or "step" not in state:
            raise ValueError(
                "precondition='adam' needs Adam/AdamW state ('exp_avg_sq', 'step') for every "
                "chosen parameter; call it after optimizer.step()"
            )
        acc = torch.float64 if p.dtype == torch.float64 else torch.float32
        # no host read: the step and the betas may be tensors (on the device)
        correction = bias_correction2(group["betas"][1], state["step"], acc)
        d = (state[key].to(acc) / correction).sqrt() + group["eps"]
        dims = tuple(i for i in range(p.ndim) if i != ax)
        return whole(d.mean(dim=dims))  # (G,), plain: a sharded state is reduced first

    @torch.no_grad()
    def step(self) -> None:
        """Apply the prox to every chosen parameter, in place."""
        for p, ax, t in zip(self.targets, self._axes, self.thresholds(), strict=True):
            l21_prox_(p, t, ax)

    def attach(self) -> torch.utils.hooks.RemovableHandle:
        """Run `step()` after every `optimizer.step()`; returns a handle with `.remove()`."""
        return self.optimizer.register_step_post_hook(lambda *_: self.step())

    @torch.no_grad()
    def zero_groups(self) -> list[int]:
        """The number of exactly-zero groups in each chosen parameter."""
        return [
            int((whole(_norms_keepdim(p, ax)) == 0).sum())
            for p, ax in zip(self.targets, self._axes, strict=True)
        ]
