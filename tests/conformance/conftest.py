"""The `backend` fixture: every test body here runs once per backend of `backends.FACTORIES`.

Keras runs on the backend this process picked (`KERAS_BACKEND`); CI starts the suite once per
Keras backend and selects the Keras cases with `-k keras` in the extra runs. A backend whose
package is missing is reported as skipped, with the package named.
"""

from __future__ import annotations

import pytest

from tests.keras.conftest import configured_backend

from .backends import FACTORIES, _requires

_CACHE: dict = {}


def backend_id(name: str) -> str:
    return f"keras-{configured_backend()}" if name == "keras" else name


def make_backend(name: str):
    factory, packages = FACTORIES[name]
    missing = _requires(*packages)
    if missing:
        pytest.skip(f"backend {backend_id(name)}: {missing}")
    if name not in _CACHE:
        _CACHE[name] = factory()
    return _CACHE[name]


@pytest.fixture(params=list(FACTORIES), ids=backend_id)
def backend(request):
    return make_backend(request.param)
