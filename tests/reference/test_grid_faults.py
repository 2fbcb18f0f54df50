"""A reproduce.py grid killed at each point that matters, then rerun with the same command.

The grid: SimCLR, the baseline and the proximal step, seed 0 (2 runs of 2 epochs on 128
digits images), in a subprocess. `$SPARSEHEAD_FAULT` (`rundir.fault_point`) makes the process
send itself SIGKILL (or SIGINT) at a named point: during a run (after its first epoch's
backup), between two settings, between two table files. The same command is then rerun
without it, and the test checks:

- no finished result lost or recomputed: every run that had finished before the kill keeps
  its `results.json` (same inode, same mtime), the rerun says it skipped it and trains only
  the others (the interrupted one from its epoch backup: one epoch this session);
- the tables and every run's metrics equal those of an uninterrupted grid (timings aside);
- no folder mixes two runs: each run folder's configuration is its own, its history has each
  epoch once, and no `.partial`/`.old` folder is left.

Run once, under KERAS_BACKEND=tensorflow only: what is tested is the grid's and the run
folder's protocol (`grid.py`, `rundir.py`), which is the same code on every backend, and each
case costs two subprocesses (each imports TensorFlow, which Keras loads on every backend).
That a resumed run computes the same numbers as an uninterrupted one on each backend is
tests/reference/test_resume.py's job; a kill inside a single run's final move is
tests/reference/test_run_faults.py's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")
pytest.importorskip("sklearn")

from reference import rundir
from reference.errors import INTERRUPTED
from tests.reference._signals import default_sigint

if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
    pytest.skip("the grid protocol is backend-independent: run under tensorflow only",
                allow_module_level=True)  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "reference" / "reproduce.py"
COMMAND = ["--seeds", "0", "--l21", "0.3", "--no-penalty", "--out", "grid", "--",
           "--dataset", "digits", "--train-size", "128", "--test-size", "100", "--batch-size",
           "64", "--epochs", "2", "--head-hidden", "16", "--head-dim", "8"]  # fmt: skip
RUNS = ["baseline-seed0", "proximal-l21_0.3-seed0"]


def _grid(cwd: Path, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != rundir.FAULT_ENV}
    if fault:
        env[rundir.FAULT_ENV] = fault
    cmd = [sys.executable, str(SCRIPT), *COMMAND]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=900,
                          preexec_fn=default_sigint)  # fmt: skip


@pytest.fixture(scope="module")
def reference_grid(tmp_path_factory) -> Path:
    """The uninterrupted grid, for comparison."""
    cwd = tmp_path_factory.mktemp("uninterrupted")
    proc = _grid(cwd)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return cwd / "grid"


def _finished(grid: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime) of results.json of every finished run of the grid, also of one that a
    kill stopped before its move into place (in `OUT.partial`; the move keeps both)."""
    out = {}
    for name in RUNS:
        for folder in (grid / "simclr" / name, rundir.partial_dir(grid / "simclr" / name)):
            if (folder / "results.json").is_file():
                st = (folder / "results.json").stat()
                out[name] = (st.st_ino, st.st_mtime_ns)
    return out


def _no_timing(obj):
    """`obj` without timings (they differ from run to run), also in its tables."""
    if isinstance(obj, dict):
        return {k: _table_without_timing(v) if k == "table" else _no_timing(v)
                for k, v in obj.items()
                if k not in ("train_images_per_second", "timing", "history")}  # fmt: skip
    if isinstance(obj, list):
        return [_no_timing(v) for v in obj]
    return obj


