"""Lightning RankMonitor in a real `Trainer` on CPU: the logger receives the core's RankMe and
effective rank of the held-out batch's representation and embedding at epochs every, 2*every.

Expected values are computed independently at each epoch's end by a second callback: the
module in eval mode, `head(backbone(x))` in one call, then `sparsehead.rankme` and
`sparsehead.effective_rank`. Tolerance: float32 outputs (1e-5 relative, tests/tolerances.py);
the monitor runs the batch in chunks, so rows may differ by float32 rounding.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import Logger
from sparsehead.adapters.lightning import RankMonitor
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sparsehead as sh
from tests.tolerances import assert_close

KEYS = (
    "rankme_representation",
    "effective_rank_representation",
    "rankme_embedding",
    "effective_rank_embedding",
)


class Net(pl.LightningModule):
    """A backbone (6 -> 8 -> 5) and a Linear-BN-ReLU-Linear head (BatchNorm: eval mode
    matters) on a regression target, so the weights move every epoch."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.backbone = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 5))
        self.head = nn.Sequential(nn.Linear(5, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return (self.head(self.backbone(x)) - y).square().mean()

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


class Memory(Logger):
    """Keeps what Lightning hands the logger: `(step, metrics)` per call."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[dict] = []

    name = "memory"
    version = 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics, step=None) -> None:
        self.calls.append(dict(metrics))


class Expected(pl.Callback):
    """The core's measures of the batch at each epoch's end, computed here independently; it
    also records whether the module was back in training mode after the monitor ran."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x
        self.values: dict[int, dict[str, float]] = {}
        self.training: list[bool] = []

    @torch.no_grad()
    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.training.append(pl_module.training and pl_module.head[1].training)
        pl_module.eval()
        r = pl_module.backbone(self.x)
        z = pl_module.head(r)
        pl_module.train()
        r, z = r.double().numpy(), z.double().numpy()
        self.values[trainer.current_epoch + 1] = {
            "rankme_representation": sh.rankme(r),
            "effective_rank_representation": sh.effective_rank(r),
            "rankme_embedding": sh.rankme(z),
            "effective_rank_embedding": sh.effective_rank(z),
        }


def data(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    train = TensorDataset(torch.randn(64, 6, generator=g), torch.randn(64, 3, generator=g))
    return DataLoader(train, batch_size=16), torch.randn(20, 6, generator=g)


def fit(callbacks, epochs: int, logger=False, model=None) -> tuple[Net, pl.Trainer]:
    model = Net() if model is None else model
    trainer = pl.Trainer(
        max_epochs=epochs,
        accelerator="cpu",
        callbacks=callbacks,
        logger=logger,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, data()[0])
    return model, trainer


def test_logged_values_are_the_core_measures_at_every_second_epoch():
    _, held_out = data()
    monitor = RankMonitor(held_out, "backbone", "head", every=2, batch_size=7)
    expected, memory = Expected(held_out), Memory()
    fit([monitor, expected], epochs=5, logger=memory)
    assert [r["epoch"] for r in monitor.records] == [2, 4]
    logged = [c for c in memory.calls if any(k.startswith("sparsehead/") for k in c)]
    assert [int(c["epoch"]) + 1 for c in logged] == [2, 4]  # Lightning logs the epoch index
    for call, record in zip(logged, monitor.records, strict=True):
        want = expected.values[record["epoch"]]
        for key in KEYS:
            assert_close(call["sparsehead/" + key], want[key], "float32", err_msg=key)
            assert_close(record[key], want[key], "float32", err_msg=key)
    assert expected.values[2]["rankme_embedding"] != expected.values[4]["rankme_embedding"]
    assert all(expected.training)  # the monitor put the modules back in training mode


def test_modules_and_callables_without_a_head_and_a_prefix():
    """Modules and a callable given directly (not by name); no head: the representation
    only; `every=1` logs each epoch under the chosen prefix."""
    _, held_out = data()
    model = Net()
    monitor = RankMonitor(held_out.numpy(), lambda v: model.backbone(v), prefix="q/")
    expected = Expected(held_out)
    _, trainer = fit([monitor, expected], epochs=2, model=model)
    assert [r["epoch"] for r in monitor.records] == [1, 2]
    logged = {k for k in trainer.callback_metrics if k.startswith("q/")}
    assert logged == {"q/" + k for k in KEYS[:2]}
    for key in KEYS[:2]:
        assert_close(trainer.callback_metrics["q/" + key], expected.values[2][key], "float32")
    both = RankMonitor(held_out, model.backbone, model.head).measure(model)
    for key in KEYS:
        assert_close(both[key], expected.values[2][key], "float32", err_msg=key)


def test_a_diverged_output_gets_nan_never_a_rank():
    _, held_out = data()
    values = RankMonitor(held_out, lambda v: torch.full((len(v), 3), float("nan"))).measure(Net())
    assert sorted(values) == sorted(KEYS[:2])
    assert all(np.isnan(v) for v in values.values())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": torch.zeros(0, 6)}, ValueError, "^x must hold at least 2 samples"),
        ({"x": torch.zeros(1, 6)}, ValueError, "^x must hold at least 2 samples"),
        ({"x": torch.full((4, 6), float("inf"))}, ValueError, "^x must be finite"),
        ({"backbone": 3}, TypeError, "^backbone must be a layer"),
        ({"head": 2.0}, TypeError, "^head must be a layer"),
        ({"every": 0}, ValueError, "^every must be >= 1"),
        ({"every": True}, TypeError, "^every must be an int"),
        ({"batch_size": 0}, ValueError, "^batch_size must be >= 1"),
        ({"prefix": None}, TypeError, "^prefix must be a str"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, match):
    args = {"x": torch.zeros(4, 6), "backbone": "backbone", "head": None}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        RankMonitor(args.pop("x"), args.pop("backbone"), args.pop("head"), **args)


def test_a_wrong_name_fails_before_the_first_step():
    class Counted(Net):
        steps = 0

        def training_step(self, batch, batch_idx):
            Counted.steps += 1
            return super().training_step(batch, batch_idx)

    _, held_out = data()
    with pytest.raises(ValueError, match=r"^head='projector': the Counted has no module"):
        fit([RankMonitor(held_out, "backbone", "projector")], epochs=1, model=Counted())
    assert Counted.steps == 0
    with pytest.raises(ValueError, match=r"^backbone must return .* shape \(20, d\)"):
        RankMonitor(held_out, lambda v: v[:, :, None]).measure(Net())
