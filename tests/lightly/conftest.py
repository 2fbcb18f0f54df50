"""lightly tests: `python -m pytest tests/lightly` in an environment with lightly.

lightly needs torchvision, built for the installed torch release; the CPU torch 2.13.0 of the
main test environment has none here, so `.ci/run` runs these tests in their own venv
(`.venv-lightly`: torch 2.14.1 + torchvision 0.29.1 + `sparsehead[lightly,lightning,test]`),
with `SPARSEHEAD_REQUIRE_LIGHTLY=1` so that a missing or broken lightly fails there instead of
being skipped. Elsewhere, without lightly, every module here is left out but
`test_lightly_import.py`, which reports one skipped test naming the reason.
"""

from __future__ import annotations

import os


def _missing() -> str | None:
    try:
        import lightly.loss  # noqa: F401  (imports torchvision: a mismatched one fails here)
        import lightning  # noqa: F401
    except Exception as error:  # ImportError, or torchvision's RuntimeError on a bad build
        return (
            f"lightly cannot be imported here ({type(error).__name__}: {error}); "
            "`.ci/run` tests it in .venv-lightly (see tests/lightly/conftest.py)"
        )
    return None


MISSING = _missing()
REQUIRED = os.environ.get("SPARSEHEAD_REQUIRE_LIGHTLY") == "1"
if MISSING is not None and not REQUIRED:
    collect_ignore_glob = ["test_lightly_[!i]*.py"]
