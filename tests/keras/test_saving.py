"""A `.keras` model with L21 saved under another backend loads here with the same losses."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import pytest
from sparsehead.adapters.keras import L21, ProjectionHead

import sparsehead as sh
from tests.conformance.keras_seam import to_numpy
from tests.tolerances import assert_close

from .conftest import BACKEND

SCRIPT = Path(__file__).with_name("_save_model.py")
_CYCLE = ("jax", "torch", "tensorflow")
# One source backend per run keeps the suite short; the three runs cover a cycle:
# tensorflow -> jax, jax -> torch, torch -> tensorflow (saved under the first, loaded here).
SOURCE = _CYCLE[(_CYCLE.index(BACKEND) - 1) % 3]


def _installed(backend: str) -> bool:
    return importlib.util.find_spec(backend) is not None


_LOAD = """
import json, sys
import keras
import sparsehead
model = keras.saving.load_model(sys.argv[1])
print(json.dumps([float(keras.ops.convert_to_numpy(x)) for x in model.losses]))
"""


def test_model_saved_under_another_backend_loads_with_same_regularization(tmp_path):
    source = SOURCE
    if not _installed(source):
        pytest.skip(f"the {source} backend is not installed")
    path = tmp_path / f"model_{source}.keras"
    env = {**os.environ, "KERAS_BACKEND": source}
    out = subprocess.run(
        [sys.executable, str(SCRIPT), str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    saved = json.loads(out.stdout.strip().splitlines()[-1])
    assert saved["backend"] == source

    # A fresh process needs only `import keras, sparsehead` (issue 13: without the adapter
    # imported explicitly it failed with `Could not interpret ... 'sparsehead>L21'`).
    fresh = subprocess.run(
        [sys.executable, "-c", _LOAD, str(path)], capture_output=True, text=True, timeout=300
    )
    assert fresh.returncode == 0, fresh.stderr[-2000:]
    assert_close(json.loads(fresh.stdout.strip().splitlines()[-1]), saved["losses"], "float32")

    model = keras.saving.load_model(path)
    dense, head = model.get_layer("dense"), model.get_layer("head")
    assert isinstance(dense.kernel.regularizer, L21) and isinstance(head, ProjectionHead)
    assert dense.kernel.regularizer.get_config() == {"l21": 3e-2, "group_axis": -2}
    losses = [float(to_numpy(x)) for x in model.losses]
    assert len(losses) == 2
    assert_close(losses, saved["losses"], "float32")
    assert_close(losses[0], 3e-2 * sh.l21_norm(to_numpy(dense.kernel)), "float32")
    assert_close(losses[1], 7e-3 * sh.l21_norm(to_numpy(head.kernel)), "float32")


_LOAD = """
import json, sys
import keras
import sparsehead
model = keras.saving.load_model(sys.argv[1])
print(json.dumps([float(keras.ops.convert_to_numpy(x)) for x in model.losses]))
"""


def _python(args, backend):
    return subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "KERAS_BACKEND": backend},
        capture_output=True,
        text=True,
        timeout=300,
    )
