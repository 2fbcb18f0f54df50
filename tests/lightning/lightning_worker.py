"""A tiny regression head trained by Lightning with the SparseHead callback.

`python lightning_worker.py OUT_FILE` trains under `strategy="ddp"` with 2 CPU processes
(gloo; Lightning starts the second by re-running this script) and `accumulate_grad_batches=2`,
with the penalty and the prox (two callbacks); each rank saves the head weight and the logged
metrics. `python lightning_worker.py OUT_FILE fsdp` trains the same under FSDP2
(`ModelParallelStrategy`, `fully_shard` in `configure_model`), once per mode; rank 0 saves
the gathered head weight, the logged metrics and the collectives the callback issued.
`reference()` is the same training in plain PyTorch, one process, full batches: the expected
result.
"""

from __future__ import annotations

import os
import sys

import lightning.pytorch as pl
import torch
from sparsehead.adapters.lightning import SparseHead
from sparsehead.adapters.torch import ProximalL21, l21_regularization
from torch import nn
from torch.utils.data import DataLoader, Subset, TensorDataset

N, LR, L21, ACCUMULATE, STEPS = 64, 0.05, 0.1, 2, 4  # 4 steps = 8 batches of 8 = 1 epoch


def data() -> TensorDataset:
    g = torch.Generator().manual_seed(1)
    return TensorDataset(torch.randn(N, 6, generator=g), torch.randn(N, 4, generator=g))


class Net(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return (self.net(x) - y).square().mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=LR)


def fit(callbacks, batch_size: int, dataset=None, **trainer_kwargs) -> tuple[Net, pl.Trainer]:
    model = Net()
    trainer = pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        accumulate_grad_batches=ACCUMULATE,
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        **trainer_kwargs,
    )
    dataset = data() if dataset is None else dataset
    trainer.fit(model, DataLoader(dataset, batch_size=batch_size, shuffle=False))
    return model, trainer


def reference(penalty: bool, prox: str | None, batch_size: int) -> torch.Tensor:
    """Plain PyTorch: Adam, `ACCUMULATE` micro-batches per step, each `(mse + pen) / k`, and
    the prox after each step (`prox`: `"adam"`, `"lr"` for `lr * l21`, or None for none)."""
    model = Net()
    opt = torch.optim.Adam(model.parameters(), lr=LR)
    if prox is not None:
        ProximalL21(
            opt, L21, model.net[2], precondition="adam" if prox == "adam" else "lr"
        ).attach()
    batches = list(DataLoader(data(), batch_size=batch_size, shuffle=False))
    for step in range(STEPS):
        opt.zero_grad()
        for x, y in batches[step * ACCUMULATE : (step + 1) * ACCUMULATE]:
            loss = model.training_step((x, y), 0)
            if penalty:
                loss = loss + l21_regularization(model, L21, "net.2")
            (loss / ACCUMULATE).backward()
        opt.step()
    return model.net[2].weight.detach()


class ShardedNet(Net):
    """`Net` sharded by FSDP2 over the data-parallel mesh: each `Linear`, then the `Sequential`
    (the root, whose forward `training_step` calls), as in Lightning's FSDP2 guide."""

    def configure_model(self) -> None:
        from torch.distributed.fsdp import fully_shard

        mesh = self.device_mesh["data_parallel"]
        for m in (self.net[0], self.net[2], self.net):
            fully_shard(m, mesh=mesh)

    def training_step(self, batch, batch_idx):
        from torch.distributed.tensor import DTensor

        loss = super().training_step(batch, batch_idx)
        # after the forward FSDP2 reshards the head: the penalty sees the sharded DTensor
        self.sharded_after_forward = isinstance(self.net[2].weight, DTensor)
        return loss


def fsdp(out_file: str) -> None:
    """Penalty mode, then prox mode (`"auto"`: Adam-aware), each a `Trainer.fit` under FSDP2."""
    from lightning.pytorch.strategies import ModelParallelStrategy
    from torch.distributed.tensor import DTensor, Shard
    from torch.distributed.tensor.debug import CommDebugMode

    rank = int(os.environ.get("LOCAL_RANK", "0"))
    shard = Subset(data(), range(rank, N, 2))  # as in main(): the two ranks' batches are one
    result = {}
    for mode in ("penalty", "prox"):
        callback = SparseHead(L21, "net.2", mode=mode, precondition="auto", log_every_n_steps=1)
        model = ShardedNet()
        trainer = pl.Trainer(
            max_steps=STEPS,
            accelerator="cpu",
            devices=2,
            strategy=ModelParallelStrategy(
                data_parallel_size=2, tensor_parallel_size=1, process_group_backend="gloo"
            ),
            accumulate_grad_batches=ACCUMULATE,
            callbacks=[callback],
            use_distributed_sampler=False,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        )
        trainer.fit(model, DataLoader(shard, batch_size=4, shuffle=False))
        w = model.net[2].weight
        assert isinstance(w, DTensor) and w.placements == (Shard(0),), type(w)
        comm = CommDebugMode()
        with comm:  # what logging and the penalty cost on the sharded weight
            callback.measures(model)
            callback.penalty(model)
        result[mode] = {
            "weight": w.detach().full_tensor(),  # gathered for the check only
            "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            "proxes": len(callback.proxes),
            "sharded_after_forward": model.sharded_after_forward,
            "comms": {str(k): v for k, v in comm.get_comm_counts().items()},
        }
    if trainer.global_rank == 0:
        torch.save(result, out_file)


def main(out_file: str) -> None:
    callbacks = [
        SparseHead(L21, "net.2", mode="penalty", log_every_n_steps=1),
        SparseHead(L21, "net.2", mode="prox", precondition="auto", log_every_n_steps=1),
    ]
    # rank r trains on samples r, r+2, ... in order (Lightning's own DistributedSampler would
    # shuffle): each step's two batches of 4 are the reference's batch of 8
    rank = int(os.environ.get("LOCAL_RANK", "0"))  # set by Lightning in the process it starts
    shard = Subset(data(), range(rank, N, 2))
    model, trainer = fit(
        callbacks, 4, shard, strategy="ddp", devices=2, use_distributed_sampler=False
    )
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    result = {"weight": model.net[2].weight.detach(), "metrics": metrics}
    torch.save(result, f"{out_file}.rank{trainer.global_rank}")


if __name__ == "__main__":
    fsdp(sys.argv[1]) if sys.argv[2:] == ["fsdp"] else main(sys.argv[1])
