"""`sparsehead.adapters.optax` imports jax and optax only; reports a missing jax/optax."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import MISSING

OTHER_FRAMEWORKS = {"torch", "keras", "tensorflow", "flax"}


def test_jax_and_optax_are_installed():
    if MISSING is not None:
        pytest.skip(MISSING)


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_optax_adapter_imports_jax_and_optax_only():
    code = "import sparsehead.adapters.optax, sys; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert {"jax", "optax"} <= loaded
    assert not loaded & OTHER_FRAMEWORKS, loaded & OTHER_FRAMEWORKS
