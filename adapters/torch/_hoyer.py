"""Group Hoyer-square (DeepHoyer, Yang, Wen and Li, ICLR 2020) as a PyTorch penalty.

`HS(W) = (sum_j g_j)^2 / sum_j g_j^2` with `g_j = ||W_j||_2` the group norms of Eq. 13. It does
not change when `W` is scaled, so `hoyer * HS(W)` can only be lowered by concentrating the
weight in fewer groups, not by the uniform shrinkage that BatchNorm and the cosine of InfoNCE
let `||W||_{2,1}` get away with. Reference: `sparsehead.group_hoyer` (the NumPy core).
"""

from __future__ import annotations

import torch

from sparsehead._validation import check_nonnegative

from .._deprecation import deprecated_alias
from ._ops import _accumulation_dtype, _check_weight, _norms_keepdim
from ._targets import resolve

__all__ = ["group_hoyer", "group_hoyer_penalty", "hoyer_regularization"]


def group_hoyer(w: torch.Tensor, group_axis: int = -1) -> torch.Tensor:
    """Group Hoyer-square `HS(W) = (sum_j ||W_j||_2)^2 / sum_j ||W_j||_2^2`, differentiable.

    `1 <= HS <= G` for `W != 0`, `0` for `W = 0`. The gradient is
    `2 S/Q * W_j/||W_j||_2 - 2 S^2/Q^2 * W_j` (`S = sum g`, `Q = sum g^2`): 0 on a zero group
    and 0 for `W = 0`, never NaN. The weight is divided by its largest magnitude (a constant for
    autograd, `HS` being scale invariant) before the norms, so nothing overflows, even for
    float32 weights near 1e30, and subnormal weights keep float32's precision. A group whose
    norm is below the dtype's smallest normal number times the largest magnitude (2**-126 for
    float32, a dynamic range of 1e38 within the weight) gets gradient 0: its chain rule
    underflows.

    Args:
        w: tensor of at least 2 dimensions, any floating dtype.
        group_axis: the axis whose index names a group (`-1`: columns of `nn.Linear.weight`).

    Returns:
        A 0-d tensor, float32 for float16/bfloat16/float32 weights (float64 for float64); the
        gradient reaching `w` is in `w`'s dtype. Multiply by the strength yourself,
        or use `hoyer_regularization`.
    """
    ax = _check_weight(w, group_axis, "w")
    x = w.to(_accumulation_dtype(w.dtype))
    # Divided by its largest magnitude first (a constant for autograd): the norms of tiny
    # weights are then not rounded to a subnormal's few bits, nor those of huge ones overflowed.
    peak = x.detach().abs().amax()
    r = _norms_keepdim(x / torch.where((peak > 0) & (peak < torch.inf), peak, 1.0), ax)
    s, q = r.sum(), r.square().sum()
    nonzero = q > 0
    return torch.where(nonzero, s.square() / torch.where(nonzero, q, torch.ones_like(q)), 0.0)


def group_hoyer_penalty(weight: torch.Tensor, group_axis: int = -1) -> torch.Tensor:
    """Deprecated name of `group_hoyer` (removed in the next release)."""
    deprecated_alias("group_hoyer_penalty", "group_hoyer")
    return group_hoyer(weight, group_axis)


def hoyer_regularization(
    model: torch.nn.Module,
    hoyer: float,
    targets,
    *,
    group_axis: int | None = None,
) -> torch.Tensor:
    """`hoyer * sum_W HS(W)` over the weights `targets` chooses, to add to a loss.

    Args:
        model: the model (may be wrapped in DDP or `torch.compile`).
        hoyer: the strength, finite and `>= 0`.
        targets: as for `l21_regularization`: names, globs, modules or parameters.
        group_axis: the axis naming a group in every chosen weight; `None` (default) infers it
            per weight from the module that owns it (`-1` for `nn.Linear`, `1` for `nn.Conv*d`).

    Example: `loss = info_nce(z1, z2) + hoyer_regularization(model, 1e-3, "head.2")`.
    """
    hoyer = check_nonnegative(hoyer, "hoyer")
    chosen = resolve(targets, group_axis, model=model)
    return hoyer * sum(group_hoyer(c.param, c.axis) for c in chosen)
