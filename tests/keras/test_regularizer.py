"""`L21`: value and gradient against the NumPy core, NaN-free zeros, precision, validation."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from keras import ops
from sparsehead.adapters.keras import L21, GroupHoyer

import sparsehead as sh
from tests.conformance.keras_seam import jit, run, tensor, to_numpy, value_and_grad
from tests.tolerances import assert_close

from .strategies import backend_settings, grouped_weights


def result_dtype(dtype: str) -> str:
    """The regularizer's value is float32 for half/float32 kernels, float64 for float64."""
    return "float64" if dtype == "float64" else "float32"


@backend_settings
@given(grouped_weights(), st.sampled_from([1e-4, 0.5, 3.0]))
def test_value_equals_factor_times_core_l21_norm(case, factor):
    w, group_axis, dtype = case
    value = run(L21(factor, group_axis=group_axis), tensor(w, dtype))
    assert keras.backend.standardize_dtype(value.dtype) == result_dtype(dtype)
    assert_close(to_numpy(value), factor * sh.l21_norm(w, group_axis), result_dtype(dtype))


@backend_settings
@given(grouped_weights(), st.sampled_from([1e-4, 0.5, 3.0]))
def test_gradient_equals_factor_times_core_subgradient(case, factor):
    w, group_axis, dtype = case
    _, grad = value_and_grad(L21(factor, group_axis=group_axis), tensor(w, dtype))
    grad = to_numpy(grad)
    assert np.isfinite(grad).all()
    expected = factor * sh.l21_subgradient(w, group_axis).astype(np.float64)
    # The gradient is stored in the kernel's dtype: one rounding on each side.
    assert_close(grad, expected, dtype, atol_scale=factor)
    zero = sh.group_norms(w, group_axis) == 0
    index = [slice(None)] * w.ndim
    index[group_axis] = zero
    assert (grad[tuple(index)] == 0).all()  # the minimum-norm subgradient: exactly 0


def test_naive_norm_would_give_nan_at_a_zero_group():
    """Guards the test above: the plain formula's gradient is NaN here on jax/tensorflow
    (and 0 * inf on torch), so a finite gradient is a property of L21, not of the input."""
    w = np.zeros((3, 2), np.float32)
    w[0] = [1.0, 2.0]

    def naive(x):
        return ops.sum(ops.sqrt(ops.sum(x * x, axis=1)))

    _, grad = value_and_grad(naive, tensor(w, "float32"))
    assert not np.isfinite(to_numpy(grad)).all()
    _, grad = value_and_grad(L21(1.0), tensor(w, "float32"))
    np.testing.assert_array_equal(to_numpy(grad)[1:], 0.0)


