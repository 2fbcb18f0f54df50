"""A run's output folder under faults: `OUT` exists iff its run finished (reference/rundir.py).

First the protocol itself (fast, no framework): `check_out`'s refusals, `commit`, `settle`
after a kill between any two of its steps, `write_atomic`, `main_guard`. Then a tiny real run
(digits, 2 epochs, in a subprocess) killed with SIGKILL at each point that matters and with
SIGINT, rerun with the command the message suggests, and compared with an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from reference import rundir
from reference.errors import INTERRUPTED, UsageError, main_guard
from tests.reference._signals import default_sigint

ROOT = Path(__file__).resolve().parents[2]


def _finished_run(folder: Path, tag: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"seed": 0, "epochs": 2, "tag": tag}))
    (folder / "weights").write_text(tag)
    (folder / "results.json").write_text(json.dumps({"tag": tag}))
    return folder


def _interrupted_run(out: Path, **cfg) -> Path:
    partial = rundir.partial_dir(out)
    partial.mkdir(parents=True)
    (partial / "config.json").write_text(json.dumps({"seed": 0, "epochs": 2, **cfg}))
    return partial


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root`'s parent that belongs to `root` (OUT, OUT.partial, OUT.old)."""
    return {
        str(p.relative_to(root.parent)): p.read_bytes()
        for p in sorted(root.parent.rglob("*"))
        if p.is_file() and p.relative_to(root.parent).parts[0].startswith(root.name)
    }


# -- errors.main_guard -------------------------------------------------------------------
def test_main_guard_usage_error_is_one_line_and_exit_2(capsys):
    def bad():
        raise UsageError("--epochs must be >= 1;\n got 0")

    with pytest.raises(SystemExit) as exc:
        main_guard(bad)
    assert exc.value.code == 2
    assert capsys.readouterr().err == "error: --epochs must be >= 1; got 0\n"


def test_main_guard_interrupt_is_one_line_and_exit_130(capsys):
    def stopped():
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as exc:
        main_guard(stopped)
    assert exc.value.code == 130
    assert capsys.readouterr().err == INTERRUPTED + "\n"


def test_main_guard_passes_values_and_bugs_through():
    assert main_guard(lambda: 7) == 7
    with pytest.raises(ZeroDivisionError):
        main_guard(lambda: 1 / 0)


# -- rundir: status, stored_config, check_out ----------------------------------------------
def test_status_and_stored_config(tmp_path):
    out = tmp_path / "run"
    assert rundir.status(out) == "absent" and rundir.stored_config(out) is None
    _interrupted_run(out, tag="new")
    assert rundir.status(out) == "interrupted"
    assert rundir.stored_config(out)["tag"] == "new"
    _finished_run(out, "old")
    assert rundir.status(out) == "complete"
    assert rundir.stored_config(out)["tag"] == "old"


def test_check_out_refuses_before_touching_anything(tmp_path):
    out = _finished_run(tmp_path / "run", "old")
    cfg = {"seed": 0, "epochs": 2}
    before = _tree(out)
    with pytest.raises(UsageError, match="--overwrite"):
        rundir.check_out(out, cfg, resume=False, overwrite=False)
    with pytest.raises(UsageError, match=r"--resume: the run in .* has finished"):
        rundir.check_out(out, cfg, resume=True, overwrite=False)
    rundir.check_out(out, cfg, resume=False, overwrite=True)  # allowed
    assert _tree(out) == before

    other = tmp_path / "other"
    with pytest.raises(UsageError, match="no interrupted run"):
        rundir.check_out(other, cfg, resume=True, overwrite=False)
    _interrupted_run(other, tag="x")
    with pytest.raises(UsageError, match="add --resume to continue"):
        rundir.check_out(other, cfg, resume=False, overwrite=False)
    rundir.check_out(other, cfg, resume=False, overwrite=True)
    rundir.check_out(other, {"seed": 0, "epochs": 3}, resume=True, overwrite=False)
    with pytest.raises(UsageError, match=r"--seed 1 .was 0."):
        rundir.check_out(other, {"seed": 1, "epochs": 2}, resume=True, overwrite=False)
    with pytest.raises(UsageError, match=r"--epochs 1 .was 2."):
        rundir.check_out(other, {"seed": 0, "epochs": 1}, resume=True, overwrite=False)
    # Only the keys the user gave are compared; the others come from the stored run.
    rundir.check_out(other, {"seed": 1, "epochs": 2}, resume=True, overwrite=False,
                     given=["epochs"])  # fmt: skip

    stray = tmp_path / "stray"
    stray.mkdir()
    rundir.check_out(stray, cfg, resume=False, overwrite=False)  # an empty folder is fine
    (stray / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match="no finished run"):
        rundir.check_out(stray, cfg, resume=False, overwrite=True)
    with pytest.raises(UsageError, match="is a file"):
        rundir.check_out(stray / "notes.txt", cfg, resume=False, overwrite=False)


# -- rundir: commit and settle after a kill at each step -----------------------------------
def test_commit_moves_the_finished_run_into_place(tmp_path):
    out = tmp_path / "run"
    _finished_run(rundir.partial_dir(out), "new")
    rundir.commit(out)
    assert (out / "weights").read_text() == "new"
    assert not rundir.partial_dir(out).exists() and not rundir.old_dir(out).exists()


def test_commit_refuses_an_unfinished_run(tmp_path):
    out = tmp_path / "run"
    _interrupted_run(out)
    with pytest.raises(RuntimeError, match="has not finished"):
        rundir.commit(out)


