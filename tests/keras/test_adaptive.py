"""AdaptiveL21: the dual-ascent step against its formula and the NumPy core's measure, and
reaching a sparsity target from a strength 100x too small or too large (proximal), on every
backend (on JAX the strength must reach the compiled step as state, not as a constant)."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from sparsehead.adapters.keras import L21, AdaptiveL21, ProximalL21
from sparsehead.adapters.keras import _adaptive as keras_adaptive

import sparsehead as sh
from sparsehead.controller import MEASURES, DualAscent, measure_fraction
from sparsehead.schedule import is_due
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


class StepRecorder(keras.callbacks.Callback):
    """The kernel and `λ` after every batch (placed after `AdaptiveL21` in the callbacks)."""

    def __init__(self, layer, adaptive):
        super().__init__()
        self.layer, self.adaptive = layer, adaptive
        self.kernels, self.l21 = [], []

    def on_train_batch_end(self, batch, logs=None):
        _ = self.model  # JAX: sync the state into the variables
        self.kernels.append(to_numpy(self.layer.kernel).astype(np.float64))
        self.l21.append(self.adaptive.value())


# 256 samples in batches of 64: 4 optimizer steps per epoch; every=4 updates once per epoch.
def _fit(
    mode, l21, target=0.5, epochs=40, dual_lr=2.0, every=4, measure="groups_95_energy", **rule
):
    keras.utils.set_random_seed(0)
    x, y = _problem()
    layer = keras.layers.Dense(
        4, use_bias=False, kernel_regularizer=L21(l21) if mode == "penalty" else None
    )
    model = keras.Sequential([keras.Input((8,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    prox = ProximalL21(l21, layer, precondition="lr") if mode == "prox" else None
    adaptive = AdaptiveL21(
        target,
        None if prox else layer,
        measure=measure,
        l21=l21,
        dual_lr=dual_lr,
        every=every,
        prox=prox,
        **rule,
    )
    record = KernelRecorder(layer)
    callbacks = [record, adaptive] + ([prox] if prox else [])
    history = model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=callbacks)
    return history.history, record.kernels, layer, prox, adaptive


def fraction_95(kernel) -> float:
    s = sh.sparsity_summary(kernel)
    return s["groups_95_energy"] / s["groups"]


@pytest.mark.parametrize("rule", [{}, {"controller": "pi"}], ids=["dual", "pi"])
@pytest.mark.parametrize("start", [3e-3, 30.0])  # 100x below and above l21 ~ 0.3
def test_prox_reaches_the_target_from_100x_off(start, rule):
    history, _, layer, prox, _ = _fit("prox", start, **rule)
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
    for bad in (0.0, 1.0, 1.5, -0.1, float("nan")):
        with pytest.raises(ValueError, match="target"):
            AdaptiveL21(bad, layer)
    with pytest.raises(TypeError, match="target"):
        AdaptiveL21("0.5", layer)
    with pytest.raises(ValueError, match="measure"):
        AdaptiveL21(0.5, layer, measure="zeros")
    with pytest.raises(ValueError, match="l21"):
        AdaptiveL21(0.5, layer, l21=0.0)
    with pytest.raises(ValueError, match="dual_lr"):
        AdaptiveL21(0.5, layer, dual_lr=-1.0)
    with pytest.raises(ValueError, match="every"):
        AdaptiveL21(0.5, layer, every=0)
    with pytest.raises(TypeError, match="every"):  # the old "per epoch" is gone
        AdaptiveL21(0.5, layer, every=None)
    with pytest.raises(ValueError, match="min_l21"):
        AdaptiveL21(0.5, layer, min_l21=0.0)
    with pytest.raises(ValueError, match="max_l21"):
        AdaptiveL21(0.5, layer, min_l21=1.0, max_l21=0.5)
    with pytest.raises(TypeError, match="targets must be given"):  # as in torch
        AdaptiveL21(0.5)
    with pytest.raises(TypeError, match="prox"):
        AdaptiveL21(0.5, layer, prox=layer)
    x, y = _problem()
    plain = keras.layers.Dense(4)
    model = keras.Sequential([keras.Input((8,)), plain])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="L21 regularizer"):
        model.fit(x, y, verbose=0, callbacks=[AdaptiveL21(0.5, plain)])
    assert sh.AdaptiveL21 is AdaptiveL21


def test_start_is_clipped_into_its_bounds():
    layer = keras.layers.Dense(2, kernel_regularizer=L21(1e-3))
    assert AdaptiveL21(0.5, layer, l21=5.0, max_l21=2.0).value() == 2.0
    assert AdaptiveL21(0.5, layer, l21=1e-6, min_l21=1e-3).value() == pytest.approx(1e-3)


@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_lambda_after_every_step_follows_the_core_rule_across_two_fits(measure):
    # every=3 with 4 steps per epoch: updates after steps 3, 6, 9, 12, ... counted over both
    # fits (the second continues the count), each the core's dual step on the core's measure.
    keras.utils.set_random_seed(0)
    x, y = _problem()
    layer = keras.layers.Dense(4, use_bias=False)
    model = keras.Sequential([keras.Input((8,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    prox = ProximalL21(0.3, layer, precondition="lr")
    lam0, target = 0.3, 0.3
    adaptive = AdaptiveL21(target, prox=prox, measure=measure, l21=lam0, dual_lr=2.0, every=3)
    record = StepRecorder(layer, adaptive)
    for epochs in (2, 2):  # 8 steps, then 8 more
        model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=[adaptive, prox, record])
    rule = DualAscent(target, measure=measure, dual_lr=2.0, every=3)
    lam, changed = np.float32(lam0), []
    for step, (kernel, got) in enumerate(zip(record.kernels, record.l21, strict=True), 1):
        if is_due(step, 3):
            s = measure_fraction(kernel, -2, measure)
            lam = np.float32(rule.update(float(lam), s))  # held in a float32 variable
            if step == len(record.kernels) - 1:
                assert adaptive.measure_value == s
        assert got == pytest.approx(float(lam), rel=1e-6), step
        changed.append(step > 1 and got != record.l21[step - 2])
    assert len(record.kernels) == 16
    moved = [step for step, c in enumerate(changed, 1) if c]
    assert moved and set(moved) <= {3, 6, 9, 12, 15}, moved  # λ moves only on due steps


def test_old_calls_warn_and_keep_working():
    layer = keras.layers.Dense(2, kernel_regularizer=L21(1e-3))
    with pytest.warns(DeprecationWarning, match="target first"):
        old = AdaptiveL21(layer, 0.25, "frac_below_1pct", 1e-3)
    assert (old.target, old.measure, old.targets) == (0.25, "frac_below_1pct", [layer])
    assert old.value() == pytest.approx(1e-3)
    prox = ProximalL21(1e-3, layer)
    with pytest.warns(DeprecationWarning, match="prox="):
        old = AdaptiveL21(0.25, prox)
    assert old.prox is prox and old.targets == [layer]
    with pytest.warns(DeprecationWarning, match="measure_value"):
        assert math.isnan(old.last_measure)


def test_private_tracking_api_is_checked_on_this_keras_version():
    # AdaptiveL21 adds its λ variable to a built model's (or optimizer's) state with Keras'
    # private tracker: there is no public way to do that after build. Checked on the versions
    # in TRACKING_CHECKED_ON; on another, run tests/keras/test_adaptive.py on every backend and
    # add the version there.
    assert keras.__version__ in keras_adaptive.TRACKING_CHECKED_ON, (
        f"AdaptiveL21's private Keras tracking API (_tracker, _track_variable, "
        f"_untrack_variable) was checked on Keras {keras_adaptive.TRACKING_CHECKED_ON}, not on "
        f"{keras.__version__}: check it and add the version to TRACKING_CHECKED_ON"
    )
    with pytest.raises(RuntimeError, match="private variable tracking"):
        keras_adaptive._track(object(), keras.Variable(1.0))


@pytest.mark.parametrize("mode", ["penalty", "prox"])
def test_checkpoint_taken_during_fit_loads_without_the_callback(mode, tmp_path):
    # l21 is model (or optimizer) state during fit, but not part of what is saved.
    x, y = _problem()
    layer = keras.layers.Dense(4, kernel_regularizer=L21(1e-3) if mode == "penalty" else None)
    model = keras.Sequential([keras.Input((8,)), layer])
    model.compile(optimizer="adam", loss="mse")
    prox = ProximalL21(1e-3, layer) if mode == "prox" else None
    path = str(tmp_path / "model.keras")
    adaptive = AdaptiveL21(0.5, None if prox else layer, every=4, prox=prox)
    callbacks = [adaptive, keras.callbacks.ModelCheckpoint(path)]
    model.fit(x, y, epochs=2, verbose=0, callbacks=callbacks + ([prox] if prox else []))
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(to_numpy(loaded.layers[0].kernel), to_numpy(layer.kernel))
    assert len(loaded.optimizer.variables) == len(model.optimizer.variables)
