"""SparseHead on sharded DTensor weights: FSDP2 (`fully_shard`), 2 gloo processes on CPU.

Run by `test_torch_fsdp.py` as `python fsdp_worker.py OUT_FILE`. Rank 0 saves a dict:

- `"ops"`: for a `(6, 4)` weight with one zero column and one zero row, sharded on dim 0 or 1
  by `distribute_tensor`, and `group_axis` -1 or 0: `group_norms`, `l21_penalty` and its
  gradient, `l21_prox` (scalar and per-group threshold), `l21_prox_`, and the collectives they
  issued (`CommDebugMode` counts);
- `"train"`: for FSDP2 sharding on dim 0 (its default) and dim 1 (`shard_placement_fn`), and
  both thresholds of `ProximalL21`: the mean loss over ranks at each step and the final weights
  after `STEPS` steps of Adam with the penalty in the loss and the prox after each step.

Each rank trains on its half of the batch; `train(None, ...)` is the single-process reference.
"""

from __future__ import annotations

import os
import socket
import sys
import traceback

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sparsehead.adapters.torch import (
    ProximalL21,
    group_norms,
    l21_penalty,
    l21_prox,
    l21_prox_,
    l21_regularization,
)
from torch import nn

WORLD, STEPS, LR = 2, 6, 0.05
LAM = {"lr": 1.0, "adam": 0.05}  # strong enough that some groups reach exactly 0 in 6 steps
PLACEMENTS = (0, 1)  # the sharded dim
PRECONDITIONS = ("lr", "adam")  # textbook lr * l21, Adam-aware


def weight() -> torch.Tensor:
    g = torch.Generator().manual_seed(2)
    w = torch.randn(6, 4, generator=g)
    w[:, 1] = 0  # a zero group for group_axis=-1
    w[3, :] = 0  # a zero group for group_axis=0
    return w


def build() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 6, generator=g), torch.randn(16, 4, generator=g)


def train(model: nn.Module, x, y, precondition) -> tuple[list[torch.Tensor], list[float]]:
    """Adam on `mse + LAM * ||W||_{2,1}` (last layer) + prox; the weights and each step's loss."""
    opt, lam = torch.optim.Adam(model.parameters(), lr=LR), LAM[precondition]
    ProximalL21(opt, lam, model[2], precondition=precondition).attach()
    losses = []
    for _ in range(STEPS):
        opt.zero_grad()
        loss = (model(x) - y).square().mean() + l21_regularization(model, lam, "2")
        loss.backward()
        opt.step()
        losses.append(loss.detach())
    return [p.detach() for p in model.parameters()], losses


def _ops(mesh) -> dict:
    out = {}
    for dim in PLACEMENTS:
        for group_axis in (-1, 0):
            try:
                out[dim, group_axis] = _op_case(mesh, dim, group_axis)
            except Exception:  # reported per case by the test
                out[dim, group_axis] = {"error": traceback.format_exc()}
    return out


def _op_case(mesh, dim: int, group_axis: int) -> dict:
    from torch.distributed.tensor import Shard, distribute_tensor
    from torch.distributed.tensor.debug import CommDebugMode

    w = distribute_tensor(weight(), mesh, [Shard(dim)]).requires_grad_()
    comm = CommDebugMode()
    with comm:
        norms = group_norms(w, group_axis)
        penalty = l21_penalty(w, group_axis)
    penalty.backward()
    t = torch.linspace(0.5, 2.0, w.shape[group_axis])
    inplace = w.detach().clone()
    l21_prox_(inplace, 1.5, group_axis)
    return {
        "plain": (type(norms) is torch.Tensor, type(penalty) is torch.Tensor),
        "norms": norms.detach(),
        "penalty": penalty.detach(),
        "grad": w.grad.full_tensor(),
        "prox": l21_prox(w.detach(), 1.5, group_axis).full_tensor(),
        "prox_t": l21_prox(w.detach(), t, group_axis).full_tensor(),
        "prox_": inplace.full_tensor(),
        "comms": {str(k): v for k, v in comm.get_comm_counts().items()},
    }


def _train(mesh, rank: int) -> dict:
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    x, y = batch()
    half = slice(rank * 8, (rank + 1) * 8)
    out = {}
    for dim in PLACEMENTS:
        for precondition in PRECONDITIONS:
            model = build()
            kw = {"mesh": mesh, "shard_placement_fn": lambda p, d=dim: Shard(min(d, p.ndim - 1))}
            for m in (model[0], model[2], model):
                fully_shard(m, **kw)
            head = model[2].weight
            assert head.placements == (Shard(dim),), head.placements
            try:
                params, losses = train(model, x[half], y[half], precondition)
            except Exception:  # reported per case by the test
                out[dim, precondition] = {"error": traceback.format_exc()}
                continue
            for loss in losses:
                dist.all_reduce(loss, op=dist.ReduceOp.AVG)
            out[dim, precondition] = {
                "params": [p.full_tensor() for p in params],  # gathered for the check only
                "losses": torch.stack(losses),
            }
    return out


def worker(rank: int, port: int, out_file: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        mesh = init_device_mesh("cpu", (WORLD,))
        result = {"ops": _ops(mesh), "train": _train(mesh, rank)}
        if rank == 0:
            torch.save(result, out_file)
        # No rank tears gloo down while the other still talks to it (seen to abort a rank
        # with "terminate called without an active exception" about one run in five).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    mp.spawn(worker, args=(free_port(), sys.argv[1]), nprocs=WORLD, join=True)
