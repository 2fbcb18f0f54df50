"""Shared pytest setup: Hypothesis profiles and the repository root on sys.path."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `reference/` is a folder of scripts, imported by the tests
    sys.path.insert(0, str(ROOT))

settings.register_profile(
    "default",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# the documentation snippets' summary (tests/docs/summary.py): hooks, registered from here
from tests.docs.summary import pytest_runtest_logreport, pytest_terminal_summary  # noqa: E402, F401

settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=500)
# CI (.ci/run sets HYPOTHESIS_PROFILE=ci): the same examples on every run, so CI cannot fail at
# random; explore with `thorough` locally and pin each find with @example.
settings.register_profile(
    "ci", parent=settings.get_profile("default"), derandomize=True, database=None
)
# The declared minimum versions (.ci/floors): CI's derandomized examples, fewer of them. That
# run asks whether every path works at the floors; the properties' search at full size is the
# main suite's, on the same code.
settings.register_profile("floors", parent=settings.get_profile("ci"), max_examples=15)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# Whole folders whose every test runs Keras on the backend of the process.
KERAS_FOLDERS = (ROOT / "tests" / "keras",)


def pytest_collection_modifyitems(items) -> None:
    """Mark `keras_backend` what CI must run under every Keras backend (pyproject's markers);
    test files elsewhere mark themselves (`pytestmark`), doc blocks by the packages they use."""
    conformance = ROOT / "tests" / "conformance"
    for item in items:
        if any(folder in item.path.parents for folder in KERAS_FOLDERS) or (
            conformance in item.path.parents and "keras" in item.name  # the Keras seam's cases
        ):
            item.add_marker(pytest.mark.keras_backend)
