"""Fixtures for the reference data tests: import path, and no internet."""

from __future__ import annotations

import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `reference` is a folder of the repository, not an installed package
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Refuse any URL that is not on 127.0.0.1, so that no test can reach the real internet."""
    real_urlopen = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        target = url.full_url if isinstance(url, urllib.request.Request) else url
        host = urllib.parse.urlsplit(target).hostname
        if host != "127.0.0.1":
            raise AssertionError(f"test tried to reach {target}: tests never use the internet")
        return real_urlopen(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture(autouse=True)
def _isolated_data_dir(monkeypatch, tmp_path):
    """Point the default data folder at an empty temporary folder."""
    monkeypatch.setenv("SPARSEHEAD_DATA_DIR", str(tmp_path / "default-data-dir"))
