"""Release files: one version everywhere, the licence that pyproject names, a valid citation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import sparsehead

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_the_version_has_one_source():
    project = _pyproject()
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    dynamic = project["tool"]["setuptools"]["dynamic"]["version"]
    assert dynamic == {"attr": "sparsehead.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", sparsehead.__version__)


def test_licence_file_is_the_one_pyproject_names_and_ships():
    project = _pyproject()["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Permission is hereby granted" in text


def test_citation_and_changelog_name_this_version():
    yaml = pytest.importorskip("yaml")
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    assert str(cff["version"]) == sparsehead.__version__
    paper = cff["preferred-citation"]
    assert paper["title"] == "Towards the Sparseness of Projection Head in Self-Supervised Learning"
    assert [a["family-names"] for a in paper["authors"]] == [
        "Song", "Su", "Wang", "Qiang", "Zheng", "Sun"]  # fmt: skip
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog
    assert f"## [{sparsehead.__version__}]" in changelog
