"""SparseHead on sharded weights: `DTensor` parameters of FSDP2 (`fully_shard`) and tensor parallel.

Under FSDP2 a parameter is a `DTensor` sharded on dim 0 (or on the dim `shard_placement_fn`
picks). For an `nn.Linear.weight` `(out, in)` the groups are the columns, so every group norm
`g_j = ||W_j||_2` is split across ranks: a norm computed on the local shard (`to_local()`) is
wrong for every group, with no error. The functions in `_torch_ops` therefore run as DTensor
operations on the sharded weight: the per-group sums of squares (and the per-group scale
`max|W_j|`) are reduced over the mesh dims that shard the non-group axes, by DTensor's own
`Partial -> Replicate` all-reduce; when the group axis itself is sharded each rank owns whole
groups and nothing is reduced. Only the small per-group vector (`G` values) or the 0-d penalty
is ever made whole (`full_tensor()`); the weight is never gathered.

Autograd follows DTensor's global semantics: the gradient of the replicated penalty reaches each
rank's shard as the slice of `dP/dW`, once (not once per rank), so it adds correctly to the
gradient FSDP2 reduce-scatters for the data loss.

Under `ZeroRedundancyOptimizer` each rank keeps the optimizer state (Adam's `exp_avg_sq`) of
its own partition only. `on_state_owner` computes a per-group quantity from that state on the
rank that owns the parameter, with that rank's local optimizer, and broadcasts the `G` values;
every rank then applies the same prox to its (identical) copy of the parameter. A missing state
on the owner raises on every rank, never a silent threshold from an absent state.

This module is the one seam between the torch adapter and `torch.distributed`; without it
(torch built without distributed) every helper is the identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

try:  # torch >= 2.4 exposes the public path; builds without distributed have neither
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer
    from torch.distributed.tensor import DTensor, Replicate, Shard
except ImportError:  # pragma: no cover - depends on the torch build
    DTensor = Replicate = Shard = ZeroRedundancyOptimizer = None

__all__ = [
    "aligned",
    "is_dtensor",
    "is_zero",
    "like",
    "local_optimizer",
    "on_state_owner",
    "whole",
]


def is_dtensor(x: object) -> bool:
    """Whether `x` is a `DTensor` (a sharded or replicated parameter of FSDP2 / tensor parallel)."""
    return DTensor is not None and isinstance(x, DTensor)


def whole(x: torch.Tensor) -> torch.Tensor:
    """A small result (per-group vector, 0-d penalty) as a plain tensor, equal on every rank.

    Differentiable: the gradient flows back to the sharded weight as DTensor's global gradient.
    Call it on per-group vectors and scalars only, never on a weight.
    """
    return x.full_tensor() if is_dtensor(x) else x


def aligned(g: torch.Tensor, weight: torch.Tensor, ax: int) -> torch.Tensor:
    """A per-group reduction `g` of `weight` (kept dims, e.g. partial sums of squares) laid out
    as `weight`'s groups: sharded where `weight` shards the group axis `ax`, whole elsewhere.

    The reduction leaves `g` partial over the mesh dims that shard the other axes; making it
    whole there is one all-reduce of (a shard of) the `G` values. Left to itself DTensor may
    instead reduce-scatter `g` along the group axis over such a mesh dim, and broadcasting that
    back against `weight` (the prox, the penalty's backward) would then move weight-sized
    tensors between ranks.
    """
    if not is_dtensor(g):
        return g
    target = [p if isinstance(p, Shard) and p.dim == ax else Replicate() for p in weight.placements]
    return g.redistribute(g.device_mesh, target)


def like(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A plain per-group tensor `t` replicated on `weight`'s mesh, to combine with DTensors."""
    if not is_dtensor(weight) or is_dtensor(t):
        return t
    mesh = weight.device_mesh
    return DTensor.from_local(t, mesh, [Replicate()] * mesh.ndim, run_check=False)


def is_zero(optimizer: object) -> bool:
    """Whether `optimizer` is a `ZeroRedundancyOptimizer` (state sharded across ranks)."""
    return ZeroRedundancyOptimizer is not None and isinstance(optimizer, ZeroRedundancyOptimizer)


def local_optimizer(optimizer: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer that holds the state: the wrapped one (e.g. `Adam`) under ZeRO."""
    return optimizer.optim if is_zero(optimizer) else optimizer


def _group_of(optimizer: torch.optim.Optimizer, p: torch.Tensor) -> dict:
    return next(g for g in optimizer.param_groups if any(q is p for q in g["params"]))


def on_state_owner(
    optimizer: torch.optim.Optimizer,
    p: torch.Tensor,
    compute: Callable[[torch.optim.Optimizer, dict], torch.Tensor],
    size: int,
    dtype: torch.dtype,
    *,
    check: bool = True,
) -> torch.Tensor:
    """`compute(optimizer, param_group)` -> `(size,)`, on the rank that holds `p`'s state.

    For a plain optimizer this is `compute(optimizer, group of p)`. Under ZeRO the owner rank
    computes it with its local optimizer and broadcasts the `size` values to the other ranks of
    the optimizer's process group (a collective: every rank must call it, in the same order).
    If `compute` raises on the owner, every rank raises `ValueError`; the other ranks learn it
    from the broadcast values, a read on the host, done only while `check` (the state, once
    there, does not go away: callers check until the first success).
    """
    if not is_zero(optimizer):
        return compute(optimizer, _group_of(optimizer, p))
    pg = optimizer.process_group
    owner = optimizer._param_to_rank[p]  # rank within pg
    out = torch.full((size,), float("nan"), dtype=dtype, device=p.device)
    error = None
    if dist.get_rank(pg) == owner:
        try:
            out = compute(optimizer.optim, _group_of(optimizer.optim, p)).to(dtype).contiguous()
        except ValueError as e:  # tell the other ranks before raising, so that none hangs
            error = e
            out.fill_(float("nan"))
    dist.broadcast(out, src=dist.get_global_rank(pg, owner), group=pg)
    if error is not None:
        raise error
    if check and out.isnan().all():
        raise ValueError(
            f"a parameter of shape {tuple(p.shape)} has no optimizer state on its ZeRO owner "
            f"rank {owner}; call it after optimizer.step()"
        )
    return out
