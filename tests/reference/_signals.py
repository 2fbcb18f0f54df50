"""Subprocesses that receive Ctrl-C as a terminal's user would send it."""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """`preexec_fn` for a child that must see SIGINT as at a terminal: a job started in the
    background (`cmd &`, nohup, some CI runners) inherits SIGINT *ignored*, and Python then
    installs no KeyboardInterrupt handler, so a fault-injected SIGINT would do nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
