"""The one `targets` resolver of the PyTorch adapter: which weights, and each one's group axis.

Every torch entry passes its `targets` here. A target is one of:

- a parameter name (`"head.2.weight"`) or a glob over parameter names (`"head.*.weight"`,
  which skips the 1-D parameters it matches, such as a BatchNorm's `weight`);
- a module name (`"head.2"`): that module's `weight`;
- an `nn.Module` (its `weight`) or a parameter tensor.

Names and globs need the model that holds the parameters: the entries that take a `model`
(`l21_regularization`, `hoyer_regularization`, Lightning's `SparseHead`) accept all four kinds;
the entries bound to an optimizer (`ProximalL21`, `GroupBudget`, `AdaptiveL21`) see only the
optimizer's tensors, so they accept modules and tensors, and a string there is a `TypeError`
that says to pass the module.

`group_axis=None` infers each weight's group axis (its input features) from the module that
owns it (`layout_group_axis`): `-1` for `nn.Linear`, `1` for `nn.Conv1d/2d/3d`, `0` for
`nn.ConvTranspose*d`, `-1` for a tensor whose module is unknown.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import nn

from ._ops import _check_weight

__all__ = [
    "Chosen",
    "Target",
    "checked_axis",
    "layout_group_axis",
    "resolve",
    "select_parameters",
]

Target = str | nn.Module | torch.Tensor


class Chosen(NamedTuple):
    """One chosen weight: its qualified name, the parameter, its group axis (non-negative)."""

    name: str
    param: torch.Tensor
    axis: int


def layout_group_axis(module: nn.Module | None) -> int:
    """The group axis (input features) of `module.weight` from the module's type.

    `nn.Linear` `(out, in)`: -1; `nn.Conv1d/2d/3d` `(out, in, *k)`: 1; `nn.ConvTranspose*d`
    `(in, out, *k)`: 0; anything else: -1 (the PyTorch layout default).
    """
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return 0
    if isinstance(module, nn.modules.conv._ConvNd):
        return 1
    return -1


def checked_axis(p: torch.Tensor, group_axis: int, name: str) -> int:
    """`group_axis` of parameter `name` as a non-negative index; errors name the parameter."""
    try:
        return _check_weight(p, group_axis, "weight")
    except (TypeError, ValueError) as e:
        raise type(e)(f"parameter {name!r}: {e}") from None


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's module inside DistributedDataParallel / DataParallel / torch.compile."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif isinstance(getattr(model, "_orig_mod", None), nn.Module):
            model = model._orig_mod
        else:
            return model


def _module_weight(module: nn.Module, where: str, error: type[Exception]) -> torch.Tensor:
    weight = getattr(module, "weight", None)
    if not isinstance(weight, torch.Tensor):
        raise error(f"targets: module {where} ({type(module).__name__}) has no `weight`")
    return weight


def _as_list(targets) -> list:
    if isinstance(targets, (str, nn.Module, torch.Tensor)):
        return [targets]
    if not isinstance(targets, Iterable):
        raise TypeError(
            "targets must be a str, nn.Module, torch.Tensor or an iterable of them; "
            f"got {type(targets).__name__}"
        )
    return list(targets)


def _by_name(target: str, params: dict, modules: dict) -> list[tuple[str, torch.Tensor]]:
    if target in params:
        return [(target, params[target])]
    if target in modules:
        return [(f"{target}.weight", _module_weight(modules[target], repr(target), ValueError))]
    matched = [(n, p) for n, p in params.items() if fnmatch.fnmatchcase(n, target)]
    found = [(n, p) for n, p in matched if p.ndim >= 2]
    if matched and not found:
        raise ValueError(
            f"targets: {target!r} matches only 1-D parameters "
            f"({', '.join(n for n, _ in matched)}), which have no groups"
        )
    if not found:
        raise ValueError(f"targets: {target!r} names no parameter or module of the model")
    return found


def resolve(
    targets,
    group_axis: int | None,
    *,
    model: nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[Chosen]:
    """The weights `targets` chooses, each once, in order, with its group axis.

    With `model` (may be wrapped in DDP or `torch.compile`; names are those of the wrapped
    module) every kind of target is accepted and each tensor must belong to the model.
    Without it, names are a `TypeError` (there is nothing to look them up in); a tensor's name
    then comes from the optimizer's `param_names` when it was built from `named_parameters()`.
    `group_axis=None` infers each weight's axis from the module that owns it.
    """
    names: dict[int, str] = {}
    owners: dict[int, nn.Module] = {}
    params: dict[str, torch.Tensor] = {}
    modules: dict[str, nn.Module] = {}
    if model is not None:
        model = _unwrap(model)
        params = dict(model.named_parameters())
        modules = dict(model.named_modules())
        names = {id(p): n for n, p in params.items()}
        for n, p in params.items():
            owner, _, attr = n.rpartition(".")
            if attr == "weight" and owner in modules:
                owners[id(p)] = modules[owner]
    elif optimizer is not None:
        for g in optimizer.param_groups:
            for p, n in zip(g["params"], g.get("param_names", ()), strict=False):
                names[id(p)] = n
    chosen: dict[int, tuple[str, torch.Tensor, nn.Module | None]] = {}
    for i, target in enumerate(_as_list(targets)):
        if isinstance(target, str):
            if model is None:
                raise TypeError(
                    f"targets: {target!r} is a name, and names need the model, which this entry "
                    "does not see; pass the module (e.g. model.head[2]) or the parameter itself"
                )
            found = [(n, p, owners.get(id(p))) for n, p in _by_name(target, params, modules)]
        elif isinstance(target, nn.Module):
            weight = _module_weight(target, f"targets[{i}]", TypeError)
            name = names.get(id(weight), f"targets[{i}] ({type(target).__name__}.weight)")
            found = [(name, weight, target)]
        elif isinstance(target, torch.Tensor):
            name = names.get(id(target), f"targets[{i}] (shape {tuple(target.shape)})")
            found = [(name, target, owners.get(id(target)))]
        else:
            raise TypeError(
                "targets must hold str, nn.Module or torch.Tensor items; "
                f"targets[{i}] is {type(target).__name__}"
            )
        for name, p, owner in found:
            if model is not None and id(p) not in names:
                raise ValueError(f"targets: a tensor of shape {tuple(p.shape)} is not in the model")
            chosen.setdefault(id(p), (name, p, owner))
    if not chosen:
        raise ValueError("targets must choose at least one parameter")
    return [
        Chosen(
            name,
            p,
            checked_axis(p, layout_group_axis(owner) if group_axis is None else group_axis, name),
        )
        for name, p, owner in chosen.values()
    ]


def select_parameters(
    model: nn.Module, targets: Target | Iterable[Target]
) -> list[tuple[str, torch.Tensor]]:
    """The `(name, parameter)` pairs that `targets` chooses in `model`.

    Each target is a parameter name or a glob over them (which skips 1-D parameters), a module
    name (its `weight`), an `nn.Module` (its `weight`) or a parameter tensor of the model.
    Names are those of the wrapped model under `DistributedDataParallel` or `torch.compile`
    (no `module.` / `_orig_mod.` prefix needed). Each parameter is listed once, in order. A
    parameter with fewer than 2 dimensions chosen explicitly is a ValueError naming it.
    """
    return [(c.name, c.param) for c in resolve(targets, None, model=model)]
