"""One error style for the reference scripts: a user's mistake is one line and exit 2.

- `UsageError` (a `ValueError`): a mistake of the user's, in a flag, a data file or the
  output folder. Its message names the flag or the file and says what to do.
- `main_guard(fn)` runs a script's `main` (`fn()`, no arguments) and returns its value. A
  `UsageError` prints exactly one line `error: <message>` to stderr and exits with status 2
  (argparse's own errors exit 2 as well); Ctrl-C (`KeyboardInterrupt`, also when TensorFlow
  raises it from inside `fit`) prints `interrupted; rerun the same command to continue` and
  exits with status 130 (128 + SIGINT, what a shell reports). No traceback in either case.
  Any other exception is a bug and propagates with its traceback.

Framework-free: the scripts use it before any deep-learning framework is imported.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["INTERRUPTED", "UsageError", "main_guard"]

T = TypeVar("T")

#: The line a script prints when Ctrl-C stops it.
INTERRUPTED = "interrupted; rerun the same command to continue"


class UsageError(ValueError):
    """A user's mistake (a flag, a data file, the output folder); the message names it and
    says what to do. Scripts print it as one `error: ...` line and exit 2."""


def main_guard(fn: Callable[[], T]) -> T:
    """`fn()`, with a user's mistake as one `error:` line (exit 2) and Ctrl-C as one line
    (exit 130), never a traceback. Other exceptions (bugs) propagate."""
    try:
        return fn()
    except UsageError as exc:
        message = " ".join(str(exc).split())  # exactly one line
        print(f"error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print(INTERRUPTED, file=sys.stderr, flush=True)
        raise SystemExit(130) from None
