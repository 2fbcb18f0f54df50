"""ProximalL21: the keras.ops prox against the core, and the per-step threshold under SGD and
Adam against an independent NumPy re-implementation of one training step."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sparsehead.adapters.keras import ProximalL21, l21_prox

import sparsehead as sh
from tests.conformance.keras_seam import tensor, to_numpy
from tests.tolerances import assert_close


def test_per_group_threshold_matches_core_group_by_group():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(5, 3)).astype(np.float32)
    t = np.array([0.0, 10.0, 0.5, 1.0, 0.1], np.float32)
    got = to_numpy(l21_prox(tensor(w, "float32"), tensor(t, "float32")))
    want = np.stack([sh.l21_prox(w[j : j + 1], float(t[j]))[0] for j in range(5)])
    assert_close(got, want, "float32", atol_scale=1)
    assert (got[1] == 0).all()


def _linear_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 6)).astype(np.float32)
    y = rng.normal(size=(16, 2)).astype(np.float32)
    w0 = (rng.normal(size=(6, 2)) * 0.5).astype(np.float32)
    w0[4] *= 1e-2  # a small group that a threshold can switch off
    return x, y, w0


def _dense(w0):
    init = keras.initializers.Constant(w0)
    return keras.layers.Dense(w0.shape[1], use_bias=False, kernel_initializer=init)


def _fit_one_step(optimizer, l21, precondition="auto", **old):
    x, y, w0 = _linear_problem()
    layer = keras.layers.Dense(
        2, use_bias=False, kernel_initializer=keras.initializers.Constant(w0)
    )
    model = keras.Sequential([keras.Input((6,)), layer])
    model.compile(optimizer=optimizer, loss="mse")
    prox = ProximalL21(l21, layer, **(old or {"precondition": precondition}))
    model.fit(x, y, epochs=1, batch_size=16, verbose=0, shuffle=False, callbacks=[prox])
    return to_numpy(layer.kernel).astype(np.float64), x.astype(np.float64), y, w0


def _mse_grad(w, x, y):
    return 2.0 * x.T @ (x @ w - y) / y.size


def test_sgd_step_then_prox_with_lr_times_l21():
    lr, l21 = 0.1, 0.6
    got, x, y, w0 = _fit_one_step(keras.optimizers.SGD(lr), l21)
    w = w0 - lr * _mse_grad(w0.astype(np.float64), x, y)
    want = sh.l21_prox(w, lr * l21)
    assert (sh.group_norms(want) == 0).any()  # the check below includes a zeroed group
    assert_close(got, want, "float32", atol_scale=1)


@pytest.mark.parametrize("precondition", ["auto", "adam", "lr"])
def test_adam_step_then_prox_with_preconditioned_threshold(precondition):
    lr, l21, b1, b2, eps = 0.01, 1.0, 0.9, 0.999, 1e-7
    opt = keras.optimizers.Adam(lr, beta_1=b1, beta_2=b2, epsilon=eps)
    got, x, y, w0 = _fit_one_step(opt, l21, precondition)
    g = _mse_grad(w0.astype(np.float64), x, y)
    m, v = (1 - b1) * g, (1 - b2) * g * g  # first step from zero slots
    alpha = lr * np.sqrt(1 - b2) / (1 - b1)
    w = w0 - alpha * m / (np.sqrt(v) + eps)
    if precondition != "lr":
        d = ((np.sqrt(v) + eps) / np.sqrt(1 - b2)).mean(axis=1)
        want = np.stack([sh.l21_prox(w[j : j + 1], lr * l21 / d[j])[0] for j in range(6)])
        assert (sh.group_norms(want) == 0).any()
    else:
        want = sh.l21_prox(w, lr * l21)
        assert not (sh.group_norms(want) == 0).any()  # lr * l21 is too small under Adam
    assert_close(got, want, "float32", atol_scale=1)


def test_constraint_is_removed_after_fit_and_a_later_fit_does_not_prox():
    x, y, w0 = _linear_problem()
    layer = keras.layers.Dense(
        2, use_bias=False, kernel_initializer=keras.initializers.Constant(w0)
    )
    model = keras.Sequential([keras.Input((6,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    model.fit(x, y, epochs=1, verbose=0, callbacks=[ProximalL21(100.0, layer)])
    np.testing.assert_array_equal(to_numpy(layer.kernel), 0.0)  # huge threshold: all zero
    assert layer.kernel.constraint is None
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    assert (sh.group_norms(to_numpy(layer.kernel)) > 0).all()


def test_argument_and_setup_errors():
    with pytest.raises(ValueError, match="l21"):
        ProximalL21(-1.0, keras.layers.Dense(2))
    with pytest.raises(TypeError, match="l21"):
        ProximalL21(l21="1e-4", targets=keras.layers.Dense(2))
    with pytest.raises(ValueError, match="precondition must be one of"):
        ProximalL21(1e-4, keras.layers.Dense(2), precondition="sgd")
    with pytest.raises(ValueError, match="targets"):
        ProximalL21(1e-4, [])
    x, y, _ = _linear_problem()
    layer = keras.layers.Dense(2, kernel_constraint="non_neg")
    model = keras.Sequential([keras.Input((6,)), layer])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="constraint"):
        model.fit(x, y, verbose=0, callbacks=[ProximalL21(1e-4, layer)])
    layer = keras.layers.Dense(2)
    model = keras.Sequential([keras.Input((6,)), layer])
    model.compile(optimizer=keras.optimizers.Adagrad(), loss="mse")
    with pytest.raises(ValueError, match="Adagrad"):
        model.fit(x, y, verbose=0, callbacks=[ProximalL21(1e-4, layer)])
    assert layer.kernel.constraint is None  # nothing was installed
    model.fit(x, y, verbose=0, callbacks=[ProximalL21(1e-4, layer, precondition="lr")])  # textbook
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(
        ValueError, match='precondition="adam"\\) needs Adam, AdamW or Nadam; got SGD'
    ):
        model.fit(x, y, verbose=0, callbacks=[ProximalL21(1e-4, layer, precondition="adam")])
    assert layer.kernel.constraint is None  # nothing was installed


@pytest.mark.parametrize("old", ["auto", "lr"])
def test_old_keyword_scaling_warns_and_gives_identical_results(old):
    opt = keras.optimizers.Adam(0.01)
    new_kernel = _fit_one_step(opt, 1.0, old)[0]
    with pytest.warns(DeprecationWarning, match="scaling"):
        old_kernel = _fit_one_step(keras.optimizers.Adam(0.01), 1.0, scaling=old)[0]
    np.testing.assert_array_equal(old_kernel, new_kernel)


def test_prox_under_mixed_float16_reads_the_inner_optimizer():
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        x, y, w0 = _linear_problem()
        layer = _dense(w0)
        model = keras.Sequential([keras.Input((6,)), layer])
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        prox = ProximalL21(1.0, layer)
        model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[prox])
    finally:
        keras.config.set_dtype_policy(previous)
    kernel = to_numpy(layer.kernel)
    assert np.isfinite(kernel).all()
    assert (sh.group_norms(kernel) == 0).any()


def test_old_argument_order_warns_and_keeps_working():
    layer = keras.layers.Dense(2)
    with pytest.warns(DeprecationWarning, match="l21 first"):
        old = ProximalL21(layer, 0.5, -1, "lr")
    assert (old.l21, old.targets, old.group_axis, old.precondition) == (0.5, [layer], -1, "lr")
    with pytest.warns(DeprecationWarning, match="l21 first"):
        assert ProximalL21(layer, l21=0.25).l21 == 0.25
