"""Reports a skip naming the reason when lightly is absent; fails instead where it is required."""

from __future__ import annotations

import pytest

from .conftest import MISSING, REQUIRED


def test_lightly_imports():
    if MISSING is not None:
        if REQUIRED:
            pytest.fail(f"SPARSEHEAD_REQUIRE_LIGHTLY=1 but {MISSING}")
        pytest.skip(MISSING)
    from lightly.models.modules import SimCLRProjectionHead

    assert SimCLRProjectionHead.__module__.startswith("lightly.")
