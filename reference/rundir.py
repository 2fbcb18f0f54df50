"""The run folder protocol: `--out OUT` exists if and only if its run finished.

A run whose output folder is `OUT` works in the sibling folder `OUT.partial/`:

1. `check_out` decides, before anything on disk is touched, whether the run may start
   (`UsageError` otherwise, naming `--overwrite` or `--resume`).
2. A new run creates `OUT.partial/` and writes `config.json` there first; the epoch backups
   (`checkpoints/backup/`) and `history.json` follow, epoch by epoch. A killed run leaves
   `OUT.partial/`; `--resume` continues it from its last completed epoch, and a rerun without
   `--resume` refuses to discard it (`--overwrite` starts over).
3. When training and evaluation are done, every result file is written into `OUT.partial/`,
   `results.json` last (`write_atomic`): a `results.json` in `OUT.partial/` marks a finished
   run whose move was not done yet.
4. `commit` deletes the epoch backups (a finished run keeps no resume state) and moves the
   finished folder into place with one `os.rename`: `OUT/` then holds all of the run's
   files, never some of them, and never files of two runs.

`--overwrite` of a finished `OUT`: the old run stays untouched until the new one has finished;
then `commit` renames `OUT` to `OUT.old`, renames `OUT.partial` to `OUT`, and deletes
`OUT.old`. A kill between the two renames leaves `OUT.old` (the old run) and the finished
`OUT.partial`; `settle` (called by `status`, `stored_config` and `check_out`) completes the
move the next time, so at every moment at least one finished run is on disk and a later
command sees exactly one.

This protects finished work against a killed process (`kill -9`, Ctrl-C, an exception). The
files written with `write_atomic` are also fsync'ed; the others (weights, plots) rely on the
operating system's page cache, which survives a killed process but not a power cut.

Framework-free: the scripts check the output folder before importing a framework.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
from pathlib import Path
from typing import Literal

from .errors import UsageError

__all__ = [
    "ADDED_SETTINGS",
    "BACKUP",
    "FAULT_ENV",
    "RESUMABLE",
    "Status",
    "check_out",
    "commit",
    "differing_keys",
    "fault_point",
    "old_dir",
    "partial_dir",
    "settle",
    "status",
    "stored_config",
    "write_atomic",
]

Status = Literal["absent", "interrupted", "complete"]

CONFIG, RESULTS = "config.json", "results.json"
#: The epoch backups (Keras' BackupAndRestore) of a run that has not finished.
BACKUP = Path("checkpoints") / "backup"

#: Keys of a run's configuration that may differ when it is resumed: where its output goes and
#: how much it prints. `epochs` may also be raised (the run then trains for longer); nothing
#: else: a resumed run is the same run.
RESUMABLE = frozenset({"out", "resume", "overwrite", "quiet"})

#: Settings added after runs were first stored, with the value every run stored before the
#: key existed was made with: a `config.json` without the key reads as that value, so that a
#: later command with another value is refused, not resumed into (or skipped as) that run.
ADDED_SETTINGS = {"precision": "float32", "augment": "host", "controller": "dual"}

#: Environment variable for the fault-injection tests: `<point>` or `<point>:<signal>`
#: (`KILL` by default, or `INT`) sends that signal to this process when the run reaches
#: `fault_point(<point>)`. Unset in normal use.
FAULT_ENV = "SPARSEHEAD_FAULT"


def partial_dir(out: Path | str) -> Path:
    """`OUT.partial`: where the run of `OUT` works until it has finished."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def old_dir(out: Path | str) -> Path:
    """`OUT.old`: where `--overwrite` puts the old finished run during the swap."""
    out = Path(out)
    return out.with_name(out.name + ".old")


def _finished(folder: Path) -> bool:
    return (folder / RESULTS).is_file()


def settle(out: Path | str) -> None:
    """Complete a `commit` that a kill interrupted (idempotent; otherwise touches nothing)."""
    out = Path(out)
    partial, old = partial_dir(out), old_dir(out)
    if partial.is_dir() and _finished(partial):
        commit(out)
    elif old.is_dir() and not out.exists():  # not reached by `commit`; restore, never delete
        os.rename(old, out)
    elif old.is_dir() and _finished(out):
        shutil.rmtree(old)


def status(out: Path | str) -> Status:
    """`"complete"`: `OUT` holds a finished run; `"interrupted"`: `OUT.partial` holds a run
    that did not finish (`--resume` continues it); `"absent"`: neither. A finished run whose
    move into `OUT` a kill interrupted is moved first (`settle`)."""
    out = Path(out)
    settle(out)
    if out.is_dir() and _finished(out):
        return "complete"
    if (partial_dir(out) / CONFIG).is_file():
        return "interrupted"
    return "absent"


