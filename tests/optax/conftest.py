"""JAX/optax adapter tests: `python -m pytest tests/optax`.

When jax or optax is not installed, every module here but `test_optax_import.py` is left out,
and that module reports one *skipped* test naming the missing package.
"""

from __future__ import annotations

import importlib.util

_ABSENT = [m for m in ("jax", "optax") if importlib.util.find_spec(m) is None]
MISSING = (
    f"{' and '.join(_ABSENT)} {'is' if len(_ABSENT) == 1 else 'are'} not installed "
    "(pip install 'sparsehead[jax]'): "
    "sparsehead.adapters.optax is not tested"
    if _ABSENT
    else None
)
if MISSING is not None:
    collect_ignore_glob = ["test_optax_[!i]*.py"]  # everything but test_optax_import.py
