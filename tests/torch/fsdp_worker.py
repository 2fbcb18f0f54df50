"""SparseHead on sharded DTensor weights: FSDP2 (`fully_shard`), gloo processes on CPU.

Run by `test_torch_fsdp.py` as `python fsdp_worker.py OUT_FILE MESH`: `MESH` is `1d` (2
processes, a mesh of 2) or `2d` (4 processes, a 2 x 2 mesh: HSDP, replicated over the first
mesh dim and sharded over the second, and weights sharded over both dims). Rank 0 saves a dict:

- `"ops"`: for a `(12, 8)` weight with one zero column and one zero row, laid out by
  `distribute_tensor` with each placement of `PLACEMENTS[MESH]`, and `group_axis` -1 or 0:
  `group_norms`, `l21_norm` and its gradient, `l21_prox` (scalar and per-group threshold),
  `l21_prox_`, the collectives they issued (`CommDebugMode` counts) and the largest tensor any
  collective was given, per operation (`"payload"`);
- `"train"`: for FSDP2 sharding on dim 0 (its default) and dim 1 (`shard_placement_fn`), and
  both thresholds of `ProximalL21`: the mean loss over ranks at each step and the final weights
  after `STEPS` steps of Adam with the penalty in the loss and the prox after each step.

A placement is a tuple with one entry per mesh dim: `None` for `Replicate()`, `d` for
`Shard(d)`. Each rank trains on its share of the batch (16 samples: 8 on each of 2 ranks, 4 on
each of 4); `train(build(), x, y, ...)` on the whole batch is the single-process reference.
"""

from __future__ import annotations

import math
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
    l21_norm,
    l21_prox,
    l21_prox_,
    l21_regularization,
)
from torch import nn

STEPS, LR = 6, 0.05
LAM = {"lr": 1.0, "adam": 0.05}  # strong enough that some groups reach exactly 0 in 6 steps
MESHES = {"1d": (2,), "2d": (2, 2)}
PLACEMENTS = {  # for the ops: the layouts of the weight checked on each mesh
    "1d": ((0,), (1,)),
    "2d": ((None, 0), (None, 1), (0, 1), (1, 0), (0, 0)),  # (0, 0): dim 0 split 4 ways, unevenly
}
TRAIN_PLACEMENTS = {  # what FSDP2 makes of the head weight: Shard(0), or Shard(1) on request
    "1d": ((0,), (1,)),
    "2d": ((None, 0), (None, 1)),  # HSDP: replicated over the first mesh dim
}
PRECONDITIONS = ("lr", "adam")  # textbook lr * l21, Adam-aware


def placements(spec: tuple) -> list:
    from torch.distributed.tensor import Replicate, Shard

    return [Replicate() if d is None else Shard(d) for d in spec]


def weight() -> torch.Tensor:
    """`(12, 8)`: on 4 ranks a local shard has at least 24 entries, more than the G <= 12 values
    of a per-group vector, so a collective that carries more than G values moved the weight."""
    g = torch.Generator().manual_seed(2)
    w = torch.randn(12, 8, generator=g)
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


def _ops(mesh, kind: str) -> dict:
    out = {}
    for spec in PLACEMENTS[kind]:
        for group_axis in (-1, 0):
            try:
                out[spec, group_axis] = _op_case(mesh, spec, group_axis)
            except Exception:  # reported per case by the test
                out[spec, group_axis] = {"error": traceback.format_exc()}
    return out


def _payload_mode():
    """A `CommDebugMode` that also records the largest tensor a collective was given (entries)."""
    from torch.distributed.tensor.debug import CommDebugMode

    class Payload(CommDebugMode):
        largest = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            before = sum(self.comm_counts.values())
            out = super().__torch_dispatch__(func, types, args, kwargs)
            if sum(self.comm_counts.values()) > before:  # this call was a collective
                sizes = [a.numel() for a in args if isinstance(a, torch.Tensor)]
                self.largest = max([self.largest, *sizes])
            return out

    return Payload()


def _op_case(mesh, spec: tuple, group_axis: int) -> dict:
    from torch.distributed.tensor import distribute_tensor

    w = distribute_tensor(weight(), mesh, placements(spec)).requires_grad_()
    t = torch.linspace(0.5, 2.0, w.shape[group_axis])
    inplace = w.detach().clone()
    modes = {k: _payload_mode() for k in ("forward", "backward", "prox", "prox_t", "prox_")}
    with modes["forward"]:
        norms = group_norms(w, group_axis)
        penalty = l21_norm(w, group_axis)
    with modes["backward"]:
        penalty.backward()
    with modes["prox"]:
        prox = l21_prox(w.detach(), 1.5, group_axis)
    with modes["prox_t"]:
        prox_t = l21_prox(w.detach(), t, group_axis)
    with modes["prox_"]:
        l21_prox_(inplace, 1.5, group_axis)
    return {
        "plain": (type(norms) is torch.Tensor, type(penalty) is torch.Tensor),
        "norms": norms.detach(),
        "penalty": penalty.detach(),
        "grad": w.grad.full_tensor(),
        "prox": prox.full_tensor(),
        "prox_t": prox_t.full_tensor(),
        "prox_": inplace.full_tensor(),
        "comms": {str(k): v for k, v in modes["forward"].get_comm_counts().items()},
        "payload": {k: m.largest for k, m in modes.items()},
    }


def _train(mesh, kind: str, rank: int, world: int) -> dict:
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    x, y = batch()
    share = slice(rank * len(x) // world, (rank + 1) * len(x) // world)
    out = {}
    for spec in TRAIN_PLACEMENTS[kind]:
        dim = spec[-1]
        for precondition in PRECONDITIONS:
            model = build()
            kw = {"mesh": mesh, "shard_placement_fn": lambda p, d=dim: Shard(min(d, p.ndim - 1))}
            for m in (model[0], model[2], model):
                fully_shard(m, **kw)
            head = model[2].weight
            assert head.placements == tuple(placements(spec)), head.placements
            try:
                params, losses = train(model, x[share], y[share], precondition)
            except Exception:  # reported per case by the test
                out[spec, precondition] = {"error": traceback.format_exc()}
                continue
            for loss in losses:
                dist.all_reduce(loss, op=dist.ReduceOp.AVG)
            out[spec, precondition] = {
                "params": [p.full_tensor() for p in params],  # gathered for the check only
                "losses": torch.stack(losses),
            }
    return out


def worker(rank: int, port: int, out_file: str, kind: str) -> None:
    from torch.distributed.device_mesh import init_device_mesh

    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    world = math.prod(MESHES[kind])
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        names = ("replicate", "shard")[-len(MESHES[kind]) :]  # FSDP2 wants them named for HSDP
        mesh = init_device_mesh("cpu", MESHES[kind], mesh_dim_names=names)
        result = {"ops": _ops(mesh, kind), "train": _train(mesh, kind, rank, world)}
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
    out_file, kind = sys.argv[1], sys.argv[2]
    mp.spawn(worker, args=(free_port(), out_file, kind), nprocs=math.prod(MESHES[kind]), join=True)
