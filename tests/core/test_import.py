"""`import sparsehead` loads no deep-learning framework; Keras names load lazily."""

from __future__ import annotations

import subprocess
import sys

FRAMEWORKS = ("keras", "torch", "jax", "jaxlib", "tensorflow", "flax", "optax")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {m.split(".")[0] for m in out.split()}


def test_import_loads_no_framework():
    loaded = _modules_after(
        "import numpy as np, sparsehead, sparsehead.adapters\n"
        "sparsehead.l21_prox(np.ones((3, 2)), 0.1)\n"
        "sparsehead.info_nce(np.ones((2, 2)), np.ones((2, 2)))"
    )
    assert "sparsehead" in loaded
    assert not loaded & set(FRAMEWORKS), loaded & set(FRAMEWORKS)


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    import sparsehead

    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        sparsehead.nope  # noqa: B018
    assert "L21" in dir(sparsehead)
