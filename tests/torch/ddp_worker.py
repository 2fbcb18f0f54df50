"""Train a tiny head with SparseHead under DistributedDataParallel: 2 gloo processes on CPU.

Run by `test_torch_ddp.py` as `python ddp_worker.py OUT_FILE`: each rank trains on its half of
a batch (penalty in the loss, prox after each step); rank 0 saves every rank's final weight.
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


def train(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> nn.Module:
    """Adam on `mse + LAM * ||W||_{2,1}` (last layer) with the Adam-scaled prox; returns it."""
    opt = torch.optim.Adam(model.parameters(), lr=LR)
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
        model = train(nn.parallel.DistributedDataParallel(build()), x[half], y[half])
        w = model.module[2].weight.detach().contiguous()
        gathered = [torch.empty_like(w) for _ in range(WORLD)]
        dist.all_gather(gathered, w)
        if rank == 0:
            torch.save(torch.stack(gathered), out_file)
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    mp.spawn(worker, args=(free_port(), sys.argv[1]), nprocs=WORLD, join=True)
