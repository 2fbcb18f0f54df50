"""PyTorch adapter tests: `python -m pytest tests/torch`.

When torch is not installed, every module here but `test_torch_import.py` is left out, and
that module reports one *skipped* test naming the missing package.
"""

from __future__ import annotations

import importlib.util

MISSING = (
    None
    if importlib.util.find_spec("torch") is not None
    else "torch is not installed (pip install 'sparsehead[torch]'): sparsehead.adapters.torch "
    "is not tested"
)
if MISSING is not None:
    collect_ignore_glob = ["test_torch_[!i]*.py"]  # everything but test_torch_import.py
