"""L21, ProximalL21, GroupHoyer, GroupBudget, AdaptiveL21 and SparsityMonitor under
keras.distribution.ModelParallel on JAX: the head kernel sharded over four forced CPU devices, by
rows and by columns (in a subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tolerances import assert_close

from .conftest import BACKEND

SCRIPT = Path(__file__).with_name("_model_parallel.py")


@pytest.fixture(scope="module")
def result():
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=4",
    }
    out = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.multiprocess
@pytest.mark.skipif(
    BACKEND != "jax", reason="ModelParallel is checked in the KERAS_BACKEND=jax run"
)
@pytest.mark.parametrize("layout", ["rows", "columns"])
@pytest.mark.parametrize("mode", ["penalty", "prox", "hoyer", "budget", "adaptive"])
def test_sharded_head_kernel_trains_as_on_one_device(result, layout, mode):
    assert result["n_devices"] == 4
    sharded, one = result[layout][mode], result["one"][mode]
    assert one["devices"] == 1 and sharded["devices"] == 4  # the kernel really is split
    assert sharded["spec"] == {"rows": "P('model', None)", "columns": "P(None, 'model')"}[layout]
    kernel = np.asarray(one["kernel"])
    # 12 Adam steps; the sharded sums differ from one device's only in summation order
    assert_close(sharded["kernel"], kernel, "float32", atol_scale=float(abs(kernel).max()))
    # loss, every SparsityMonitor measure, the budget k(t), the adaptive λ and its measure
    assert set(sharded["history"]) == set(one["history"])
    for key, values in one["history"].items():
        assert_close(sharded["history"][key], values, "float32", err_msg=key)
    zero = ~np.asarray(one["kernel"]).any(axis=1)
    assert np.array_equal(~np.asarray(sharded["kernel"]).any(axis=1), zero)  # same zero groups
    if mode == "prox":  # the prox acted: a group is exactly zero in both runs
        assert zero.any()
    if mode == "budget":  # keep=3 of the 8 groups (input features) from end_step on
        assert (~zero).sum() == 3 and one["history"]["budget"][-1] == 3
    if mode == "adaptive":  # λ moved from its start, the same way on 4 devices as on one
        assert one["history"]["adaptive_l21"][0] != 1e-3
