"""Bad weights get the core's errors before any tensor work, on every backend: an empty weight
is a ValueError naming the argument (TensorFlow would fail later with "Cannot compute the max
of an empty tensor"), an integer weight a TypeError, `keep=0` a ValueError."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from sparsehead.adapters.keras import (
    L21,
    AdaptiveL21,
    GroupBudget,
    GroupHoyer,
    ProximalL21,
    SparsityMonitor,
    group_hoyer,
    group_norms,
    l20_project,
    l21_prox,
)

from tests.conformance.keras_seam import tensor

OPS = {
    "group_norms": group_norms,
    "l21_prox": lambda w: l21_prox(w, 0.1),
    "l20_project": lambda w: l20_project(w, 1),
    "group_hoyer": group_hoyer,
    "L21": L21(1e-4),
    "GroupHoyer": GroupHoyer(1e-3),
}

CALLBACKS = {
    "ProximalL21": lambda v: ProximalL21(1e-4, v).variables(),
    "GroupBudget": lambda v: GroupBudget(1, v).variables(),
    "AdaptiveL21": lambda v: AdaptiveL21(0.5, v).on_train_begin(),
    "SparsityMonitor": lambda v: SparsityMonitor(v).summary(),
}


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (2, 0, 3)])
def test_empty_weight_is_a_value_error_naming_w(op, shape):
    with pytest.raises(ValueError, match=r"^w must not be empty"):
        OPS[op](tensor(np.zeros(shape), "float32"))


@pytest.mark.parametrize("op", sorted(OPS))
@pytest.mark.parametrize("dtype", ["int32", "bool"])
def test_non_float_weight_is_a_type_error_naming_w(op, dtype):
    with pytest.raises(TypeError, match=r"^w must be floating point"):
        OPS[op](tensor(np.ones((3, 2)), dtype))


@pytest.mark.parametrize("entry", sorted(CALLBACKS))
def test_callbacks_name_targets_for_empty_and_integer_kernels(entry):
    with pytest.raises(ValueError, match=r"^targets must not be empty"):
        CALLBACKS[entry](keras.Variable(np.zeros((0, 2), "float32")))
    with pytest.raises(TypeError, match=r"^targets must be floating point"):
        CALLBACKS[entry](keras.Variable(np.ones((3, 2), "int32"), trainable=False))


def test_keep_zero_is_a_value_error():
    with pytest.raises(ValueError, match=r"^keep must be >= 1"):
        GroupBudget(0, keras.layers.Dense(2))
    with pytest.raises(ValueError, match=r"^keep must be >= 1"):
        l20_project(tensor(np.ones((3, 2)), "float32"), 0)
