"""AdaptiveL21: the dual-ascent step against its formula and the NumPy core's measure, and
reaching a sparsity target from a strength 100x too small or too large (proximal), on every
backend (on JAX the strength must reach the compiled step as state, not as a constant)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from sparsehead.adapters.keras import L21, AdaptiveL21, ProximalL21

import sparsehead as sh
from tests.conformance.keras_seam import to_numpy


def _problem():
    """Linear regression whose 8 input features matter by 1.0 ... 0.3: the more L2,1, the
    fewer groups hold 95 % of the energy. Fixed-strength runs of `_fit` (SGD, lr 0.1, 40
    epochs, prox): l21 = 0.1 -> 6/8 groups, 0.2 -> 5/8, 0.3 -> 4/8, 1.0 -> 0/8."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(256, 8)).astype("float32")
    w = rng.normal(size=(8, 4))
    w *= (np.linspace(1, 0.3, 8) / np.linalg.norm(w, axis=1))[:, None]
    return x, (x @ w).astype("float32")


class KernelRecorder(keras.callbacks.Callback):
    def __init__(self, layer):
        super().__init__()
        self.layer, self.kernels = layer, []

    def on_epoch_end(self, epoch, logs=None):
        _ = self.model  # JAX: sync the state into the variables
        self.kernels.append(to_numpy(self.layer.kernel))


def _fit(mode, l21, target=0.5, epochs=40, dual_lr=2.0, every=None, measure="groups_95_energy"):
    keras.utils.set_random_seed(0)
    x, y = _problem()
    layer = keras.layers.Dense(
        4, use_bias=False, kernel_regularizer=L21(l21) if mode == "penalty" else None
    )
    model = keras.Sequential([keras.Input((8,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    prox = ProximalL21(layer, l21=l21, precondition="lr") if mode == "prox" else None
    adaptive = AdaptiveL21(
        prox or layer, target=target, measure=measure, l21=l21, dual_lr=dual_lr, every=every
    )
    record = KernelRecorder(layer)
    callbacks = [record, adaptive] + ([prox] if prox else [])
    history = model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)
    return history.history, record.kernels, layer, prox, adaptive


def fraction_95(kernel) -> float:
    s = sh.sparsity_summary(kernel)
    return s["groups_95_energy"] / s["groups"]


@pytest.mark.parametrize("start", [3e-3, 30.0])  # 100x below and above l21 ~ 0.3
def test_prox_reaches_the_target_from_100x_off(start):
    history, _, layer, prox, _ = _fit("prox", start)
    assert fraction_95(to_numpy(layer.kernel)) == 0.5
    assert history["adaptive_measure"][-3:] == [0.5, 0.5, 0.5]
    final = history["adaptive_l21"][-1]
    assert 0.2 < final < 1.0  # between the fixed strengths that give 5/8 and 0/8 groups
    assert type(prox.l21) is float and prox.l21 == pytest.approx(final, rel=1e-6)


def test_each_update_is_the_multiplicative_dual_step_on_the_core_measure():
    lam0, eta = 1e-2, 2.0
    history, kernels, *_ = _fit("prox", lam0, epochs=4, dual_lr=eta)
    lam = lam0
    for kernel, logged_s, logged_lam in zip(
        kernels, history["adaptive_measure"], history["adaptive_l21"], strict=True
    ):
        s = fraction_95(kernel)
        assert logged_s == s
        lam *= math.exp(eta * (s - 0.5))
        assert logged_lam == pytest.approx(lam, rel=1e-6)  # float32 variable


def test_frac_below_1pct_raises_l21_while_too_few_groups_are_off():
    history, kernels, *_ = _fit("prox", 1e-2, epochs=3, measure="frac_below_1pct", target=0.5)
    s = sh.sparsity_summary(kernels[0])["frac_below_1pct"]
    assert s < 0.5 and history["adaptive_l21"][0] == pytest.approx(
        1e-2 * math.exp(2 * (0.5 - s)), rel=1e-6
    )


def test_penalty_mode_reads_the_variable_and_leaves_the_final_l21():
    history, kernels, layer, _, _ = _fit("penalty", 3e-3, epochs=30, dual_lr=1.0)
    final = history["adaptive_l21"][-1]
    assert final > 3e-2  # rose by more than 10x: the kernel was denser than the target
    reg = layer.kernel_regularizer
    assert (
        isinstance(reg, L21)
        and type(reg.l21) is float
        and reg.l21 == pytest.approx(final, rel=1e-6)
    )
    assert layer.kernel.regularizer is reg  # the variable-backed penalty is removed
    (loss,) = layer.losses
    assert float(to_numpy(loss)) == pytest.approx(
        final * sh.l21_norm(to_numpy(layer.kernel)), rel=1e-5
    )
    # The compiled step used the growing strength (a constant 3e-3, e.g. a variable that JAX
    # saw only at tracing, leaves the kernel near its least-squares value).
    assert sh.l21_norm(to_numpy(layer.kernel)) < 0.5 * sh.l21_norm(kernels[0])


def test_argument_errors():
    layer = keras.layers.Dense(2, kernel_regularizer=L21(1e-3))
    for bad in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match="target"):
            AdaptiveL21(layer, target=bad)
    with pytest.raises(TypeError, match="target"):
        AdaptiveL21(layer, target="0.5")
    with pytest.raises(ValueError, match="measure"):
        AdaptiveL21(layer, target=0.5, measure="zeros")
    with pytest.raises(ValueError, match="l21"):
        AdaptiveL21(layer, target=0.5, l21=0.0)
    with pytest.raises(ValueError, match="dual_lr"):
        AdaptiveL21(layer, target=0.5, dual_lr=-1.0)
    with pytest.raises(ValueError, match="every"):
        AdaptiveL21(layer, target=0.5, every=0)
    x, y = _problem()
    plain = keras.layers.Dense(4)
    model = keras.Sequential([keras.Input((8,)), plain])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="L21 regularizer"):
        model.fit(x, y, verbose=0, callbacks=[AdaptiveL21(plain, target=0.5)])
    assert sh.AdaptiveL21 is AdaptiveL21


def test_every_counts_batches():
    # 4 batches per epoch: every=4 updates after each epoch's last batch, like every=None;
    # every=2 takes two steps per epoch.
    per_epoch, *_ = _fit("prox", 1e-2, epochs=3)
    per_4, *_ = _fit("prox", 1e-2, epochs=3, every=4)
    per_2, *_ = _fit("prox", 1e-2, epochs=3, every=2)
    assert per_4["adaptive_l21"] == pytest.approx(per_epoch["adaptive_l21"], rel=1e-6)
    assert per_2["adaptive_l21"][0] > per_epoch["adaptive_l21"][0]  # two rising steps


@pytest.mark.parametrize("mode", ["penalty", "prox"])
def test_checkpoint_taken_during_fit_loads_without_the_callback(mode, tmp_path):
    # l21 is model (or optimizer) state during fit, but not part of what is saved.
    x, y = _problem()
    layer = keras.layers.Dense(4, kernel_regularizer=L21(1e-3) if mode == "penalty" else None)
    model = keras.Sequential([keras.Input((8,)), layer])
    model.compile(optimizer="adam", loss="mse")
    prox = ProximalL21(layer, l21=1e-3) if mode == "prox" else None
    path = str(tmp_path / "model.keras")
    callbacks = [AdaptiveL21(prox or layer, target=0.5), keras.callbacks.ModelCheckpoint(path)]
    model.fit(x, y, epochs=2, verbose=0, callbacks=callbacks + ([prox] if prox else []))
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded.layers[0].kernel), to_numpy(layer.kernel))
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
