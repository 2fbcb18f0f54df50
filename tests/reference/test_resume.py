"""A resumed run is the uninterrupted run: same batches in the same order, same final weights.

`TwoViews` promises that the views of batch `i` in epoch `e` depend only on `(seed, e, i)`,
and `BackupAndRestore` restores weights, optimizer state and the epoch. The test stops a run
after epoch 1 (as a kill after the backup would), resumes it in a new `run`, and compares
with a run that was never stopped, on the backend KERAS_BACKEND selects: each of tensorflow,
jax and torch is deterministic on CPU for a fixed seed, so the comparison is exact. With
`--augment device` (the augmentation parameters drawn per `(seed, e, i)`, the pixels made in
the train step) as with the default host augmentation.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

keras = pytest.importorskip("keras")
pytest.importorskip("sklearn")
pytest.importorskip("matplotlib")

from reference import training  # noqa: E402
from reference.cli import config_from_args  # noqa: E402

# Runs Keras models: under every backend in CI (`keras_backend`), except the controller
# experiment's wiring, which is the script's and the same on every backend.

EPOCHS, STOP_AFTER = 3, 1


class _Recorder(keras.callbacks.Callback):
    """Records, per training epoch, the digest of each batch the data set yields (in the
    order it yields them) and, at the end, the values of every model and optimizer variable.
    Raises KeyboardInterrupt after `stop_after` epochs (after the backup, as a kill would)."""

    def __init__(self, batches: dict, stop_after: int | None = None):
        super().__init__()
        self.batches, self.stop_after = batches, stop_after
        self.epoch = None
        self.final = None
        self.kinds = set()  # the types of the batches yielded

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch
        self.batches[epoch] = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch = None
        if self.stop_after is not None and epoch + 1 == self.stop_after:
            raise KeyboardInterrupt("simulated interruption")

    def on_train_end(self, logs=None):
        variables = [*self.model.weights, *self.model.optimizer.variables]
        self.final = [keras.ops.convert_to_numpy(v) for v in variables]


def _digest(batch) -> str:
    """sha1 of a batch: an array, or the dict of arrays that `--augment device` yields."""
    arrays = [batch[k] for k in sorted(batch)] if isinstance(batch, dict) else [batch]
    h = hashlib.sha1()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def _recording_views(recorders: list):
    """A TwoViews that reports each batch it yields to the recorder of the current run."""

    class RecordingViews(training.TwoViews):
        def __getitem__(self, i):
            batch = super().__getitem__(i)
            rec = recorders[-1]
            if rec.epoch is not None:  # not the peek some backends take before training
                rec.batches[rec.epoch].append((i, _digest(batch)))
                rec.kinds.add(type(batch).__name__)
            return batch

    return RecordingViews


@pytest.fixture
def fast_run(monkeypatch):
    """`training.run` without the encoding, probes, diagnostics and plots (tested elsewhere):
    only the training loop and its checkpoints matter here."""
    monkeypatch.setattr(training, "encode", lambda *a, **k: (np.zeros((2, 1)), np.zeros((2, 1))))
    monkeypatch.setattr(training, "probe", lambda *a, **k: {})
    monkeypatch.setattr(training, "diagnostics", lambda *a, **k: ({}, {}))
    monkeypatch.setattr(training, "plot_spectra", lambda *a, **k: None)
    recorders: list[_Recorder] = []
    monkeypatch.setattr(training, "TwoViews", _recording_views(recorders))

    def run(cfg, stop_after=None, extra=()):
        rec = _Recorder({}, stop_after)
        recorders.append(rec)
        if stop_after is None:
            return training.run(cfg, callbacks=[*extra, rec], verbose=0), rec
        with pytest.raises(KeyboardInterrupt):
            training.run(cfg, callbacks=[*extra, rec], verbose=0)
        return None, rec

    return run


def _config(out, augment: str = "host", flags=()) -> dict:
    argv = ["--dataset", "digits", "--out", str(out), "--quiet", "--augment", augment, *flags]
    cfg = config_from_args("simclr", argv)
    # 4 batches per epoch, so that their order within an epoch can differ.
    cfg.update(train_size=128, test_size=40, batch_size=32, head_hidden=16, head_dim=8)
    cfg.update(epochs=EPOCHS)
    return cfg


@pytest.mark.keras_backend
@pytest.mark.parametrize("augment", ["host", "device"])
def test_resumed_run_equals_the_uninterrupted_run(tmp_path, fast_run, augment):
    whole, rec_whole = fast_run(_config(tmp_path / "whole", augment))

    _, rec_first = fast_run(_config(tmp_path / "resumed", augment), stop_after=STOP_AFTER)
    cfg = config_from_args("simclr", ["--out", str(tmp_path / "resumed"), "--resume", "--quiet"])
    resumed, rec_resumed = fast_run(cfg)

    assert resumed["config"]["augment"] == augment
    assert rec_whole.kinds == rec_resumed.kinds == {"dict" if augment == "device" else "ndarray"}
    assert resumed["epochs_completed"] == whole["epochs_completed"] == EPOCHS
    assert resumed["timing"]["epochs_this_session"] == EPOCHS - STOP_AFTER
    assert sorted(rec_first.batches) == list(range(STOP_AFTER))
    for epoch in range(STOP_AFTER):
        assert rec_first.batches[epoch] == rec_whole.batches[epoch]
    # The data: every epoch after the restart yields the same batches, in the same order.
    assert sorted(rec_resumed.batches) == list(range(STOP_AFTER, EPOCHS))
    for epoch in range(STOP_AFTER, EPOCHS):
        assert len(rec_whole.batches[epoch]) == 4
        assert rec_resumed.batches[epoch] == rec_whole.batches[epoch], f"epoch {epoch}"
    # Epochs differ from each other (a reshuffle and new views every epoch).
    assert rec_whole.batches[1] != rec_whole.batches[2]
    # The losses of every epoch, and the final weights and optimizer state, exactly.
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"]]
    assert len(rec_resumed.final) == len(rec_whole.final)
    for got, want in zip(rec_resumed.final, rec_whole.final, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.keras_backend
def test_resumed_adaptive_run_continues_the_same_lambda(tmp_path, fast_run):
    """`AdaptiveL21`'s λ and the PI state (ξ, s̄) are no model weights: the run checkpoints
    them beside the backup. A resume that restarted λ at `--l21`, or the PI state at none,
    would differ from epoch 2 on (the dual step's state is λ alone: the same path)."""
    flags = ["--target-sparsity", "0.25", "--controller", "pi", "--proximal",
             "--l21", "1", "--adaptive-every", "1"]  # fmt: skip

    whole, _ = fast_run(_config(tmp_path / "whole", flags=flags))
    fast_run(_config(tmp_path / "resumed", flags=flags), stop_after=STOP_AFTER)
    cfg = config_from_args("simclr", ["--out", str(tmp_path / "resumed"), "--resume", "--quiet"])
    resumed, _ = fast_run(cfg)

    lambdas = [h["adaptive_l21"] for h in whole["history"]]
    assert len(set(lambdas)) == EPOCHS  # λ moves every epoch: a restart would show
    assert [h["adaptive_l21"] for h in resumed["history"]] == lambdas
    assert [h["loss"] for h in resumed["history"]] == [h["loss"] for h in whole["history"]]


def test_resumed_controller_experiment_continues_its_trace(tmp_path, fast_run):
    """reference/experiments/controller.py's callback (a prox and a PI `AdaptiveL21` put on the
    head at train begin) is checkpointed like the reference's own: the resumed run's trace of
    λ per epoch is the uninterrupted run's."""
    from reference.experiments.controller import _head_callback

    def config(out):
        return _config(out, flags=["--l21", "0"])

    gains = {"kp": 1.0, "nu": 0.5, "smoothing": 0.5}
    whole = _head_callback(1.0, 1, gains)
    fast_run(config(tmp_path / "whole"), extra=[whole])
    fast_run(
        config(tmp_path / "resumed"), stop_after=STOP_AFTER, extra=[_head_callback(1.0, 1, gains)]
    )
    cfg = config_from_args("simclr", ["--out", str(tmp_path / "resumed"), "--resume", "--quiet"])
    resumed = _head_callback(1.0, 1, gains)
    fast_run(cfg, extra=[resumed])

    lambdas = [t["adaptive_l21"] for t in whole.trace]
    assert len(set(lambdas)) == EPOCHS
    assert resumed.trace == whole.trace
