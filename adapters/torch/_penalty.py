"""The L2,1 penalty (Eq. 13) on the weights `targets` chooses in a PyTorch model, for the loss.

`loss + l21_regularization(model, 1e-4, "head.2")`: its gradient is the minimum-norm
subgradient (0 on zero groups, never NaN).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from sparsehead._validation import check_nonnegative

from .._deprecation import legacy
from ._ops import l21_norm
from ._targets import Target, resolve

__all__ = ["l21_regularization"]


@legacy("l21_regularization", lead=1, order=("l21", "targets"), lam="l21")
def l21_regularization(
    model: nn.Module,
    l21: float,
    targets: Target | Iterable[Target],
    *,
    group_axis: int | None = None,
) -> torch.Tensor:
    """`l21 * sum_W ||W||_{2,1}` (Eq. 13) over the weights `targets` chooses, to add to a loss.

    Args:
        model: the model (may be wrapped in DDP or `torch.compile`).
        l21: `lambda >= 0` (paper: 1e-4). `lam=` is its deprecated name.
        targets: names, globs, modules or parameters (see `select_parameters`).
        group_axis: the axis naming a group in every chosen weight; `None` (default) infers
            it per weight from the module that owns it: `-1` for `nn.Linear` (input
            features), `1` for `nn.Conv1d/2d/3d` (input channels), `-1` otherwise.

    Returns:
        A 0-d float32 tensor (float64 if every chosen weight is float64), differentiable, with
        the minimum-norm subgradient (0 on zero groups).

    Example: `loss = info_nce(z1, z2) + l21_regularization(model, 1e-4, "head.2")`.
    """
    l21 = check_nonnegative(l21, "l21")
    chosen = resolve(targets, group_axis, model=model)
    total = sum(l21_norm(c.param, c.axis) for c in chosen)
    return float(l21) * total