def test_sgd_step_keeps_kernel_finite_with_zero_groups():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(3, kernel_regularizer=L21(0.1), kernel_initializer="zeros")
    model = keras.Sequential([keras.Input((4,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    model.fit(x, np.zeros((8, 3), "float32"), epochs=1, batch_size=4, verbose=0)
    kernel = to_numpy(layer.kernel)
    assert np.isfinite(kernel).all()
    np.testing.assert_array_equal(kernel, 0.0)  # zero data gradient, zero subgradient


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_large_weights_do_not_overflow(dtype):
    w = np.full((4, 8), 300.0, np.float32)  # 300**2 * 8 = 7.2e5 > float16 max 65504
    w[1] = 0
    w[2] = 6e4
    w_half = w.astype(np.float16) if dtype == "float16" else w
    value, grad = value_and_grad(L21(1.0), tensor(w_half, dtype))
    assert np.isfinite(to_numpy(value)) and np.isfinite(to_numpy(grad)).all()
    assert_close(to_numpy(value), sh.l21_norm(tensor_values(w, dtype)), "float32")


def tensor_values(w: np.ndarray, dtype: str) -> np.ndarray:
    return to_numpy(tensor(w, dtype)).astype(np.float64)


def test_value_under_jit_equals_eager():
    w = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    w[3] = 0
    x = tensor(w, "float32")
    reg = L21(0.25)
    compiled = jit(lambda v: reg(v))
    assert_close(to_numpy(compiled(x)), to_numpy(reg(x)), "float32")
    assert_close(to_numpy(compiled(x)), 0.25 * sh.l21_norm(w), "float32")


def test_conv_kernel_groups_are_input_channels():
    w = np.random.default_rng(2).normal(size=(3, 3, 4, 5)).astype(np.float32)
    w[:, :, 1, :] = 0
    value = to_numpy(L21(1.0)(tensor(w, "float32")))
    brute = sum(math.sqrt(float(np.sum(w[:, :, c, :].astype(np.float64) ** 2))) for c in range(4))
    assert_close(value, brute, "float32")


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_trains_under_mixed_precision_policy(policy):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        keras.utils.set_random_seed(0)
        layer = keras.layers.Dense(4, kernel_regularizer=L21(1e-2))
        model = keras.Sequential([keras.Input((6,)), layer, keras.layers.Dense(2)])
        model.compile(optimizer="adam", loss="mse")
        rng = np.random.default_rng(0)
        x = rng.normal(size=(16, 6)).astype("float32")
        y = rng.normal(size=(16, 2)).astype("float32")
        history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    finally:
        keras.config.set_dtype_policy(previous)
    assert np.isfinite(history.history["loss"]).all()
    kernel = to_numpy(layer.kernel)  # the variable is float32 under a mixed policy
    assert np.isfinite(kernel).all()
    (reg_loss,) = model.losses
    assert_close(to_numpy(reg_loss), 1e-2 * sh.l21_norm(kernel), "float32")


def test_fit_adds_exactly_the_regularization_loss():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(3, kernel_regularizer=L21(0.05))
    model = keras.Sequential([keras.Input((5,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")
    before = to_numpy(layer.kernel)
    history = model.fit(x, y, epochs=3, batch_size=8, verbose=0)
    kernel = to_numpy(layer.kernel)
    assert not np.array_equal(before, kernel)
    assert history.history["loss"][-1] < history.history["loss"][0]
    total = model.evaluate(x, y, batch_size=32, verbose=0)
    mse = float(np.mean((x @ kernel + to_numpy(layer.bias) - y) ** 2, dtype=np.float64))
    assert_close(total, mse + 0.05 * sh.l21_norm(kernel), "float32")


@pytest.mark.parametrize("value", [-1e-4, float("nan"), float("inf")])
def test_bad_factor_raises_value_error_naming_l21(value):
    with pytest.raises(ValueError, match="l21"):
        L21(value)


@pytest.mark.parametrize("value", ["0.1", None, True, [1e-4], 1j])
def test_factor_of_wrong_type_raises_type_error_naming_l21(value):
    with pytest.raises(TypeError, match="l21"):
        L21(value)


@pytest.mark.parametrize("value", [1.5, "-2", None, True])
def test_bad_group_axis_raises_type_error(value):
    with pytest.raises(TypeError, match="group_axis"):
        L21(1e-4, group_axis=value)


def test_group_axis_out_of_range_raises_value_error():
    with pytest.raises(ValueError, match="group_axis"):
        L21(1e-4, group_axis=2)(tensor(np.ones((2, 3)), "float32"))


def test_factor_is_a_python_float_and_config_round_trips():
    reg = L21(np.float32(0.5), group_axis=-1)
    assert type(reg.l21) is float and reg.l21 == 0.5
    assert L21(3).l21 == 3.0 and type(L21(3).l21) is float
    config = reg.get_config()
    assert config == {"l21": 0.5, "group_axis": -1}
    clone = L21.from_config(config)
    assert (clone.l21, clone.group_axis) == (0.5, -1)
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(restored, L21) and restored.get_config() == config
    assert keras.saving.get_registered_name(L21) == "sparsehead>L21"


def test_top_level_name_is_the_adapter_class():
    assert sh.L21 is L21


def test_old_positional_group_axis_warns_and_keeps_working():
    with pytest.warns(DeprecationWarning, match="group_axis="):
        reg = L21(0.5, -1)
    assert (reg.l21, reg.group_axis) == (0.5, -1)
    with pytest.warns(DeprecationWarning, match="group_axis="):
        assert GroupHoyer(0.5, -1).group_axis == -1
