"""Keras adapter tests, run once per backend: `KERAS_BACKEND=jax pytest tests/keras` (or torch,
tensorflow).

When the backend's framework (or Keras) is not installed, every test module here is left out
and `test_backend.py` reports one *skipped* test naming the missing package, so a missing
backend is visible in the summary and never counts as a pass. A KERAS_BACKEND that names no
known backend (a typo) fails that test instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

_FRAMEWORK = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}
KNOWN = tuple(_FRAMEWORK)


def configured_backend() -> str:
    """The backend Keras will pick: KERAS_BACKEND, else ~/.keras/keras.json, else tensorflow."""
    name = os.environ.get("KERAS_BACKEND")
    if name:
        return name
    config = Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")) / "keras.json"
    try:
        return json.loads(config.read_text()).get("backend", "tensorflow")
    except (OSError, ValueError):
        return "tensorflow"


BACKEND = configured_backend()


def missing_reason() -> str | None:
    if BACKEND not in _FRAMEWORK:
        return f"KERAS_BACKEND={BACKEND!r} is not one of jax, torch, tensorflow"
    for module in ("keras", _FRAMEWORK[BACKEND]):
        if importlib.util.find_spec(module) is None:
            return f"KERAS_BACKEND={BACKEND}: the package {module!r} is not installed"
    return None


MISSING = missing_reason()
if MISSING is not None:
    collect_ignore_glob = ["test_[!b]*.py"]  # everything but test_backend.py
