"""BYOL's target network (reference/methods.py): batch statistics in its BatchNorm, updates by
the exponential moving average only, and the cosine schedule of its decay (Grill et al., 2020).

Run once per Keras backend (KERAS_BACKEND), each in its own process."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from reference.methods import BYOL, cosine_tau  # noqa: E402

pytestmark = pytest.mark.keras_backend  # runs Keras models: under every backend in CI

D_IN, D = 4, 6


def _net(seed: int) -> keras.Model:
    """A backbone whose output is BatchNorm's: standardized per feature in batch-stat mode."""
    return keras.Sequential(
        [
            keras.Input((D_IN,)),
            keras.layers.Dense(D, kernel_initializer=keras.initializers.GlorotNormal(seed)),
            keras.layers.BatchNormalization(epsilon=1e-3),
        ]
    )


def _byol(tau: float = 0.9, total_steps=None) -> BYOL:
    predictor = keras.Sequential([keras.layers.Dense(D)])
    model = BYOL(
        _net(1),
        keras.layers.Identity(),
        predictor,
        _net(2),
        keras.layers.Identity(),
        tau=tau,
        total_steps=total_steps,
    )
    model.build((None, D_IN))
    return model


def _batch(n: int = 64) -> np.ndarray:
    # Far from zero mean and unit variance, so moving statistics (initially 0 and 1) and batch
    # statistics give very different outputs.
    return (3.0 + 5.0 * np.random.default_rng(0).standard_normal((n, D_IN))).astype("float32")


def _np(v) -> np.ndarray:
    return keras.ops.convert_to_numpy(v).astype(np.float64)


def test_target_batchnorm_normalises_with_the_batch_statistics():
    model = _byol()
    out = model(_batch(), training=True)
    zt = _np(out["zt"])
    # BN(Dense(x)) with the batch's own mean and variance, gamma = 1, beta = 0: every feature
    # has mean 0 and standard deviation sqrt(var / (var + eps)) ~ 1 over the batch.
    np.testing.assert_allclose(zt.mean(axis=0), 0.0, atol=1e-4)
    np.testing.assert_allclose(zt.std(axis=0), 1.0, atol=1e-3)


def test_target_is_updated_by_the_ema_only_not_by_gradients():
    model = _byol(tau=0.9)
    # Move the target away from the online network so that the EMA has something to do.
    for t, _ in model._pairs():
        t.assign(t + 0.5)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    target_ids = {id(t) for t, _ in model._pairs()}
    assert not target_ids & {id(v) for v in model.trainable_weights}
    pairs = [(t, o) for t, o in model._pairs() if o.trainable]  # kernels, gamma, beta
    assert pairs
    before = [(_np(t), _np(o)) for t, o in pairs]
    model.train_on_batch(_batch())
    moved = 0
    for (t, o), (t0, o0) in zip(pairs, before, strict=True):
        # t <- tau t + (1 - tau) o with o the online value before this step's gradient update.
        np.testing.assert_allclose(_np(t), 0.9 * t0 + 0.1 * o0, rtol=1e-5, atol=1e-6)
        moved += not np.allclose(_np(o), o0)
    assert moved  # the online network did take a gradient step


@pytest.mark.parametrize("base", [0.99, 0.996, 0.5])
def test_cosine_tau_matches_its_closed_form(base):
    k_total = 1000
    # tau_k = 1 - (1 - base) (cos(pi k / K) + 1) / 2 with cos(0) = 1, cos(pi / 4) = sqrt(2) / 2,
    # cos(pi / 2) = 0, cos(pi) = -1.
    expected = {
        0: base,
        k_total // 4: 1 - (1 - base) * (math.sqrt(2) / 2 + 1) / 2,
        k_total // 2: 1 - (1 - base) / 2,
        k_total: 1.0,
        2 * k_total: 1.0,  # stays at 1 after the last step
    }
    for k, tau in expected.items():
        got = float(keras.ops.convert_to_numpy(cosine_tau(k, k_total, base)))
        assert got == pytest.approx(tau, abs=1e-6), k


def test_ema_uses_the_scheduled_tau_of_the_current_step():
    model = _byol(tau=0.5, total_steps=4)
    for t, _ in model._pairs():
        t.assign(t + 0.5)
    model.step.assign(2.0)  # tau_2 = 1 - 0.5 * (cos(pi / 2) + 1) / 2 = 0.75
    pairs = [(t, o) for t, o in model._pairs() if o.trainable]
    before = [(_np(t), _np(o)) for t, o in pairs]
    model(_batch(), training=True)
    for (t, _), (t0, o0) in zip(pairs, before, strict=True):
        np.testing.assert_allclose(_np(t), 0.75 * t0 + 0.25 * o0, rtol=1e-5, atol=1e-6)
    assert float(_np(model.step)) == 3.0


def test_tau_and_total_steps_are_validated():
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="tau"):
            BYOL(_net(1), keras.layers.Identity(), keras.layers.Dense(D), _net(2),
                 keras.layers.Identity(), tau=bad)  # fmt: skip
    with pytest.raises(ValueError, match="total_steps"):
        BYOL(_net(1), keras.layers.Identity(), keras.layers.Dense(D), _net(2),
             keras.layers.Identity(), total_steps=0)  # fmt: skip


def test_method_defaults_sit_between_the_shared_defaults_and_preset_and_flags(monkeypatch):
    from reference import cli, presets

    monkeypatch.setitem(presets.METHOD_DEFAULTS, "byol", {"epochs": 7, "tau": 0.9})
    cfg = cli.config_from_args("byol", [])
    assert (cfg["epochs"], cfg["tau"]) == (7, 0.9)
    assert cli.config_from_args("simclr", [])["epochs"] == presets.DEFAULTS["epochs"]
    assert cli.config_from_args("byol", ["--epochs", "3"])["epochs"] == 3
    assert cli.config_from_args("byol", ["--preset", "paper-cifar10"])["epochs"] == 1000
    cfg = cli.config_from_args("byol", ["--tau", "0.5", "--tau-schedule", "constant"])
    assert (cfg["tau"], cfg["tau_schedule"]) == (0.5, "constant")
    assert cli.config_from_args("simclr", ["--crop-scale", "0.3", "1"])["crop_scale"] == [0.3, 1.0]
    # The paper's presets keep the paper's crops whatever the CPU default is.
    assert cli.config_from_args("simclr", ["--preset", "paper-stl10"])["crop_scale"] == [0.2, 1.0]


def test_raw_pixel_knn_is_cosine_5nn_on_the_flattened_images():
    from sklearn.neighbors import KNeighborsClassifier

    from reference.training import raw_pixel_knn

    rng = np.random.default_rng(5)
    x_train, x_test = rng.random((60, 4, 5, 1)), rng.random((30, 4, 5, 1))
    y_train, y_test = rng.integers(0, 3, 60), rng.integers(0, 3, 30)

    def reference(k, metric):
        ref = KNeighborsClassifier(k, metric=metric, algorithm="brute")
        ref.fit(x_train.reshape(60, -1), y_train)
        return np.mean(ref.predict(x_test.reshape(30, -1)) == y_test)

    expected = reference(5, "cosine")
    # Data on which a wrong k or a wrong metric changes the score (0.367 and 0.4 vs 0.233).
    assert reference(1, "cosine") != expected and reference(5, "euclidean") != expected
    assert raw_pixel_knn(x_train, y_train, x_test, y_test) == pytest.approx(expected)
