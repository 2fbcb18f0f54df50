"""L21 under keras.distribution.DataParallel on JAX with two CPU devices (in a subprocess)."""

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

SCRIPT = Path(__file__).with_name("_data_parallel.py")


@pytest.mark.skipif(BACKEND != "jax", reason="DataParallel is checked in the KERAS_BACKEND=jax run")
def test_data_parallel_gives_the_same_regularization_loss_as_one_device():
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
    }
    out = subprocess.run(
        [sys.executable, str(SCRIPT)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    one, two = result["one"], result["two"]
    assert result["n_devices"] == 2 and two["devices"] == 2 and one["devices"] == 1
    # Same data, same steps: the all-reduced gradient equals the one-device gradient up to
    # float32 summation order, over 8 SGD steps.
    assert_close(two["reg_loss"], one["reg_loss"], "float32")
    assert_close(two["reg_loss"], two["core"], "float32")
    np.testing.assert_allclose(two["kernel"], one["kernel"], rtol=1e-5, atol=1e-6)
