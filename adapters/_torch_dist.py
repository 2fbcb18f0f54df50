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

This module is the one seam between the torch adapter and `torch.distributed.tensor`; without
it (torch built without distributed) every helper is the identity.
"""

from __future__ import annotations

import torch

try:  # torch >= 2.4 exposes the public path; builds without distributed have neither
    from torch.distributed.tensor import DTensor, Replicate
except ImportError:  # pragma: no cover - depends on the torch build
    DTensor = None
    Replicate = None

__all__ = ["is_dtensor", "like", "whole"]


def is_dtensor(x: object) -> bool:
    """Whether `x` is a `DTensor` (a sharded or replicated parameter of FSDP2 / tensor parallel)."""
    return DTensor is not None and isinstance(x, DTensor)


def whole(x: torch.Tensor) -> torch.Tensor:
    """A small result (per-group vector, 0-d penalty) as a plain tensor, equal on every rank.

    Differentiable: the gradient flows back to the sharded weight as DTensor's global gradient.
    Call it on per-group vectors and scalars only, never on a weight.
    """
    return x.full_tensor() if is_dtensor(x) else x


def like(t: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """A plain per-group tensor `t` replicated on `weight`'s mesh, to combine with DTensors."""
    if not is_dtensor(weight) or is_dtensor(t):
        return t
    mesh = weight.device_mesh
    return DTensor.from_local(t, mesh, [Replicate()] * mesh.ndim, run_check=False)
