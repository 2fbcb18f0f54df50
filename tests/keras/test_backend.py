"""The backend named by KERAS_BACKEND is installed and is the one Keras runs on."""

from __future__ import annotations

import pytest

from .conftest import BACKEND, MISSING


def test_backend_is_installed_and_selected():
    if MISSING is not None:
        pytest.skip(MISSING)
    import keras

    assert keras.backend.backend() == BACKEND