@pytest.mark.parametrize("step", ["before-rename", "after-swap", "before-delete"])
def test_overwrite_killed_at_each_step_keeps_exactly_one_finished_run(tmp_path, step):
    """The states `commit` passes through with `--overwrite`; `status` settles each."""
    out = _finished_run(tmp_path / "run", "old")
    new = _finished_run(rundir.partial_dir(out), "new")
    if step in ("after-swap", "before-delete"):
        os.rename(out, rundir.old_dir(out))
    if step == "before-delete":
        os.rename(new, out)
    assert rundir.status(out) == "complete"
    assert _tree(out) == {
        "run/config.json": json.dumps({"seed": 0, "epochs": 2, "tag": "new"}).encode(),
        "run/weights": b"new",
        "run/results.json": b'{"tag": "new"}',
    }


def test_settle_restores_an_old_run_it_finds_alone(tmp_path):
    out = tmp_path / "run"
    _finished_run(rundir.old_dir(out), "old")
    assert rundir.status(out) == "complete"
    assert (out / "weights").read_text() == "old"


def test_write_atomic_replaces_whole_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("old")
    rundir.write_atomic(path, "new text")
    rundir.write_atomic(tmp_path / "b.bin", b"\x00\x01")
    assert path.read_text() == "new text" and (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.bin", "table.md"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "table.md"
    path.write_text("old")

    def boom(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(OSError, match="disk full"):
        rundir.write_atomic(path, "new")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["table.md"]


# -- a real run killed at each point (subprocesses; the TensorFlow pass only) ---------------
# The folder protocol does not depend on the backend, and test_resume.py checks bit-exact
# resumption in-process on every backend; these cases check the script end to end, once.
_tf_only = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="the folder protocol is backend-independent: checked once, in the TensorFlow pass",
)
TINY = ["--dataset", "digits", "--train-size", "256", "--test-size", "100", "--batch-size",
        "64", "--epochs", "2", "--head-hidden", "16", "--head-dim", "8", "--quiet"]  # fmt: skip


def _train(out: Path, *flags: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != rundir.FAULT_ENV}
    env.update(KERAS_BACKEND="tensorflow", MPLBACKEND="Agg")
    if fault:
        env[rundir.FAULT_ENV] = fault
    cmd = [sys.executable, str(ROOT / "reference" / "train_simclr.py"), *TINY, "--out", str(out)]
    return subprocess.run([*cmd, *flags], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600, preexec_fn=default_sigint)  # fmt: skip


def _outcome(out: Path) -> dict:
    """What must not depend on interruptions: the files, the settings, every epoch's logs
    (not their seconds) and every metric."""
    res = json.loads((out / "results.json").read_text())
    history = [{k: v for k, v in h.items() if k != "seconds"} for h in res["history"]]
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    cfg = {k: v for k, v in res["config"].items() if k != "out"}
    return {"files": files, "config": cfg, "history": history,
            "metrics": res["metrics"], "epochs": res["epochs_completed"]}  # fmt: skip


def _only_out(out: Path) -> None:
    """Exactly one folder for the run: no work folder, no old run left beside it."""
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = _train(out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out, _outcome(out)


@_tf_only
@pytest.mark.parametrize("point", ["batch", "epoch-1"])
def test_sigkill_during_training_then_resume(tmp_path, uninterrupted, point):
    out = tmp_path / "run"
    assert _train(out, fault=point).returncode == -signal.SIGKILL
    assert not out.exists() and rundir.status(out) == "interrupted"
    # The same command refuses to discard the interrupted run and names --resume.
    again = _train(out)
    assert again.returncode == 2 and "add --resume to continue" in again.stderr
    resumed = _train(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _outcome(out) == uninterrupted[1]
    _only_out(out)


@_tf_only
def test_sigint_is_one_line_exit_130_then_resume(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = _train(out, fault="epoch-1:INT")
    assert proc.returncode == 130
    assert proc.stderr.strip().splitlines()[-1:] == [INTERRUPTED]
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr
    resumed = _train(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((out / "results.json").read_text())["timing"]["epochs_this_session"] == 1
    assert _outcome(out) == uninterrupted[1]
    _only_out(out)


@_tf_only
def test_sigkill_between_results_and_move_keeps_the_finished_run(tmp_path, uninterrupted):
    out = tmp_path / "run"
    assert _train(out, fault="commit").returncode == -signal.SIGKILL
    assert not out.exists()
    # The rerun finds the finished run, moves it into place and does not train it again.
    again = _train(out)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    assert _outcome(out) == uninterrupted[1]
    _only_out(out)


@_tf_only
def test_sigkill_while_overwrite_swaps_never_leaves_neither(tmp_path, uninterrupted):
    out = tmp_path / "run"
    shutil.copytree(uninterrupted[0], out)
    old = json.loads((out / "results.json").read_text())
    # Another run (seed 1) replaces it, killed between moving the old one aside and the new
    # one into place.
    proc = _train(out, "--overwrite", "--seed", "1", fault="swap")
    assert proc.returncode == -signal.SIGKILL
    assert not out.exists() and rundir.old_dir(out).is_dir()
    assert rundir.status(out) == "complete"  # the next command finishes the move
    new = json.loads((out / "results.json").read_text())
    assert new["config"]["seed"] == 1 and new["metrics"] != old["metrics"]
    assert _outcome(out)["files"] == uninterrupted[1]["files"]
    _only_out(out)
