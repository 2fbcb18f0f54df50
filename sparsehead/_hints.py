"""Import errors that say what to do: the Keras extra, and the editable install.

- `sparsehead.L21` (and the other Keras names) without Keras: `ImportError` naming
  `pip install "sparsehead[keras]"`.
- `sparsehead.adapters` not found: a non-editable install (`pip install .`) used from the
  repository root imports the local `sparsehead/` folder, which has no `adapters/` inside
  (pyproject maps the top-level `adapters/` folder to `sparsehead.adapters` at install time).
  A finder placed last on `sys.meta_path` turns that bare `No module named
  'sparsehead.adapters'` into a message naming the remedy.
"""

from __future__ import annotations

import sys

__all__ = ["ADAPTERS_MISSING", "install_adapters_hint", "keras_missing"]

ADAPTERS_MISSING = (
    "No module named 'sparsehead.adapters': this `sparsehead` ({path}) has no adapters. A "
    "non-editable install (`pip install .`) used from the repository root imports the local "
    "sparsehead/ folder, which has none; install the repository in editable mode "
    '(`pip install -e ".[keras]"`), or run Python from another folder.'
)


class _AdaptersHint:
    """Last finder on `sys.meta_path`: reached only when no other finder found the module."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "sparsehead.adapters":
            return None
        where = getattr(sys.modules.get("sparsehead"), "__path__", ["?"])[0]
        raise ModuleNotFoundError(ADAPTERS_MISSING.format(path=where), name=fullname)


def install_adapters_hint() -> None:
    """Append the hint finder to `sys.meta_path` once."""
    if not any(type(f).__name__ == "_AdaptersHint" for f in sys.meta_path):
        sys.meta_path.append(_AdaptersHint())


def keras_missing(name: str, exc: ModuleNotFoundError) -> ImportError | None:
    """The `ImportError` for `sparsehead.<name>` when Keras itself is missing, else None."""
    if exc.name != "keras" and not (exc.name or "").startswith("keras."):
        return None
    return ImportError(
        f"sparsehead.{name} needs Keras 3, which is not installed: "
        'pip install "sparsehead[keras]" (and a backend: "sparsehead[keras,tensorflow]", '
        "jax or torch)",
        name="keras",
    )
