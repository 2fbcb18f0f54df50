"""`sparsehead.adapters.torch` imports torch and no other framework; reports a missing torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from .conftest import MISSING

OTHER_FRAMEWORKS = {"jax", "jaxlib", "optax", "keras", "tensorflow", "flax"}


def test_torch_is_installed():
    if MISSING is not None:
        pytest.skip(MISSING)


@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_torch_adapter_imports_torch_only():
    code = "import sparsehead.adapters.torch, sys; print(' '.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = {m.split(".")[0] for m in out.stdout.split()}
    assert "torch" in loaded
    assert not loaded & OTHER_FRAMEWORKS, loaded & OTHER_FRAMEWORKS
