"""Benchmarks that run in one process per Keras backend (Keras fixes its backend per process).

`run_worker` starts `python -m MODULE --worker WORKER ...`, reads the JSON rows it prints, and
turns a failed worker into one SKIPPED row naming the failure. `keras_backends()` are the
backends the command asked for (`python -m benchmarks --backends ...`; all three by default).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

from ._harness import Row

__all__ = ["KERAS_BACKENDS", "keras_backends", "run_worker", "select_backends", "worker_main"]

KERAS_BACKENDS = ("jax", "torch", "tensorflow")
_ROOT = Path(__file__).resolve().parents[1]
_selected: tuple[str, ...] = KERAS_BACKENDS


def select_backends(names: Iterable[str] | None) -> None:
    """Run the per-backend benchmarks on `names` only (None: all of `KERAS_BACKENDS`)."""
    global _selected
    chosen = KERAS_BACKENDS if names is None else tuple(dict.fromkeys(names))
    bad = [n for n in chosen if n not in KERAS_BACKENDS]
    if bad or not chosen:
        raise ValueError(f"backends must be some of {KERAS_BACKENDS}; got {list(chosen)}")
    _selected = chosen


def keras_backends() -> tuple[str, ...]:
    return _selected


def run_worker(module: str, worker: str, args: list[str], *, group: str, name: str,
               sense: str, limit: float) -> list[Row]:  # fmt: skip
    """The rows `python -m module --worker worker *args` prints (one JSON object per line);
    `worker` is a Keras backend (set as KERAS_BACKEND) or another worker name of `module`.
    On failure, one SKIPPED row `f"{name} [{worker}]"` of `group` with the target
    `sense limit`."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    # On a GPU the Keras backend and PyTorch share the device: no framework takes it all.
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    env.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    if worker in KERAS_BACKENDS:
        env["KERAS_BACKEND"] = worker
    cmd = [sys.executable, "-m", module, "--worker", worker, *args]
    proc = subprocess.run(cmd, env=env, cwd=_ROOT, capture_output=True, text=True, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        nan = float("nan")
        return [Row(group, f"{name} [{worker}]", "-", nan, nan, nan, sense, limit, 0,
                    note=f"SKIPPED: worker failed: {tail[0][:120]}")]  # fmt: skip
    return [Row(**json.loads(ln)) for ln in lines]


def worker_main(worker: Callable[[str, bool], list[dict]], argv=None) -> int:
    """The `--worker BACKEND [--quick]` side of `run_worker`: prints `worker(backend, quick)`'s
    rows, one JSON object per line."""
    p = argparse.ArgumentParser()
    p.add_argument("--worker", choices=KERAS_BACKENDS, required=True)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", args.worker)
    for row in worker(args.worker, args.quick):
        print(json.dumps(row), flush=True)
    return 0
