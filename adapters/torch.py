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

from ._deprecation import MISSING, renamed
from ._torch_adaptive import AdaptiveL21
from ._torch_budget import GroupBudget, l20_project, l20_project_
from ._torch_hoyer import group_hoyer_penalty, hoyer_regularization
from ._torch_ops import group_norms, l21_penalty, l21_prox, l21_prox_
from ._torch_prox import ProximalL21, checked_axis, layout_group_axis

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
    "layout_group_axis",
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


def _check_targets(targets) -> list:
    if isinstance(targets, (str, nn.Module, torch.Tensor)):
        return [targets]
    if not isinstance(targets, Iterable):
        raise TypeError(
            "targets must be a str, nn.Module, torch.Tensor or an iterable of them; "
            f"got {type(targets).__name__}"
        )
    return list(targets)


def _select(
    model: nn.Module, targets, group_axis: int | None
) -> list[tuple[str, torch.Tensor, int]]:
    """`(qualified name, parameter, group axis as a non-negative index)` for each choice.

    A glob skips the 1-D parameters it matches (biases, BatchNorm scales); a 1-D parameter
    named explicitly (by name, module or tensor) is a ValueError naming it.
    """
    model = _unwrap(model)
    params = dict(model.named_parameters())
    modules = dict(model.named_modules())
    names_by_id = {id(p): n for n, p in params.items()}
    chosen: dict[int, tuple[str, torch.Tensor]] = {}
    for target in _check_targets(targets):
        if isinstance(target, str):
            if target in params:
                found = [(target, params[target])]
            elif target in modules:
                found = [(f"{target}.weight", _module_weight(modules[target], repr(target)))]
            else:
                matched = [(n, p) for n, p in params.items() if fnmatch.fnmatchcase(n, target)]
                found = [(n, p) for n, p in matched if p.ndim >= 2]
                if matched and not found:
                    raise ValueError(
                        f"targets: {target!r} matches only 1-D parameters "
                        f"({', '.join(n for n, _ in matched)}), which have no groups"
                    )
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
    out = []
    for name, p in chosen.values():
        owner, _, attr = name.rpartition(".")
        axis = group_axis
        if axis is None:
            axis = layout_group_axis(modules.get(owner) if attr == "weight" else None)
        out.append((name, p, checked_axis(p, axis, name)))
    return out


def select_parameters(
    model: nn.Module, targets: Target | Iterable[Target]
) -> list[tuple[str, torch.Tensor]]:
    """The `(name, parameter)` pairs that `targets` chooses in `model`.

    Each target is one of:

    - a parameter name (`"head.2.weight"`), or a glob over parameter names (`"head.*.weight"`,
      which skips the 1-D parameters it matches, such as a BatchNorm's `weight`);
    - a module name (`"head.2"`): that module's `weight`;
    - an `nn.Module` (its `weight`) or a parameter tensor of the model.

    Names are those of the wrapped model under `DistributedDataParallel` or `torch.compile`
    (no `module.` / `_orig_mod.` prefix needed). Each parameter is listed once, in order. A
    parameter with fewer than 2 dimensions chosen explicitly is a ValueError naming it.
    """
    return [(name, p) for name, p, _ in _select(model, targets, None)]


def l21_regularization(
    model: nn.Module,
    l21: float = MISSING,
    targets: Target | Iterable[Target] = MISSING,
    *,
    group_axis: int | None = None,
    lam: float = MISSING,
) -> torch.Tensor:
    """`l21 * sum_W ||W||_{2,1}` (Eq. 13) over the weights `targets` chooses, to add to a loss.

    Args:
        model: the model (may be wrapped in DDP or `torch.compile`).
        l21: `lambda >= 0` (paper: 1e-4). `lam=` is its deprecated name.
        targets: see `select_parameters`: names, globs, modules or parameters.
        group_axis: the axis naming a group in every chosen weight; `None` (default) infers
            it per weight from the module that owns it: `-1` for `nn.Linear` (input
            features), `1` for `nn.Conv1d/2d/3d` (input channels), `-1` otherwise.

    Returns:
        A 0-d float32 tensor (float64 if every chosen weight is float64), differentiable, with
        the minimum-norm subgradient (0 on zero groups).

    Example: `loss = info_nce(z1, z2) + l21_regularization(model, 1e-4, "head.2")`.
    """
    l21 = renamed("l21_regularization", "l21", l21, "lam", lam)
    if targets is MISSING:
        raise TypeError("l21_regularization() missing required argument: 'targets'")
    if isinstance(l21, bool) or not isinstance(l21, numbers.Real):
        raise TypeError(f"l21 must be a real number; got {type(l21).__name__}")
    if not 0 <= float(l21) < float("inf"):
        raise ValueError(f"l21 must be finite and >= 0; got {l21}")
    chosen = _select(model, targets, group_axis)
    total = sum(l21_penalty(p, ax) for _, p, ax in chosen)
    return float(l21) * total
