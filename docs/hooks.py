"""MkDocs hook: let mkdocstrings (griffe, static analysis) see `sparsehead.adapters`.

The package maps the folder `adapters/` to `sparsehead.adapters` (pyproject `package-dir`). The
editable install resolves that at import time, but griffe reads source files and would look for
`sparsehead/adapters/`, which does not exist. Before every build this hook copies `sparsehead/`
and `adapters/` into `build/docs-src/sparsehead/` with the installed layout; `mkdocs.yml` puts
that folder first in the Python handler's `paths`. Nothing is imported, so the site builds
without Keras, PyTorch or JAX installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from mkdocs.plugins import event_priority

ROOT = Path(__file__).resolve().parent.parent
TREE = ROOT / "build" / "docs-src"


def _copy_py(src: Path, dst: Path) -> None:
    """Copy the package tree `src` to `dst`: its Python files and `py.typed`, subpackages too."""
    dst.mkdir(parents=True, exist_ok=True)
    for path in src.iterdir():
        if path.is_dir() and (path / "__init__.py").is_file():
            _copy_py(path, dst / path.name)
        elif path.suffix in (".py", ".pyi") or path.name == "py.typed":
            shutil.copy2(path, dst / path.name)


@event_priority(100)  # before mkdocstrings reads its `paths`
def on_config(config):
    shutil.rmtree(TREE, ignore_errors=True)
    _copy_py(ROOT / "sparsehead", TREE / "sparsehead")
    _copy_py(ROOT / "adapters", TREE / "sparsehead" / "adapters")
    return config
