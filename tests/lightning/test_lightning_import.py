"""Reports a skip naming the missing package when lightning is absent; imports it otherwise."""

from __future__ import annotations

import pytest

from .conftest import MISSING


def test_lightning_adapter_imports():
    if MISSING is not None:
        pytest.skip(MISSING)
    from sparsehead.adapters.lightning import SparseHead

    assert SparseHead.__module__ == "sparsehead.adapters.lightning"
