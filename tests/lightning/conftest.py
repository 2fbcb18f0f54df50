"""Lightning callback tests: `python -m pytest tests/lightning`.

Without lightning (pip install 'sparsehead[lightning]') every module here is left out but
`test_lightning_import.py`, which reports one skipped test naming the missing package.
"""

from __future__ import annotations

import importlib.util

MISSING = (
    None
    if importlib.util.find_spec("lightning") is not None
    and importlib.util.find_spec("torch") is not None
    else "lightning is not installed (pip install 'sparsehead[lightning]'): "
    "sparsehead.adapters.lightning is not tested"
)
if MISSING is not None:
    collect_ignore_glob = ["test_lightning_[!i]*.py", "lightning_worker.py"]
