"""RankMonitor: the history holds the core's RankMe and effective rank of the representation
and the embedding of the held-out batch, at epochs every, 2*every, ... over the whole training.

The expected values are computed independently: `predict` of the backbone and of the whole
model on the batch (inference mode, jitted where the backend jits), then `sparsehead.rankme`
and `sparsehead.effective_rank`. Tolerance: float32 outputs (1e-5 relative, tests/tolerances.py)
computed by two different paths (eager calls vs `predict`); RankMe and effective rank are smooth
functions of the singular values, so their relative error stays of that order.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sparsehead.adapters.keras import ProjectionHead, RankMonitor

import sparsehead as sh
from tests.tolerances import assert_close

KEYS = (
    "rankme_representation",
    "effective_rank_representation",
    "rankme_embedding",
    "effective_rank_embedding",
)


class Net(keras.Model):
    """A backbone (6 -> 8 -> 5) and the paper's head (BatchNorm inside: inference mode
    matters) on a regression target, so the weights move every epoch."""

    def __init__(self):
        super().__init__(name="net")
        self.backbone = keras.Sequential(
            [keras.Input((6,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(5)]
        )
        self.head = ProjectionHead(8, 3, l21=0.0)

    def call(self, x, training=False):
        return self.head(self.backbone(x, training=training), training=training)


def data(seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.normal(size=(64, 3)).astype("float32")
    held_out = rng.normal(size=(20, 6)).astype("float32")
    return x, y, held_out


def built_net() -> Net:
    keras.utils.set_random_seed(0)
    model = Net()
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def expected(model: Net, held_out: np.ndarray) -> dict[str, float]:
    """The measures of the batch, independently: predict, then the core."""
    r = np.asarray(model.backbone.predict(held_out, verbose=0), dtype=np.float64)
    z = np.asarray(model.predict(held_out, verbose=0), dtype=np.float64)
    return {
        "rankme_representation": sh.rankme(r),
        "effective_rank_representation": sh.effective_rank(r),
        "rankme_embedding": sh.rankme(z),
        "effective_rank_embedding": sh.effective_rank(z),
    }


def assert_measures(logged: dict, want: dict, prefix: str = "") -> None:
    for key in KEYS:
        assert_close(logged[prefix + key], want[key], "float32", err_msg=key)


def test_logged_values_are_the_core_measures_at_every_second_epoch_over_fits():
    """Five fits of one epoch, `every=2`: measured after fits 2 and 4 only (the count goes on
    across fits), each time the core's values of the weights at that epoch's end."""
    x, y, held_out = data()
    model = built_net()
    monitor = RankMonitor(held_out, "backbone", "head", every=2, batch_size=7, prefix="heldout_")
    measured = []
    for fit in range(1, 6):
        history = model.fit(x, y, epochs=1, batch_size=16, verbose=0, callbacks=[monitor])
        logged = history.history
        if fit % 2:
            assert not any(k.startswith("heldout_") for k in logged), (fit, list(logged))
            continue
        want = expected(model, held_out)
        assert_measures({k: v[-1] for k, v in logged.items()}, want, prefix="heldout_")
        measured.append(want)
    assert [r["epoch"] for r in monitor.records] == [2, 4]
    for record, want in zip(monitor.records, measured, strict=True):
        assert_measures(record, want)
    # the weights moved: the two measured epochs do not share values
    assert measured[0]["rankme_embedding"] != measured[1]["rankme_embedding"]


@pytest.mark.parametrize("resume", ["second_fit", "initial_epoch"])
def test_epochs_count_over_the_whole_training(resume):
    """`every=2` over 6 epochs in two fits of 3: epochs 2, 4, 6, whether the second fit starts
    at epoch 0 (continues the count) or at `initial_epoch=3` (Keras' own numbering)."""
    x, y, held_out = data()
    model = built_net()
    monitor = RankMonitor(held_out, model.backbone, model.head, every=2)
    first = model.fit(x, y, epochs=3, verbose=0, callbacks=[monitor]).history
    kwargs = {"epochs": 3} if resume == "second_fit" else {"epochs": 6, "initial_epoch": 3}
    second = model.fit(x, y, verbose=0, callbacks=[monitor], **kwargs).history
    assert [r["epoch"] for r in monitor.records] == [2, 4, 6]
    assert [len(first[k]) for k in KEYS] == [1] * 4
    assert [len(second[k]) for k in KEYS] == [2] * 4
    assert_measures({k: v[-1] for k, v in second.items()}, expected(model, held_out))


def test_every_epoch_and_callables_without_a_head():
    """`every=1` (the default) logs each epoch; a plain callable works as the backbone; with
    no head only the representation is measured."""
    x, y, held_out = data(1)
    model = built_net()
    monitor = RankMonitor(held_out, lambda v: model.backbone(v, training=False))
    history = model.fit(x, y, epochs=2, verbose=0, callbacks=[monitor]).history
    assert [r["epoch"] for r in monitor.records] == [1, 2]
    assert sorted(k for k in history if "rank" in k) == sorted(KEYS[:2])
    want = expected(model, held_out)
    for key in KEYS[:2]:
        assert len(history[key]) == 2
        assert_close(history[key][-1], want[key], "float32", err_msg=key)


def test_measure_outside_fit_and_the_batch_size_does_not_matter():
    _, _, held_out = data(2)
    model = built_net()
    model(held_out[:2])  # build
    whole = RankMonitor(held_out, model.backbone, model.head, batch_size=len(held_out))
    chunked = RankMonitor(held_out, model.backbone, model.head, batch_size=3)
    assert_measures(chunked.measure(), whole.measure())
    assert_measures(whole.measure(), expected(model, held_out))


def test_a_diverged_output_gets_nan_never_a_rank():
    _, _, held_out = data()

    def diverged(v):
        out = np.ones((len(v), 4), "float32")
        out[0, 1] = np.nan
        return out

    values = RankMonitor(held_out, diverged, lambda r: r[:, :2]).measure()
    assert sorted(values) == sorted(KEYS)
    assert all(np.isnan(v) for v in values.values())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"x": np.zeros((0, 6), "float32")}, ValueError, "^x must hold at least 2 samples"),
        ({"x": np.zeros((1, 6), "float32")}, ValueError, "^x must hold at least 2 samples"),
        ({"x": np.zeros(6, "float32")}, ValueError, "^x must hold at least 2 samples"),
        ({"x": np.array([["a", "b"], ["c", "d"]])}, TypeError, "^x must hold real numbers"),
        ({"x": np.full((4, 6), np.nan, "float32")}, ValueError, "^x must be finite"),
        ({"backbone": 3}, TypeError, "^backbone must be a layer"),
        ({"head": 2.0}, TypeError, "^head must be a layer"),
        ({"every": 0}, ValueError, "^every must be >= 1"),
        ({"every": 1.5}, TypeError, "^every must be an int"),
        ({"batch_size": 0}, ValueError, "^batch_size must be >= 1"),
        ({"prefix": 1}, TypeError, "^prefix must be a str"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, error, match):
    args = {"x": np.zeros((4, 6), "float32"), "backbone": "backbone", "head": None}
    args.update(kwargs)
    with pytest.raises(error, match=match):
        RankMonitor(args.pop("x"), args.pop("backbone"), args.pop("head"), **args)


def test_a_wrong_name_fails_before_the_first_step():
    x, y, held_out = data()
    model = built_net()
    steps = []
    counter = keras.callbacks.LambdaCallback(on_train_batch_end=lambda *a: steps.append(1))
    monitor = RankMonitor(held_out, "backbone", "projector")
    with pytest.raises(ValueError, match=r"^head='projector': the model 'net' has no"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[counter, monitor])
    assert steps == []
    with pytest.raises(ValueError, match=r"^backbone='backbone' names an attribute"):
        RankMonitor(held_out, "backbone").measure()  # no model to look it up in


def test_an_output_that_is_not_one_vector_per_sample_is_refused():
    _, _, held_out = data()
    with pytest.raises(ValueError, match=r"^backbone must return .* shape \(20, d\)"):
        RankMonitor(held_out, lambda v: np.zeros((len(v), 2, 2))).measure()
    with pytest.raises(ValueError, match=r"^head must return .* got shape \(20, 0\)"):
        RankMonitor(held_out, lambda v: v, lambda r: r[:, :0]).measure()
