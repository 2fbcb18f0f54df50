"""The L2,1 norm (Eq. 13) and its prox on PyTorch tensors: pure torch ops, safe at zero groups.

Every function takes `group_axis`, the axis whose index names a group; the L2 norm runs over
the other axes. `nn.Linear.weight` is `(out, in)`, so a group (one input feature) is a column:
`group_axis=-1`, the default here. For `nn.Conv2d.weight` `(out, in, kh, kw)` use `group_axis=1`.

Numerics: float16/bfloat16 weights are accumulated in float32, float64 stays float64. Each
group is divided by its largest magnitude before squaring, so no finite weight overflows or
underflows. The norm's gradient is the minimum-norm subgradient: `W_j / ||W_j||_2`, and exactly
0 on a group that is exactly 0 (the double-`where` keeps `sqrt` away from 0, so no NaN).
NaN and inf propagate as in `sqrt(sum(w**2))`: a group holding NaN has norm NaN (and so has
the penalty), a group holding inf and no NaN has norm inf; neither is ever reported as 0.
"""

from __future__ import annotations

import torch

from sparsehead._validation import (
    check_float_dtype,
    check_group_axis,
    check_nonempty,
    check_nonnegative,
)

from .._deprecation import deprecated_alias
from ._dist import aligned, like, whole

__all__ = ["group_norms", "l21_norm", "l21_penalty", "l21_prox", "l21_prox_"]


def _check_weight(weight: torch.Tensor, group_axis: int, name: str = "w") -> int:
    """Validate `weight` and `group_axis` (the core's checkers, so the messages are those of
    every adapter); return `group_axis` as a non-negative index."""
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor; got {type(weight).__name__}")
    check_float_dtype(str(weight.dtype), name)
    if weight.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions; got shape {tuple(weight.shape)}")
    ax = check_group_axis(group_axis, weight.ndim)
    check_nonempty(weight.shape, ax, name)
    return ax


def _accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _norms_keepdim(weight: torch.Tensor, ax: int) -> torch.Tensor:
    """Group norms in the accumulation dtype, shaped to broadcast against `weight`."""
    x = weight.to(_accumulation_dtype(weight.dtype))
    dims = tuple(d for d in range(x.ndim) if d != ax)
    # The scale is a constant for autograd: ||x|| = s * ||x / s|| for any s > 0, so the
    # gradient is still x / ||x||; detaching it keeps amax's subgradient out of the graph.
    peak = aligned(x.detach().abs().amax(dim=dims, keepdim=True), weight, ax)
    # Scale by 1 where the peak is 0, inf or NaN: inf / inf would turn an inf group into NaN.
    scale = torch.where((peak > 0) & (peak < torch.inf), peak, torch.ones_like(peak))
    ss = aligned((x / scale).square().sum(dim=dims, keepdim=True), weight, ax)
    nonzero = ss != 0  # NaN != 0: a NaN group's norm is NaN (an inf group's inf), never 0
    safe = torch.where(nonzero, ss, torch.ones_like(ss))
    return torch.where(nonzero, scale * safe.sqrt(), torch.zeros_like(ss))


def group_norms(w: torch.Tensor, group_axis: int = -1) -> torch.Tensor:
    """L2 norm of each group, `g_j = ||W_j||_2`, differentiable.

    Args:
        w: tensor of at least 2 dimensions, any floating dtype.
        group_axis: the axis whose index names a group (`-1`: columns of `nn.Linear.weight`).

    Returns:
        Shape `(weight.shape[group_axis],)`; float32 for float16/bfloat16/float32, else float64.
    """
    ax = _check_weight(w, group_axis, "w")
    return whole(_norms_keepdim(w, ax)).reshape(w.shape[ax])


def l21_norm(w: torch.Tensor, group_axis: int = -1) -> torch.Tensor:
    """The L2,1 norm (Eq. 13), `||W||_{2,1} = sum_j ||W_j||_2`, as a differentiable 0-d tensor.

    The gradient is the minimum-norm subgradient `W_j / ||W_j||_2`, and 0 on zero groups.
    The result is float32 for float16/bfloat16/float32 weights (float64 for float64), also
    under autocast; the gradient reaching `w` is in `w`'s dtype.
    """
    ax = _check_weight(w, group_axis, "w")
    return whole(_norms_keepdim(w, ax).sum())


def l21_penalty(weight: torch.Tensor, group_axis: int = -1) -> torch.Tensor:
    """Deprecated name of `l21_norm` (removed in the next release)."""
    deprecated_alias("l21_penalty", "l21_norm")
    return l21_norm(weight, group_axis)


def _factor(weight: torch.Tensor, ax: int, threshold: float | torch.Tensor) -> torch.Tensor:
    """Per-group shrink factor `max(0, 1 - t_j / g_j)`, broadcastable against `weight`."""
    g = _norms_keepdim(weight, ax)
    if isinstance(threshold, torch.Tensor):
        # a 0-d threshold stays where it is (one on the host mixes with device tensors as a
        # scalar, with no copy); only a per-group one is moved to the norms' device
        t = threshold.to(dtype=g.dtype) if threshold.ndim == 0 else threshold.to(g.device, g.dtype)
        if t.ndim > 0:
            if t.numel() != weight.shape[ax]:
                raise ValueError(
                    f"threshold must be a scalar or have one entry per group "
                    f"({weight.shape[ax]}); got shape {tuple(t.shape)}"
                )
            t = like(t.reshape(g.shape), g)
    else:
        # filled on the device, not copied from the host (a copy waits for the device)
        t = torch.full(
            (), check_nonnegative(threshold, "threshold"), dtype=g.dtype, device=g.device
        )
    # g > t >= 0 keeps 0/0 out of the chosen branch; the other branch is discarded.
    return torch.where(g > t, 1 - t / torch.where(g > t, g, torch.ones_like(g)), 0.0)


def l21_prox(
    w: torch.Tensor, threshold: float | torch.Tensor, group_axis: int = -1
) -> torch.Tensor:
    """Proximal operator of `t * ||.||_{2,1}`: `prox(W)_j = max(0, 1 - t / ||W_j||_2) * W_j`.

    A group whose norm is at most `t` becomes exactly 0; `t = 0` is the identity.

    Args:
        w: tensor of at least 2 dimensions.
        threshold: `t >= 0`: a float, a 0-d tensor, or a tensor with one entry per group
            (`lr * lambda` for a proximal gradient step).
        group_axis: the axis whose index names a group.

    Returns:
        A new tensor of `w`'s shape and dtype.
    """
    ax = _check_weight(w, group_axis, "w")
    f = _factor(w, ax, threshold)
    return (w.to(f.dtype) * f).to(w.dtype)


@torch.no_grad()
def l21_prox_(
    w: torch.Tensor, threshold: float | torch.Tensor, group_axis: int = -1
) -> torch.Tensor:
    """In-place `l21_prox`: overwrite `w` (e.g. an `nn.Parameter`) and return it."""
    ax = _check_weight(w, group_axis, "w")
    f = _factor(w, ax, threshold)
    if w.dtype == f.dtype:
        return w.mul_(f)
    return w.copy_(w.to(f.dtype) * f)
