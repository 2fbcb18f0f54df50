"""One vocabulary: docs/concepts.md's table is the source of every entry's signature.

The table ("One vocabulary across adapters") gives, per concept and framework, the entry as a
code span `name(parameters)`. Each is compared with `inspect.signature` of the real entry:
parameter names, order, kinds (positional or keyword-only) and defaults. Keyword-only
parameters whose default is the deprecation sentinel (`adapters/_deprecation.py`, an old name
kept for one release) are left out. A framework that is not installed is skipped with its
reason; CI installs all of them.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import re
from pathlib import Path

import pytest

CONCEPTS = Path(__file__).resolve().parents[1] / "docs" / "concepts.md"
MARKER = "<!-- vocabulary-table"

#: Table column -> the module whose entries it lists.
MODULES = {
    "core": "sparsehead",
    "Keras": "sparsehead.adapters.keras",
    "PyTorch": "sparsehead.adapters.torch",
    "Lightning": "sparsehead.adapters.lightning",
    "optax": "sparsehead.adapters.optax",
}

FRAMEWORKS = {"keras", "torch", "lightning", "jax", "optax", "tensorflow", "flax"}

_KIND = {
    "posonlyargs": inspect.Parameter.POSITIONAL_ONLY,
    "args": inspect.Parameter.POSITIONAL_OR_KEYWORD,
    "kwonlyargs": inspect.Parameter.KEYWORD_ONLY,
}


def table_rows(text: str) -> list[dict[str, str]]:
    """The vocabulary table below the marker, as one dict (column -> cell) per row."""
    lines = text[text.index(MARKER) :].splitlines()[1:]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header = [re.sub(r"\s*\(.*\)$", "", cell) for cell in rows[0]]
    return [dict(zip(header, row, strict=True)) for row in rows[2:]]


def parse_entry(span: str) -> tuple[str, list[tuple[str, inspect._ParameterKind, object]]]:
    """`name(params)` -> (name, [(parameter, kind, default or Parameter.empty)])."""
    name, _, params = span.partition("(")
    fn = ast.parse(f"def {name}({params[:-1]}): pass").body[0]
    a = fn.args
    positional = a.posonlyargs + a.args
    pos_defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults))
    pos_defaults += [ast.literal_eval(d) for d in a.defaults]
    out = []
    for arg, default in zip(positional, pos_defaults, strict=True):
        kind = _KIND["posonlyargs" if arg in a.posonlyargs else "args"]
        out.append((arg.arg, kind, default))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        value = inspect.Parameter.empty if default is None else ast.literal_eval(default)
        out.append((arg.arg, _KIND["kwonlyargs"], value))
    return name, out


def documented_entries() -> list[tuple[str, str, str]]:
    """(concept, column, code span) for every entry in the table."""
    entries = []
    for row in table_rows(CONCEPTS.read_text(encoding="utf-8")):
        for column in MODULES:
            for span in re.findall(r"`([^`]+\))`", row[column]):
                entries.append((row["concept"], column, span))
    return entries


def _missing_sentinel():
    try:
        from sparsehead.adapters._deprecation import MISSING
    except ImportError:  # pragma: no cover - the adapters are not installed
        return None
    return MISSING


def actual_parameters(obj) -> list[tuple[str, inspect._ParameterKind, object]]:
    missing = _missing_sentinel()
    out = []
    for p in inspect.signature(obj).parameters.values():
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.default is missing:
            continue  # an old name, deprecated
        out.append((p.name, p.kind, p.default))
    return out


def _same_default(a, b) -> bool:
    if a is inspect.Parameter.empty or b is inspect.Parameter.empty or a is None or b is None:
        return a is b
    return type(a) is type(b) and a == b


ENTRIES = documented_entries()


def test_the_table_lists_every_concept_and_framework():
    concepts = {concept for concept, _, _ in ENTRIES}
    columns = {column for _, column, _ in ENTRIES}
    assert len(concepts) >= 14, concepts
    assert columns == set(MODULES)


@pytest.mark.parametrize(
    ("concept", "column", "span"), ENTRIES, ids=[f"{c}-{col}" for c, col, _ in ENTRIES]
)
def test_signature_matches_the_table(concept, column, span):
    module_name = MODULES[column]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in FRAMEWORKS:
            raise
        pytest.skip(f"{module_name} needs {exc.name}, which is not installed")
    name, expected = parse_entry(span)
    assert hasattr(module, name), f"{module_name} has no {name} (docs/concepts.md: {concept})"
    actual = actual_parameters(getattr(module, name))
    names = [(n, k.name) for n, k, _ in actual]
    assert names == [(n, k.name) for n, k, _ in expected], (
        f"{module_name}.{name}: parameters differ from docs/concepts.md"
    )
    for (n, _, want), (_, _, got) in zip(expected, actual, strict=True):
        assert _same_default(want, got), f"{module_name}.{name}({n}=...): {got!r} != {want!r}"


def test_parse_entry_reads_kinds_and_defaults():
    name, params = parse_entry('f(a, b=-2, *, c="x", d=None, e=1e-4)')
    assert name == "f"
    kinds = inspect.Parameter
    assert params == [
        ("a", kinds.POSITIONAL_OR_KEYWORD, kinds.empty),
        ("b", kinds.POSITIONAL_OR_KEYWORD, -2),
        ("c", kinds.KEYWORD_ONLY, "x"),
        ("d", kinds.KEYWORD_ONLY, None),
        ("e", kinds.KEYWORD_ONLY, 1e-4),
    ]
