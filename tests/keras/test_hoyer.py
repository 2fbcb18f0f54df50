"""`GroupHoyer`: value and gradient against the NumPy core, zeros, precision, serialization."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sparsehead.adapters.keras import GroupHoyer, group_hoyer

import sparsehead as sh
from tests.conformance.keras_seam import jit, run, tensor, to_numpy, value_and_grad
from tests.tolerances import assert_close

from .strategies import backend_settings, grouped_weights


def result_dtype(dtype: str) -> str:
    return "float64" if dtype == "float64" else "float32"


def term_scale(w, group_axis) -> float:
    """`2 S/Q`: the size of each of the gradient's two terms, which cancel for one group."""
    g = sh.group_norms(np.asarray(w, np.float64), group_axis)
    if not g.any():
        return 0.0
    r = g / g.max()
    return float(2 * r.sum() / (r @ r) / g.max())


@backend_settings
@given(grouped_weights(), st.sampled_from([1e-3, 0.5, 3.0]))
def test_value_equals_factor_times_core_group_hoyer(case, factor):
    w, group_axis, dtype = case
    value = run(GroupHoyer(factor, group_axis=group_axis), tensor(w, dtype))
    assert keras.backend.standardize_dtype(value.dtype) == result_dtype(dtype)
    # S^2/Q from norms each within rtol: 4 rtol (see tests/core/test_hoyer.py).
    expected = factor * sh.group_hoyer(w, group_axis)
    np.testing.assert_allclose(
        to_numpy(value), expected, rtol=4e-5 if dtype != "float64" else 1e-10
    )


@backend_settings
@given(grouped_weights(), st.sampled_from([1e-3, 0.5, 3.0]))
# a float16 gradient of 3e-7 is subnormal, where float16's ulp is 2**-24 (found in CI on torch)
@example(case=(np.array([[1000.0], [750.0]], np.float16), -2, "float16"), factor=1e-3)
def test_gradient_equals_factor_times_core_gradient(case, factor):
    w, group_axis, dtype = case
    _, grad = value_and_grad(GroupHoyer(factor, group_axis=group_axis), tensor(w, dtype))
    grad = to_numpy(grad)
    assert np.isfinite(grad).all()
    expected = factor * sh.group_hoyer_gradient(w, group_axis).astype(np.float64)
    # Each of the two terms is at most 2 S/Q in size; they cancel (exactly, for one group), so
    # the error is relative to that scale. float32 sums: a few rtol; stored in `dtype`.
    assert_close(grad, expected, dtype, atol_scale=4 * factor * term_scale(w, group_axis))
    zero = sh.group_norms(w, group_axis) == 0
    index = [slice(None)] * w.ndim
    index[group_axis] = zero
    assert (grad[tuple(index)] == 0).all()


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_all_zero_kernel_and_zero_groups_are_finite(dtype):
    value, grad = value_and_grad(GroupHoyer(1.0), tensor(np.zeros((4, 3)), dtype))
    assert float(to_numpy(value)) == 0.0
    grad = to_numpy(grad)
    assert np.isfinite(grad).all() and not grad.any()
    w = np.zeros((4, 3))
    w[2] = [1.0, -2.0, 0.5]  # one group: HS = 1, gradient exactly 0 in exact arithmetic
    value, grad = value_and_grad(GroupHoyer(1.0), tensor(w, dtype))
    assert float(to_numpy(value)) == pytest.approx(1.0, rel=1e-6)
    assert np.isfinite(to_numpy(grad)).all()
    np.testing.assert_array_equal(to_numpy(grad)[[0, 1, 3]], 0.0)


def test_no_overflow_at_1e30_in_float32():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(6, 5)) * 1e30
    w[3] = 0
    w32 = w.astype(np.float32)
    value, grad = value_and_grad(GroupHoyer(1.0), tensor(w32, "float32"))
    assert_close(to_numpy(value), sh.group_hoyer(w32), "float32")
    grad = to_numpy(grad)
    assert np.isfinite(grad).all() and grad[0].any()
    assert_close(grad, sh.group_hoyer_gradient(w32), "float32", atol_scale=4 * term_scale(w32, -2))


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_half_precision_accumulates_in_float32(dtype):
    w = np.full((4, 8), 300.0)  # 300**2 * 8 = 7.2e5 > float16 max 65504
    w[1] = 0
    w[2] = 6e4
    value, grad = value_and_grad(GroupHoyer(1.0), tensor(w, dtype))
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    held = to_numpy(tensor(w, dtype)).astype(np.float64)
    assert_close(to_numpy(value), sh.group_hoyer(held), "float32")
    assert np.isfinite(to_numpy(grad)).all()
    assert_close(
        to_numpy(grad), sh.group_hoyer_gradient(held), dtype, atol_scale=4 * term_scale(held, -2)
    )


def test_scale_invariant_and_jit_equals_eager():
    w = np.random.default_rng(1).normal(size=(6, 5)).astype(np.float32)
    w[3] = 0
    x = tensor(w, "float32")
    compiled = jit(lambda v: group_hoyer(v))
    assert_close(to_numpy(compiled(x)), to_numpy(group_hoyer(x)), "float32")
    assert_close(to_numpy(compiled(x * 1e-3)), sh.group_hoyer(w), "float32")


def test_fit_with_group_hoyer_stays_finite_and_adds_the_penalty():
    keras.utils.set_random_seed(0)
    layer = keras.layers.Dense(3, kernel_regularizer=GroupHoyer(0.05))
    model = keras.Sequential([keras.Input((5,)), layer])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 5)).astype("float32"), rng.normal(size=(32, 3)).astype("float32")
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    kernel = to_numpy(layer.kernel)
    assert np.isfinite(kernel).all()
    total = model.evaluate(x, y, batch_size=32, verbose=0)
    mse = float(np.mean((x @ kernel + to_numpy(layer.bias) - y) ** 2, dtype=np.float64))
    assert_close(total, mse + 0.05 * sh.group_hoyer(kernel), "float32")


@pytest.mark.parametrize("value", [-1e-4, float("nan"), float("inf")])
def test_bad_factor_raises_value_error_naming_hoyer(value):
    with pytest.raises(ValueError, match="hoyer"):
        GroupHoyer(value)


@pytest.mark.parametrize("value", ["0.1", None, True])
def test_factor_of_wrong_type_raises_type_error_naming_hoyer(value):
    with pytest.raises(TypeError, match="hoyer"):
        GroupHoyer(value)


@pytest.mark.parametrize("value", [1.5, "-2", None, True])
def test_bad_group_axis_raises_type_error(value):
    with pytest.raises(TypeError, match="group_axis"):
        GroupHoyer(1e-4, group_axis=value)


def test_config_round_trips_and_is_registered():
    reg = GroupHoyer(np.float32(0.5), group_axis=-1)
    config = reg.get_config()
    assert config == {"hoyer": 0.5, "group_axis": -1} and type(reg.hoyer) is float
    restored = keras.regularizers.deserialize(keras.regularizers.serialize(reg))
    assert isinstance(restored, GroupHoyer) and restored.get_config() == config
    assert keras.saving.get_registered_name(GroupHoyer) == "sparsehead>GroupHoyer"
    assert sh.GroupHoyer is GroupHoyer
