"""lightly's SimCLR model (a backbone, `SimCLRProjectionHead`, `NTXentLoss`) with SparseHead on
the head's last `nn.Linear`: which weight that is, what the BatchNorm lightly puts after it
means, and a few training steps in a Lightning `Trainer` with the `SparseHead` callback (penalty
and prox), against the same steps written by hand in plain PyTorch."""

from __future__ import annotations

import copy

import lightning.pytorch as pl
import pytest
import torch
from lightly.loss import NTXentLoss
from lightly.models.modules import SimCLRProjectionHead
from sparsehead.adapters.lightning import SparseHead
from sparsehead.adapters.torch import select_parameters
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sparsehead as sh
from tests.tolerances import assert_close

IN, FEATURES, HIDDEN, OUT = 12, 24, 16, 8
N, BATCH, STEPS, LR = 32, 16, 6, 0.1  # 6 SGD steps = 3 epochs of 2 batches
LAST = "projection_head.layers.3"  # Linear(16, 8), bias-free, then BatchNorm1d(8)


class SimCLR(pl.LightningModule):
    """lightly's SimCLR recipe (its README's model) on a tiny MLP backbone."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(IN, FEATURES), nn.ReLU())
        self.projection_head = SimCLRProjectionHead(FEATURES, HIDDEN, OUT)
        self.criterion = NTXentLoss(temperature=0.5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projection_head(self.backbone(x))

    def training_step(self, batch, batch_idx):
        x0, x1 = batch
        return self.criterion(self(x0), self(x1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=LR)


def views() -> TensorDataset:
    """Two noisy views of N points: the positive pairs of NT-Xent."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(N, IN, generator=g)
    return TensorDataset(
        x + 0.1 * torch.randn(N, IN, generator=g), x + 0.1 * torch.randn(N, IN, generator=g)
    )


def batches() -> list:
    return list(DataLoader(views(), batch_size=BATCH, shuffle=False))


def fit(callbacks: list) -> tuple[SimCLR, pl.Trainer]:
    model = SimCLR()
    trainer = pl.Trainer(
        max_steps=STEPS,
        accelerator="cpu",
        callbacks=callbacks,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, DataLoader(views(), batch_size=BATCH, shuffle=False))
    return model, trainer


def by_hand(step_loss, after_step=None) -> SimCLR:
    """Plain PyTorch SGD over the same batches; `step_loss(model, batch)` is the loss and
    `after_step(model)` runs after each `optimizer.step()`."""
    model = SimCLR()
    opt = model.configure_optimizers()
    data = batches()
    for step in range(STEPS):
        opt.zero_grad()
        step_loss(model, data[step % len(data)]).backward()
        opt.step()
        if after_step is not None:
            after_step(model)
    return model


def column_norms(w: torch.Tensor) -> torch.Tensor:
    """The group norms of an `nn.Linear` weight `(out, in)`: one per input feature (column)."""
    return w.square().sum(dim=0).sqrt()


def assert_same_parameters(actual: nn.Module, expected: nn.Module) -> None:
    want = dict(expected.named_parameters())
    for name, p in actual.named_parameters():
        e = want[name].detach().numpy()
        assert_close(p.detach().numpy(), e, "float32", atol_scale=float(abs(e).max()), err_msg=name)


def test_the_last_linear_layer_of_the_head_and_the_batchnorm_after_it():
    model = SimCLR()
    layers = model.projection_head.layers
    last = [m for m in layers if isinstance(m, nn.Linear)][-1]
    assert layers[3] is last and last.weight.shape == (OUT, HIDDEN) and last.bias is None
    assert isinstance(layers[4], nn.BatchNorm1d) and len(layers) == 5  # BN after it, by default
    chosen = select_parameters(model, LAST)  # the name SparseHead(..., LAST) resolves
    assert [(n, p is last.weight) for n, p in chosen] == [(f"{LAST}.weight", True)]
    plain = SimCLRProjectionHead(FEATURES, HIDDEN, OUT, batch_norm=False).layers
    assert isinstance(plain[-1], nn.Linear) and plain[-1].weight.shape == (OUT, HIDDEN)


@pytest.mark.parametrize("c", [0.5, 2.0])
def test_the_loss_sees_that_weight_s_scale_only_through_batchnorm_eps(c):
    """BN(c W h; eps) = BN(W h; eps / c^2) exactly: shrinking W uniformly changes the loss only
    through BatchNorm's eps, so the penalty can be paid without switching a feature off."""
    model = SimCLR().double()
    x0, x1 = (v.double() for v in batches()[0])
    scaled = copy.deepcopy(model)
    with torch.no_grad():
        scaled.projection_head.layers[3].weight.mul_(c)
    model.projection_head.layers[4].eps /= c**2
    assert_close(
        scaled.training_step((x0, x1), 0).item(), model.training_step((x0, x1), 0).item(), "float64"
    )


def test_penalty_mode_trains_like_the_loss_written_by_hand():
    l21 = 0.05
    model, trainer = fit([SparseHead(l21, LAST, mode="penalty", log_every_n_steps=0)])
    assert trainer.global_step == STEPS

    def loss(m, batch):  # NT-Xent + l21 * sum of the column norms of the head's last weight
        return (
            m.training_step(batch, 0) + l21 * column_norms(m.projection_head.layers[3].weight).sum()
        )

    assert_same_parameters(model, by_hand(loss))
    unpenalized = by_hand(lambda m, batch: m.training_step(batch, 0))
    w, w0 = model.projection_head.layers[3].weight, unpenalized.projection_head.layers[3].weight
    assert (w - w0).abs().max() > 1e-3  # the penalty acted (far above the float32 tolerance)


def test_prox_mode_switches_off_columns_of_that_weight_only():
    l21 = 1.5  # threshold lr * l21 = 0.15 per step, against column norms of about 0.3
    model, trainer = fit(
        [SparseHead(l21, LAST, mode="prox", precondition="lr", log_every_n_steps=1)]
    )

    def soft_threshold(m):  # prox of t * ||W||_{2,1}: W_j <- max(0, 1 - t / ||W_j||) W_j
        w = m.projection_head.layers[3].weight
        with torch.no_grad():
            w.mul_(torch.clamp(1 - LR * l21 / column_norms(w), min=0))

    expected = by_hand(lambda m, batch: m.training_step(batch, 0), soft_threshold)
    assert_same_parameters(model, expected)
    w = model.projection_head.layers[3].weight.detach()
    zero = column_norms(w) == 0
    assert 0 < int(zero.sum()) < HIDDEN  # some hidden features switched off, not all
    assert torch.equal(zero, column_norms(expected.projection_head.layers[3].weight.detach()) == 0)
    for name, p in model.named_parameters():  # nothing else has an exactly-zero column
        if p.ndim == 2 and name != f"{LAST}.weight":
            assert (column_norms(p.detach()) > 0).all(), name
    summary = sh.sparsity_summary(w.numpy(), group_axis=-1)
    logged = trainer.callback_metrics
    for key in ("l21", "groups_95_energy", "frac_below_1pct", "zero_groups"):
        assert_close(float(logged[f"sparsehead/{LAST}.weight/{key}"]), summary[key], "float32")
