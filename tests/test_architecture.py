"""The package's shape, read from the source with `ast`: no import cycle in `sparsehead/` and
`adapters/` (imports inside functions included: a cycle dodged by a late import is still a
cycle), one folder per framework under `adapters/`, each `__init__.py` there only re-exports,
and no core module imports a framework, not even inside a function (`tests/core/test_import.py`
checks the same at run time, for what an import and a few calls load).
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ROOT = Path(__file__).resolve().parents[1]
# the import name of each source folder (pyproject's package-dir)
PACKAGES = {"sparsehead": ROOT / "sparsehead", "sparsehead.adapters": ROOT / "adapters"}
FRAMEWORKS = {"keras", "torch", "jax", "jaxlib", "tensorflow", "flax", "optax", "lightning"}
FRAMEWORK_FOLDERS = ("keras", "torch", "optax")


def modules(packages: dict[str, Path] = PACKAGES) -> dict[str, Path]:
    """Every module's dotted name and file, e.g. `sparsehead.adapters.torch._ops`."""
    out = {}
    for name, folder in packages.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("").parts
            if rel[-1] == "__init__":
                rel = rel[:-1]
            dotted = ".".join((name, *rel))
            if dotted.startswith("sparsehead.adapters") and name == "sparsehead":
                continue  # not a real path: adapters/ is mapped there
            out[dotted] = path
    return out


def lazy_attribute_hook(node: ast.AST, tree: ast.Module, path: Path) -> bool:
    """A package `__init__`'s module-level `__getattr__` (PEP 562): its imports run only when
    a missing attribute is read, after every module involved has finished loading (how
    `sparsehead.L21` loads the Keras adapter). Not an import-time edge."""
    return path.name == "__init__.py" and any(
        isinstance(f, ast.FunctionDef) and f.name == "__getattr__" and node in ast.walk(f)
        for f in tree.body
    )


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `name` imports, at module level or inside functions.
    `from pkg import mod` counts `pkg.mod` when that is a module, else `pkg`."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if lazy_attribute_hook(node, tree, path):
            continue
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            submodules = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
            # names that are not submodules are attributes of `base`: it is imported too
            targets = submodules + ([base] if len(submodules) < len(node.names) else [])
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import a.b.c` of a non-module attribute
                target = target.rpartition(".")[0]
            if target:
                found.add(target)
    found.discard(name)
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (each one is a cycle)."""
    names = sorted(graph)
    index = {n: i for i, n in enumerate(names)}
    edges = [(index[a], index[b]) for a in names for b in graph[a]]
    rows, cols = zip(*edges, strict=True) if edges else ((), ())
    matrix = coo_matrix((np.ones(len(edges)), (rows, cols)), shape=(len(names), len(names)))
    _, labels = connected_components(matrix, directed=True, connection="strong")
    groups: dict[int, list[str]] = {}
    for n, label in zip(names, labels, strict=True):
        groups.setdefault(label, []).append(n)
    return sorted(g for g in groups.values() if len(g) > 1)


def import_graph(packages: dict[str, Path] = PACKAGES) -> dict[str, set[str]]:
    mods = modules(packages)
    return {n: imports(n, p, set(mods)) for n, p in mods.items()}


def test_no_import_cycle():
    cycles = import_cycles(import_graph())
    assert not cycles, "import cycles (strongly connected modules): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_finder_finds_a_planted_cycle(tmp_path):
    """The detector itself, on a package with a cycle through a function-level import."""
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from .a import f\n")
    (pkg / "a.py").write_text("from . import b\n\ndef f():\n    return b.g()\n")
    (pkg / "b.py").write_text("def g():\n    from .a import f\n    return f\n")
    (pkg / "c.py").write_text("import pkg.a\n")
    assert import_cycles(import_graph({"pkg": pkg})) == [["pkg.a", "pkg.b"]]


def test_no_framework_prefixed_module_at_the_adapters_root():
    stray = [
        p.name
        for p in (ROOT / "adapters").glob("*.py")
        if p.name.startswith(tuple(f"_{f}_" for f in FRAMEWORK_FOLDERS))
    ]
    assert not stray, f"move these into adapters/<framework>/: {stray}"


def reexport_only(tree: ast.Module) -> list[str]:
    """The statements of a module that are not a docstring, an import or `__all__ = [...]`."""
    bad = []
    for i, node in enumerate(tree.body):
        if i == 0 and isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        if isinstance(node, ast.Assign | ast.AnnAssign) and [
            getattr(t, "id", None) for t in targets
        ] == ["__all__"]:
            continue
        bad.append(f"line {node.lineno}: {ast.unparse(node).splitlines()[0]}")
    return bad


@pytest.mark.parametrize("framework", FRAMEWORK_FOLDERS)
def test_framework_package_init_only_reexports(framework):
    init = ROOT / "adapters" / framework / "__init__.py"
    assert init.is_file(), f"adapters/{framework}/__init__.py is missing"
    bad = reexport_only(ast.parse(init.read_text()))
    assert not bad, f"adapters/{framework}/__init__.py does more than re-export: {bad}"


def test_reexport_check_refuses_code():
    assert reexport_only(ast.parse('"""doc"""\nfrom .a import b\n__all__ = ["b"]\n')) == []
    assert reexport_only(ast.parse("from .a import b\n\ndef c():\n    pass\n")) == [
        "line 3: def c():"
    ]


def test_core_imports_no_framework_even_inside_functions():
    found = []
    for name, path in modules({"sparsehead": PACKAGES["sparsehead"]}).items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if lazy_attribute_hook(node, tree, path):
                continue  # the lazy Keras names: an adapter, loaded on first use only
            if isinstance(node, ast.Import):
                tops = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level:
                tops = [(node.module or "").split(".")[0]]
            else:
                continue
            found += [f"{name}:{node.lineno} imports {t}" for t in tops if t in FRAMEWORKS]
    assert not found, found
