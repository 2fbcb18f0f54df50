"""The floors pyproject declares are the versions CI's floors step tests.

`.ci/floors` installs the package with `-c .ci/constraints-floors.txt` and runs the core, Keras
(jax backend) and optax suites there. This test ties that file to pyproject.toml: every pin is
the declared floor (`>=`) of that package, in every requirement that names it, and every
package installed by the floors step's extras (`dependencies`, `keras`, `jax`) is pinned. So a
floor lowered below what CI tests, a floor raised without the test moving, or a pin with no
floor fails here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / ".ci" / "constraints-floors.txt"
TESTED_EXTRAS = ("keras", "jax")  # with `dependencies`: what `.ci/floors` installs besides `test`


def _pins(text: str) -> dict[str, Version]:
    """`name==version` per non-comment line of a pip constraints file."""
    pins: dict[str, Version] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([0-9][^\s;]*)", line)
        if match is None:
            raise ValueError(f"constraints line {number}: expected `name==version`, got {raw!r}")
        name = canonicalize_name(match[1])
        if name in pins:
            raise ValueError(f"constraints line {number}: {match[1]} is pinned twice")
        pins[name] = Version(match[2])
    return pins


def _requirements(project: dict) -> list[tuple[str, Requirement]]:
    """(where, requirement) for `dependencies` and every optional extra."""
    found = [("dependencies", Requirement(r)) for r in project.get("dependencies", [])]
    for extra, reqs in project.get("optional-dependencies", {}).items():
        found += [(f"[{extra}]", Requirement(r)) for r in reqs]
    return found


def _floor(req: Requirement) -> Version | None:
    lows = [Version(s.version) for s in req.specifier if s.operator == ">="]
    return max(lows) if lows else None


def _disagreements(project: dict, pins: dict[str, Version]) -> list[str]:
    problems = []
    reqs = [(w, r) for w, r in _requirements(project) if r.name.lower() != project["name"]]
    declared: dict[str, list[tuple[str, Requirement]]] = {}
    for where, req in reqs:
        declared.setdefault(canonicalize_name(req.name), []).append((where, req))
    for name, pinned in sorted(pins.items()):
        if name not in declared:
            problems.append(f"{name}=={pinned} is pinned but pyproject declares no floor for it")
        for where, req in declared.get(name, []):
            floor = _floor(req)
            if floor != pinned:
                problems.append(f"{where} {req}: floor {floor} but the floors step tests {pinned}")
    tested = [("dependencies", Requirement(r)) for r in project.get("dependencies", [])]
    for extra in TESTED_EXTRAS:
        tested += [(f"[{extra}]", Requirement(r)) for r in project["optional-dependencies"][extra]]
    for where, req in tested:
        if canonicalize_name(req.name) not in pins:
            problems.append(f"{where} {req} is installed by the floors step but not pinned")
    return problems


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_declared_floors_are_the_tested_versions():
    problems = _disagreements(_project(), _pins(CONSTRAINTS.read_text(encoding="utf-8")))
    assert not problems, "\n".join(problems)


def test_a_lowered_floor_an_unpinned_dependency_and_a_stray_pin_are_caught():
    project = {
        "name": "sparsehead",
        "dependencies": ["numpy>=1.24"],
        "optional-dependencies": {
            "keras": ["keras>=3.5"],  # lower than the pin
            "jax": ["jax>=0.4.30", "optax>=0.2.3"],  # optax not pinned
            "reference": ["keras>=3.6"],
        },
    }
    pins = _pins("numpy==1.24.0\nkeras==3.6.0  # a comment\njax==0.4.30\nml-dtypes==0.4.0\n")
    problems = _disagreements(project, pins)
    assert len(problems) == 3, problems
    assert "[keras] keras>=3.5: floor 3.5 but the floors step tests 3.6.0" in problems
    assert any(p.startswith("ml-dtypes==0.4.0 is pinned but") for p in problems)
    assert any(p.startswith("[jax] optax>=0.2.3 is installed") for p in problems)


def test_a_malformed_constraint_names_its_line():
    with pytest.raises(ValueError, match="line 2"):
        _pins("numpy==1.24.0\nkeras>=3.6\n")
