"""A tiny regression head trained by Lightning with the SparseHead callback.

`python lightning_worker.py OUT_FILE` trains under `strategy="ddp"` with 2 CPU processes
(gloo; Lightning starts the second by re-running this script) and `accumulate_grad_batches=2`,
with the penalty and the prox (two callbacks); each rank saves the head weight and the logged
metrics and how many prox steps ran. `reference()` is the same training in plain PyTorch,
one process, full batches: the expected result.
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


def main(out_file: str) -> None:
    callbacks = [
        SparseHead("net.2", L21, mode="penalty", log_every_n_steps=1),
        SparseHead("net.2", L21, mode="prox", precondition="auto", log_every_n_steps=1),
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
    main(sys.argv[1])
