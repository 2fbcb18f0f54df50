"""reproduce.py checks the whole grid before the first training step (reference/grid.py).

Table-driven: each bad grid flag ends in one `error:` line naming it, exit 2, no run started and
`--out` untouched. Then the grid against what is on disk: a finished run of the same
configuration is skipped, an interrupted one resumed, one of another configuration refused.
These run in-process with a fake training run that follows the run-folder protocol of
`rundir.py` (train into `OUT.partial`, `results.json` last, then `commit`), so they are fast;
tests/reference/test_grid_faults.py does the same with real runs killed in a subprocess.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("keras")
pytest.importorskip("sklearn")

import keras

import reference.training
from reference import rundir
from reference.errors import main_guard
from reference.reproduce import main

ROOT = Path(__file__).resolve().parents[2]
GRID = ["--seeds", "0", "1", "--l21", "0.5", "--no-penalty"]

# (flags, fragments the one error line must hold)
BAD = [
    (["--l21", "-1"], ["'SparseHead proximal λ=-1'", "--l21 must be >= 0; got -1.0"]),
    (["--budget", "2.0"], ["'budget keep=2'", "--budget must be an int >= 1",
                           "or a fraction in (0, 1]"]),
    (["--budget", "0"], ["'budget keep=0'", "--budget must be an int >= 1",
                         "0 would remove the whole head"]),
    (["--target-sparsity", "1.5"], ["--target-sparsity must be a fraction in (0, 1); got 1.5"]),
    (["--hoyer", "-1"], ["--hoyer must be >= 0"]),
    (["--seeds", "1", "1"], ["--seeds must be distinct"]),
    (["--method", "nope"], ["--method", "invalid choice: 'nope'"]),
    (["--setting", "typo", '{"l2l": 1}'], ["'typo'", "unknown configuration keys ['l2l']"]),
    (["--setting", "x", "[1]"], ["'x'", "must be a dict"]),
    (["--setting", "x", "{1"], ["--setting 'x'", "JSON object"]),
    (["--setting", "baseline", "{}"], ["unique", "baseline"]),
    (["--", "--epochs", "0"], ["--epochs must be an int >= 1; got 0"]),
    # every bad value at once, in one message
    (["--l21", "-1", "--budget", "2.0", "--target-sparsity", "1.5"],
     ["3 problems", "--l21 must be", "--budget must be", "--target-sparsity must be"]),
]  # fmt: skip


@pytest.fixture
def trained(monkeypatch):
    """A fake `training.run` that writes a run folder as the real one does; the configs it got."""
    seen = []

    def fake(cfg, callbacks=(), verbose=1):
        seen.append(dict(cfg))
        out = Path(cfg["out"])
        partial = rundir.partial_dir(out)
        stored = {k: v for k, v in cfg.items() if k not in ("resume", "epochs_given")}
        if not cfg["resume"]:
            partial.mkdir(parents=True)
            (partial / "config.json").write_text(json.dumps(stored))
        lin = 0.5 + 0.01 * cfg["seed"] + cfg["l21"]
        acc = {"linear_representation": lin, "knn5_representation": lin / 2}
        res = {"config": stored, "metrics": {"trained": acc, "random_init": acc},
               "timing": {"train_images_per_second": 100.0}}  # fmt: skip
        (partial / "results.json").write_text(json.dumps(res))
        rundir.commit(out)
        return res

    monkeypatch.setattr(reference.training, "run", fake)
    monkeypatch.setattr(keras.utils, "clear_session", lambda *a, **k: None)
    return seen


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _interrupt(run: Path) -> Path:
    """Make the finished `run` look killed before its end: `run.partial` without results."""
    (run / "results.json").unlink()
    return run.rename(rundir.partial_dir(run))


def _guarded(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main_guard(lambda: main(argv))
    return exc.value.code, capsys.readouterr().err


@pytest.mark.parametrize(("flags", "fragments"), BAD, ids=[" ".join(f) for f, _ in BAD])
def test_bad_grid_flag_is_one_error_line_before_any_run(tmp_path, capsys, trained, flags,
                                                        fragments):  # fmt: skip
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("a user's file")
    before = _tree(tmp_path)
    cut = flags.index("--") if "--" in flags else len(flags)
    code, err = _guarded([*GRID, *flags[:cut], "--out", str(out), *flags[cut:]], capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ")
    for fragment in fragments:
        assert fragment in err
    assert trained == []  # nothing trained, not even the first (valid) baseline run
    assert _tree(tmp_path) == before


def test_script_prints_one_error_line_and_exits_2(tmp_path):
    """The same through the real command line: the script's `main_guard`."""
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "reference" / "reproduce.py"), "--l21", "-1",
         "--budget", "0", "--out", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "--l21 must be >= 0" in proc.stderr and "--budget must be an int >= 1" in proc.stderr
    assert not out.exists()


def test_help_says_training_flags_go_after_the_double_dash(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "Training flags" in text and "go after `--`" in text


# -- the grid against the runs on disk ---------------------------------------------------------
def test_rerun_skips_finished_runs_and_rebuilds_the_same_tables(tmp_path, trained, capsys):
    argv = [*GRID, "--out", str(tmp_path)]
    main(argv)
    assert len(trained) == 4
    first = {n: (tmp_path / "simclr" / n).read_bytes() for n in ("table.md", "comparison.json")}
    results = tmp_path / "simclr" / "baseline-seed1" / "results.json"
    stamp = results.stat().st_mtime_ns, results.stat().st_ino
    trained.clear()
    main(argv)
    assert trained == []  # every run finished before: none trained again
    assert (results.stat().st_mtime_ns, results.stat().st_ino) == stamp
    assert capsys.readouterr().out.count("finished before, skipped") == 4
    for name, data in first.items():
        assert (tmp_path / "simclr" / name).read_bytes() == data


def test_rerun_trains_missing_runs_and_resumes_interrupted_ones(tmp_path, trained):
    argv = [*GRID, "--out", str(tmp_path)]
    main(argv)
    table = (tmp_path / "simclr" / "table.md").read_text()
    folder = tmp_path / "simclr"
    # one run interrupted (its .partial folder holds config.json, no results), one gone
    _interrupt(folder / "proximal-l21_0.5-seed0")
    shutil.rmtree(folder / "baseline-seed1")
    trained.clear()
    main(argv)
    got = sorted((Path(c["out"]).name, c["resume"]) for c in trained)
    assert got == [("baseline-seed1", False), ("proximal-l21_0.5-seed0", True)]
    assert (folder / "table.md").read_text() == table
    assert not list(folder.glob("*.partial"))


@pytest.mark.parametrize("state", ["complete", "interrupted"])
def test_a_run_on_disk_with_other_settings_is_refused(tmp_path, trained, capsys, state):
    main([*GRID, "--out", str(tmp_path), "--", "--epochs", "2"])
    run = tmp_path / "simclr" / "proximal-l21_0.5-seed1"
    if state == "interrupted":
        run = _interrupt(run)
    before = _tree(tmp_path)
    trained.clear()
    code, err = _guarded([*GRID, "--out", str(tmp_path), "--", "--epochs", "1"], capsys)
    assert code == 2 and err.count("\n") == 1
    assert f"{run} holds a run with other settings (epochs 1 (was 2))" in err
    # the finished runs differ too (all of them; the message lists each folder once)
    assert str(tmp_path / "simclr" / "baseline-seed0") in err
    assert trained == [] and _tree(tmp_path) == before