def _table_without_timing(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        cells = line.split(" | ")
        if "training images/s" in cells:  # the comparison's row of that metric
            continue
        if len(cells) > 12:  # a row of the mean ± std table: drop its images/s column
            del cells[11]
        lines.append(" | ".join(cells))
    return lines


def _check_same_as_uninterrupted(grid: Path, reference: Path) -> None:
    for name in ("comparison.json", "reproduce.json"):
        got = json.loads((grid / "simclr" / name).read_text())
        assert _no_timing(got) == _no_timing(json.loads((reference / "simclr" / name).read_text()))
    for folder, name in (("simclr", "table.md"), (".", "summary.md")):
        got, want = ((g / folder / name).read_text() for g in (grid, reference))
        assert _table_without_timing(got) == _table_without_timing(want)
    assert _no_timing(json.loads((grid / "summary.json").read_text())) == _no_timing(
        json.loads((reference / "summary.json").read_text())
    )
    assert (grid / "simclr" / "spectra_overlay.png").stat().st_size > 0
    for name in RUNS:
        got, want = (json.loads((g / "simclr" / name / "results.json").read_text())
                     for g in (grid, reference))  # fmt: skip
        assert got["metrics"] == want["metrics"], name


def _check_no_mixing(grid: Path) -> None:
    left = sorted(p.name for p in (grid / "simclr").iterdir() if p.suffix in (".partial", ".old"))
    assert left == []
    for name in RUNS:
        folder = grid / "simclr" / name
        cfg = json.loads((folder / "config.json").read_text())
        results = json.loads((folder / "results.json").read_text())
        assert cfg["out"] == str(Path("grid") / "simclr" / name)
        assert name.endswith(f"-seed{cfg['seed']}") and cfg["proximal"] == name.startswith("prox")
        assert results["config"]["seed"] == cfg["seed"]
        assert [h["epoch"] for h in results["history"]] == [1, 2]


def _kill_and_rerun(tmp_path: Path, fault: str, signal_exit: int = -9, check_killed_state=None):
    killed = _grid(tmp_path, fault)
    assert killed.returncode == signal_exit, killed.stderr[-3000:]
    grid = tmp_path / "grid"
    if check_killed_state is not None:
        check_killed_state(grid)
    before = _finished(grid)
    rerun = _grid(tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = _finished(grid)
    assert sorted(after) == RUNS
    assert {name: after[name] for name in before} == before
    skipped = rerun.stdout.count("finished before, skipped")
    trained = len(re.findall(r"seed \d+: linear ", rerun.stdout))
    assert (skipped, trained) == (len(before), len(RUNS) - len(before))
    _check_no_mixing(grid)
    return killed, rerun, before


# (fault point, runs finished before the kill)
KILLS = {
    "during a run": ("grid-epoch-simclr-proximal-l21_0.3-seed0-1", 1),
    "between settings": ("grid-after-simclr-baseline-seed0", 1),
}


@pytest.mark.parametrize("where", list(KILLS))
def test_sigkill_then_rerun_loses_and_recomputes_nothing(tmp_path, reference_grid, where):
    fault, finished = KILLS[where]
    _, _, before = _kill_and_rerun(tmp_path, fault)
    assert len(before) == finished
    if where == "during a run":  # continued from its epoch-1 backup, not from scratch
        res = tmp_path / "grid" / "simclr" / "proximal-l21_0.3-seed0" / "results.json"
        assert json.loads(res.read_text())["timing"]["epochs_this_session"] == 1
    _check_same_as_uninterrupted(tmp_path / "grid", reference_grid)


def test_sigkill_while_the_tables_are_written(tmp_path, reference_grid):
    """The runs of the uninterrupted grid, copied (their tables left out); the rerun that
    skips them is killed after table.md, before comparison.json; the next one completes."""
    for name in RUNS:
        shutil.copytree(reference_grid / "simclr" / name, tmp_path / "grid" / "simclr" / name)
    _, _, before = _kill_and_rerun(tmp_path, "grid-table", check_killed_state=_mid_table)
    assert len(before) == len(RUNS)
    _check_same_as_uninterrupted(tmp_path / "grid", reference_grid)


def _mid_table(grid: Path) -> None:
    assert (grid / "simclr" / "table.md").is_file()
    assert not (grid / "simclr" / "comparison.json").exists()


def test_sigint_is_one_line_and_the_rerun_continues(tmp_path, reference_grid):
    killed, _, before = _kill_and_rerun(
        tmp_path, "grid-epoch-simclr-proximal-l21_0.3-seed0-1:INT", signal_exit=130
    )
    assert killed.stderr.strip().splitlines()[-1] == INTERRUPTED
    assert "Traceback" not in killed.stderr
    assert len(before) == 1
    _check_same_as_uninterrupted(tmp_path / "grid", reference_grid)