def stored_config(out: Path | str) -> dict | None:
    """The `config.json` of the finished run in `OUT`, else of the interrupted one in
    `OUT.partial`, else None."""
    out = Path(out)
    state = status(out)
    if state == "absent":
        return None
    folder = out if state == "complete" else partial_dir(out)
    return _read_config(folder)


def _read_config(folder: Path) -> dict:
    return {**ADDED_SETTINGS, **json.loads((folder / CONFIG).read_text())}


def write_atomic(path: Path | str, data: str | bytes) -> None:
    """Write `path` whole or not at all: a temporary file in the same folder, fsync'ed, then
    `os.replace`d over `path`. A reader never sees a half-written file."""
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else bytes(data)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def differing_keys(stored: dict, cfg: dict, given=None) -> list[str]:
    """The keys (of `given`, default all of `cfg`'s) whose value in `cfg` differs from the
    stored run's, apart from `RESUMABLE` ones and `epochs` raised."""
    keys = set(cfg) if given is None else set(given)
    diff = []
    for key in sorted(keys - RESUMABLE):
        if key not in stored or key not in cfg:
            continue
        if key == "epochs" and cfg[key] >= stored[key]:
            continue
        if _normal(cfg[key]) != _normal(stored[key]):
            diff.append(key)
    return diff


def _normal(value):
    return json.loads(json.dumps(value))  # tuples vs lists, as config.json stores them


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_out(out: Path | str, cfg: dict, *, resume: bool, overwrite: bool, given=None) -> None:
    """Whether a run with configuration `cfg` may start in `out`: a `UsageError` if not.

    Touches nothing (except `settle`, which completes an earlier finished run's move).
    Refused: a finished run in `OUT` without `--overwrite`; an interrupted one in
    `OUT.partial` without `--resume` (or `--overwrite`, which starts over); `--resume` with no
    interrupted run, or of a finished one; `--resume` with settings that differ from the
    interrupted run's (`given`: the keys the user set, default all of `cfg`'s; the others
    are taken from the stored run); `OUT` an existing file, or a folder with files that is
    not a finished run.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; choose a folder")
    state = status(out)
    partial = partial_dir(out)
    if out.is_dir() and state != "complete" and any(out.iterdir()):
        raise UsageError(
            f"--out {out} holds files but no finished run ({RESULTS}); choose another --out "
            "or move those files away"
        )
    if resume:
        if not (partial / CONFIG).is_file():
            if state == "complete":
                raise UsageError(
                    f"--resume: the run in {out} has finished; nothing to resume (start a new "
                    "run in another --out, or pass --overwrite instead of --resume to redo it)"
                )
            raise UsageError(f"--resume: no interrupted run in {partial} to continue")
        stored = _read_config(partial)
        diff = differing_keys(stored, cfg, given)
        if diff:
            shown = ", ".join(f"{_flag(k)} {cfg[k]!r} (was {stored[k]!r})" for k in diff)
            raise UsageError(
                f"--resume: {shown} differ from the interrupted run in {partial}; resume with "
                "its settings, or pass --overwrite instead of --resume to start over"
            )
    elif (partial / CONFIG).is_file() and not overwrite:
        raise UsageError(
            f"{partial} holds an interrupted run of --out {out}: add --resume to continue it "
            "from its last completed epoch, or --overwrite to discard it and start over"
        )
    if state == "complete" and not overwrite:
        raise UsageError(
            f"--out {out} holds a finished run: pass --overwrite to replace it (it is kept "
            "until the new run has finished), or choose another --out"
        )


def commit(out: Path | str) -> None:
    """Move the finished `OUT.partial` into place as `OUT` (see the module docstring)."""
    out = Path(out)
    partial, old = partial_dir(out), old_dir(out)
    if not _finished(partial):
        raise RuntimeError(f"commit: {partial} has no {RESULTS}; the run has not finished")
    fault_point("commit")
    shutil.rmtree(partial / BACKUP, ignore_errors=True)  # a finished run keeps no resume state
    if out.exists():
        if old.exists():
            shutil.rmtree(old)  # a leftover of an earlier swap: `out` is finished (settle)
        os.rename(out, old)
        fault_point("swap")
    os.rename(partial, out)
    if old.exists():
        shutil.rmtree(old)


def fault_point(name: str) -> None:
    """Test hook: if `$SPARSEHEAD_FAULT` names this point, signal this process (see
    `FAULT_ENV`). A no-op in normal use."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, sig = spec.partition(":")
    if point == name:
        os.kill(os.getpid(), getattr(signal, "SIG" + (sig or "KILL")))
