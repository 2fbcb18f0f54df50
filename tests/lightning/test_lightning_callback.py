"""The SparseHead Lightning callback in a real `Trainer` on CPU, against plain PyTorch loops."""

from __future__ import annotations

import pytest
import torch
from sparsehead.adapters.lightning import SparseHead

import sparsehead as sh
from tests.tolerances import assert_close
from tests.torch.host_reads import host_reads
from tests.workers import run_worker

from . import lightning_worker as lw


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    e = expected.numpy()
    assert_close(actual.numpy(), e, "float32", atol_scale=float(abs(e).max()))


@pytest.mark.parametrize(
    ("mode", "precondition", "expected"),
    [
        ("penalty", "auto", (True, None)),
        ("prox", "auto", (False, "adam")),  # Adam: "auto" is the Adam-aware threshold
        ("prox", "lr", (False, "lr")),
    ],
)
def test_callback_matches_plain_loop_with_accumulation(mode, precondition, expected):
    model, trainer = lw.fit(
        [SparseHead(lw.L21, "net.2", mode=mode, precondition=precondition)],
        batch_size=8,
        devices=1,
    )
    assert trainer.global_step == lw.STEPS  # 8 batches, accumulate 2: 4 optimizer steps
    _close(model.net[2].weight.detach(), lw.reference(*expected, batch_size=8))
    assert "training_step" not in vars(model)  # the wrapper is gone after fit


class DictNet(lw.Net):
    """`Net` whose `training_step` returns `{"loss": ..., ...}`, as Lightning allows."""

    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        return {"loss": loss, "mse": loss.detach()}


@pytest.mark.parametrize("net", [lw.Net, DictNet], ids=["tensor", "dict"])
def test_penalty_is_added_to_a_tensor_or_a_dict_loss(net, monkeypatch):
    """The penalty reaches the gradient whether `training_step` returns the loss tensor or a
    dict holding it: the weights equal the plain loop with the penalty, not without it."""
    monkeypatch.setattr(lw, "Net", net)
    model, _ = lw.fit([SparseHead(lw.L21, "net.2", mode="penalty")], batch_size=8, devices=1)
    assert isinstance(model, net)
    monkeypatch.undo()
    with_penalty, without = lw.reference(True, None, 8), lw.reference(False, None, 8)
    assert (with_penalty - without).abs().max() > 1e-3  # the penalty does move the weights
    _close(model.net[2].weight.detach(), with_penalty)


def test_logged_measures_are_those_of_the_final_weight():
    model, trainer = lw.fit([SparseHead(0.5, "net.2", mode="prox", log_every_n_steps=2)], 8)
    w = model.net[2].weight.detach().numpy()
    summary = sh.sparsity_summary(w, group_axis=-1)  # the core, on the full weight
    assert summary["zero_groups"] > 0  # the measures are not trivially 0
    logged = trainer.callback_metrics
    for key in ("l21", "groups_95_energy", "frac_below_1pct", "zero_groups"):
        assert_close(float(logged[f"sparsehead/net.2.weight/{key}"]), summary[key], "float32")


@pytest.mark.parametrize("mode", ["penalty", "prox"])
def test_training_reads_nothing_on_the_host_but_the_logs(mode):
    """A whole fit: the callback's penalty and prox read no tensor value on the host (on a
    GPU each read would wait for the device); with logging on, only the logged measures do,
    once per log: at optimizer steps 0, 2 and 4 (one copy of the group norms each)."""
    with host_reads() as reads:
        lw.fit([SparseHead(lw.L21, "net.2", mode=mode, log_every_n_steps=0)], batch_size=8)
    assert reads == []
    with host_reads() as reads:
        lw.fit([SparseHead(lw.L21, "net.2", mode=mode, log_every_n_steps=2)], batch_size=8)
    assert all("lightning.py" in r for r in reads)
    assert sorted(r.split()[0] for r in reads) == ["cpu"] * 3 + ["numpy"] * 3


class LateNet(lw.Net):
    """`Net` whose layers are built in `configure_model` (after the callbacks' `setup`), as a
    module to be sharded by FSDP2 may do."""

    def __init__(self) -> None:
        lw.pl.LightningModule.__init__(self)
        self.net = None

    def configure_model(self) -> None:
        if self.net is None:
            self.net = lw.Net().net  # the same seeded layers


@pytest.mark.parametrize(
    ("mode", "expected"), [("penalty", (True, None)), ("prox", (False, "adam"))]
)
def test_layers_built_in_configure_model(mode, expected):
    cb = SparseHead(lw.L21, "net.2", mode=mode)
    trainer = lw.pl.Trainer(
        max_steps=lw.STEPS,
        accelerator="cpu",
        accumulate_grad_batches=lw.ACCUMULATE,
        callbacks=[cb],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    model = LateNet()
    trainer.fit(model, lw.DataLoader(lw.data(), batch_size=8, shuffle=False))
    _close(model.net[2].weight.detach(), lw.reference(*expected, batch_size=8))


def test_wrong_target_name_fails_before_the_first_step():
    class Counted(lw.Net):
        calls = 0

        def training_step(self, batch, batch_idx):
            Counted.calls += 1
            return super().training_step(batch, batch_idx)

    trainer = lw.pl.Trainer(
        max_steps=1, accelerator="cpu", logger=False, callbacks=[SparseHead(1e-3, "net.9")]
    )
    with pytest.raises(ValueError, match=r"'net\.9' names no parameter"):
        trainer.fit(Counted(), lw.DataLoader(lw.data(), batch_size=8))
    assert Counted.calls == 0  # raised at fit start, not inside the first training_step


def test_penalty_mode_rejects_a_step_without_loss():
    class NoLoss(lw.Net):
        def training_step(self, batch, batch_idx):
            return {"loss_value": super().training_step(batch, batch_idx)}

    cb = SparseHead(1e-3, "net.2")
    trainer = lw.pl.Trainer(max_steps=1, accelerator="cpu", logger=False, callbacks=[cb])
    with pytest.raises(TypeError, match="'loss' tensor"):
        trainer.fit(NoLoss(), lw.DataLoader(lw.data(), batch_size=8))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"l21": -1.0}, ValueError, "l21 must be >= 0"),
        ({"l21": "1"}, TypeError, "l21 must be a real"),
        ({"mode": "both"}, ValueError, "mode must be one of"),
        ({"precondition": "sgd"}, ValueError, "precondition must be one of"),
        ({"precondition": None}, TypeError, "precondition must be a str"),
        ({"log_every_n_steps": -1}, ValueError, "log_every_n_steps must be >= 0"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SparseHead(**{"l21": 1e-3, "targets": "net.2", **kwargs})


@pytest.mark.multiprocess
def test_ddp_two_processes_with_accumulation_matches_one_process(tmp_path):
    out = tmp_path / "result.pt"
    run_worker(lw.__file__, out, cwd=tmp_path)
    ranks = [torch.load(f"{out}.rank{r}") for r in range(2)]
    assert torch.equal(ranks[0]["weight"], ranks[1]["weight"])  # the replicas stay identical
    # rank r has the samples r, r+2, ...: the two ranks' batches of 4 are one batch of 8, and
    # DDP's average of two mean losses is the mean over the 8
    expected = lw.reference(penalty=True, prox="adam", batch_size=8)
    _close(ranks[0]["weight"], expected)
    zero = (expected == 0).all(dim=0)
    assert zero.any() and (ranks[0]["weight"][:, zero] == 0).all()
    assert ranks[0]["metrics"]["sparsehead/net.2.weight/zero_groups"] == int(zero.sum())
