"""Run a multi-process (gloo) worker script in a subprocess, as the multiprocess tests do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# gloo's teardown can abort a rank after its work is done (a C++ thread left joinable at exit),
# intermittently on a loaded 2-core machine, also after the workers' final barrier.
TEARDOWN_ABORT = "terminate called without an active exception"


def run_worker(script: str | Path, *args: str, timeout: int = 300, cwd=None) -> None:
    """`python script *args`, which must exit 0; retried once for gloo's teardown abort only
    (any other failure fails at once, with the end of its stderr)."""
    for _attempt in range(2):
        run = subprocess.run(
            [sys.executable, str(script), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
        )
        if run.returncode == 0 or TEARDOWN_ABORT not in run.stderr:
            break
    assert run.returncode == 0, run.stderr[-3000:]
