"""Train a tiny head with SparseHead under DistributedDataParallel: 2 gloo processes on CPU.

Run by `test_torch_ddp.py` as `python ddp_worker.py OUT_FILE`: each rank trains on its half of
a batch (penalty in the loss, prox after each step), once with Adam and once with Adam under
`ZeroRedundancyOptimizer` (each rank holds the Adam state of its own partition only); rank 0
saves every rank's final head weight for both runs, and what `ProximalL21.step()` raised on
each rank when called under ZeRO before any optimizer step (no state anywhere yet).
"""

from __future__ import annotations

import os
import socket
import sys

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from sparsehead.adapters.torch import ProximalL21, l21_regularization
from torch import nn

WORLD, STEPS, LR, LAM = 2, 6, 0.05, 0.05


def build() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 6, generator=g), torch.randn(16, 4, generator=g)


def zero_adam(params) -> torch.optim.Optimizer:
    from torch.distributed.optim import ZeroRedundancyOptimizer

    return ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.Adam, lr=LR)


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, make_optimizer=None) -> nn.Module:
    """Adam on `mse + LAM * ||W||_{2,1}` (last layer) with the Adam-scaled prox; returns it."""
    params = model.parameters()
    opt = torch.optim.Adam(params, lr=LR) if make_optimizer is None else make_optimizer(params)
    head = model.module[2] if hasattr(model, "module") else model[2]
    ProximalL21(opt, LAM, head, precondition="adam").attach()
    for _ in range(STEPS):
        opt.zero_grad()
        loss = (model(x) - y).square().mean() + l21_regularization(model, LAM, "2")
        loss.backward()
        opt.step()
    return model


def worker(rank: int, port: int, out_file: str) -> None:
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    try:
        x, y = batch()
        half = slice(rank * 8, (rank + 1) * 8)
        result = {"errors": _zero_before_step()}
        for name, make_optimizer in (("ddp", None), ("zero", zero_adam)):
            ddp = nn.parallel.DistributedDataParallel(build())
            model = train(ddp, x[half], y[half], make_optimizer)
            w = model.module[2].weight.detach().contiguous()
            gathered = [torch.empty_like(w) for _ in range(WORLD)]
            dist.all_gather(gathered, w)
            result[name] = torch.stack(gathered)
        errors = [None] * WORLD
        dist.all_gather_object(errors, result["errors"])
        result["errors"] = errors
        if rank == 0:
            torch.save(result, out_file)
        # No rank tears gloo down while the other still talks to it (seen to abort a rank
        # with "terminate called without an active exception" about one run in five).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _zero_before_step() -> str | None:
    """What `ProximalL21(precondition="adam").step()` raises under ZeRO with no state yet."""
    model = build()
    prox = ProximalL21(zero_adam(model.parameters()), LAM, model[2], precondition="adam")
    try:
        prox.step()
    except ValueError as e:
        return str(e)
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    mp.spawn(worker, args=(free_port(), sys.argv[1]), nprocs=WORLD, join=True)
