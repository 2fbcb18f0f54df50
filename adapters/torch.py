"""SparseHead for PyTorch: the L2,1 penalty (Eq. 13) and its proximal step on chosen weights.

Two ways to regularize the last layer of a projection head, `nn.Linear.weight` of shape
`(out, in)` whose groups are its columns (`group_axis=-1`):

- a penalty added to the loss, `loss + l21_regularization(model, 1e-4, ["head.2"])`, whose
  gradient is the minimum-norm subgradient (0 on zero groups, never NaN);
- a proximal step after `optimizer.step()`, `ProximalL21(optimizer, 1e-4, [model.head[2]])`,
  which sets weak groups to exactly 0.

This module imports torch only.
"""

from __future__ import annotations

import fnmatch
import numbers
from collections.abc import Iterable

import torch
from torch import nn

from ._torch_adaptive import AdaptiveL21
from ._torch_budget import GroupBudget, l20_project, l20_project_
from ._torch_hoyer import group_hoyer_penalty, hoyer_regularization
from ._torch_ops import group_norms, l21_penalty, l21_prox, l21_prox_
from ._torch_prox import ProximalL21

__all__ = [
    "AdaptiveL21",
    "GroupBudget",
    "ProximalL21",
    "group_hoyer_penalty",
    "group_norms",
    "hoyer_regularization",
    "l20_project",
    "l20_project_",
    "l21_penalty",
    "l21_prox",
    "l21_prox_",
    "l21_regularization",
    "select_parameters",
]

Target = str | nn.Module | torch.Tensor


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DistributedDataParallel / DataParallel / torch.compile."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _module_weight(module: nn.Module, where: str) -> torch.Tensor:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"targets: module {where} ({type(module).__name__}) has no `weight`")
    return weight


def select_parameters(
    model: nn.Module, targets: Target | Iterable[Target]
) -> list[tuple[str, torch.Tensor]]:
    """The `(name, parameter)` pairs that `targets` chooses in `model`.

    Each target is one of:

    - a parameter name (`"head.2.weight"`), or a glob over parameter names (`"head.*.weight"`);
    - a module name (`"head.2"`): that module's `weight`;
    - an `nn.Module` (its `weight`) or a parameter tensor of the model.

    Names are those of the wrapped model under `DistributedDataParallel` or `torch.compile`
    (no `module.` / `_orig_mod.` prefix needed). Each parameter is listed once, in order.
    """
    model = _unwrap(model)
    if isinstance(targets, (str, nn.Module, torch.Tensor)):
        targets = [targets]
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    names_by_id = {id(p): n for n, p in params.items()}
    chosen: dict[int, tuple[str, torch.Tensor]] = {}
    for target in targets:
        if isinstance(target, str):
            if target in params:
                found = [(target, params[target])]
            elif target in modules:
                found = [(f"{target}.weight", _module_weight(modules[target], repr(target)))]
            else:
                found = [(n, p) for n, p in params.items() if fnmatch.fnmatchcase(n, target)]
            if not found:
                raise ValueError(f"targets: {target!r} names no parameter or module of the model")
        elif isinstance(target, nn.Module):
            weight = _module_weight(target, type(target).__name__)
            found = [(names_by_id.get(id(weight), "?"), weight)]
        elif isinstance(target, torch.Tensor):
            found = [(names_by_id.get(id(target), "?"), target)]
        else:
            raise TypeError(
                "targets must hold str, nn.Module or torch.Tensor items; "
                f"got {type(target).__name__}"
            )
        for name, p in found:
            if id(p) not in names_by_id:
                raise ValueError(f"targets: a tensor of shape {tuple(p.shape)} is not in the model")
            chosen.setdefault(id(p), (name, p))
    if not chosen:
        raise ValueError("targets must choose at least one parameter")
    return list(chosen.values())


def l21_regularization(
    model: nn.Module, lam: float, targets: Target | Iterable[Target], *, group_axis: int = -1
) -> torch.Tensor:
    """`lam * sum_W ||W||_{2,1}` (Eq. 13) over the weights `targets` chooses, to add to a loss.

    Args:
        model: the model (may be wrapped in DDP or `torch.compile`).
        lam: `lambda >= 0` (paper: 1e-4).
        targets: see `select_parameters`: names, globs, modules or parameters.
        group_axis: the axis naming a group in every chosen weight (`-1` for `nn.Linear`,
            `1` for `nn.Conv2d`).

    Returns:
        A 0-d float32 tensor (float64 if every chosen weight is float64), differentiable, with
        the minimum-norm subgradient (0 on zero groups).

    Example: `loss = info_nce(z1, z2) + l21_regularization(model, 1e-4, "head.2")`.
    """
    if isinstance(lam, bool) or not isinstance(lam, numbers.Real):
        raise TypeError(f"lam must be a real number; got {type(lam).__name__}")
    if not 0 <= float(lam) < float("inf"):
        raise ValueError(f"lam must be finite and >= 0; got {lam}")
    total = sum(l21_penalty(p, group_axis) for _, p in select_parameters(model, targets))
    return float(lam) * total
