"""The backend named by KERAS_BACKEND is installed and is the one Keras runs on."""

from __future__ import annotations

import pytest

from .conftest import BACKEND, KNOWN, MISSING


def test_backend_is_installed_and_selected():
    if BACKEND not in KNOWN:  # a typo in KERAS_BACKEND is an error, not a skip
        pytest.fail(MISSING)
    if MISSING is not None:
        pytest.skip(MISSING)
    import keras

    assert keras.backend.backend() == BACKEND
