"""Import errors name their remedy, and `dir(sparsehead)` lists only public names."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import sparsehead

ROOT = Path(__file__).resolve().parents[2]


def _run(code: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=cwd,
                          capture_output=True, text=True)  # fmt: skip


def test_dir_lists_public_names_only():
    names = dir(sparsehead)
    assert "annotations" not in names
    assert not [n for n in names if n.startswith("_") and n != "__version__"], names
    assert set(sparsehead.__all__) <= set(names) and "__version__" in names
    assert "L21" in names and "l21_prox" in names


def test_keras_names_without_keras_name_the_extra():
    # A NumPy-only install: `import keras` fails (None in sys.modules blocks the import).
    proc = _run(
        """
        import sys
        sys.modules["keras"] = None
        import sparsehead
        sparsehead.l21_norm([[1.0, 2.0]])  # the core still works
        try:
            sparsehead.L21
        except ImportError as exc:
            print(type(exc).__name__, exc)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ImportError sparsehead.L21 needs Keras 3")
    assert 'pip install "sparsehead[keras]"' in proc.stdout


def test_missing_adapters_name_the_editable_install(tmp_path):
    # A non-editable install used from the repository root: the local sparsehead/ folder
    # (no adapters/ inside) is imported. Rebuilt here: a copy of sparsehead/ alone, and no
    # editable-install finder that would map sparsehead.adapters.
    shutil.copytree(ROOT / "sparsehead", tmp_path / "sparsehead")
    proc = _run(
        """
        import sys
        sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
        import sparsehead
        import os
        assert os.path.dirname(os.path.dirname(sparsehead.__file__)) == os.getcwd()
        for stmt in ("import sparsehead.adapters.keras", "sparsehead.L21"):
            try:
                exec(stmt)
            except ImportError as exc:
                print(type(exc).__name__, exc)
        """,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2, proc.stdout
    for line in lines:
        assert line.startswith("ModuleNotFoundError No module named 'sparsehead.adapters'")
        assert "pip install -e" in line and str(tmp_path / "sparsehead") in line
