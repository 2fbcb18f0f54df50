"""Count the reads of tensor values on the host made by sparsehead's own code, on any device.

On a GPU each such read (`float(t)`, `t.item()`, `bool(t)` in an `if`, `t.cpu()`, ...) makes
the host wait for the device. On CPU nothing waits, so the tests count the calls instead:
`host_reads()` patches the `torch.Tensor` methods that read a value out and records each call
whose nearest caller outside torch is a file of sparsehead (the core or the adapters). Calls
from torch itself (plain Adam reads its own step count) or from the test do not count.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import sparsehead.adapters
import torch

import sparsehead

_TORCH = os.path.dirname(torch.__file__) + os.sep
_OURS = tuple(os.path.dirname(m.__file__) + os.sep for m in (sparsehead, sparsehead.adapters))
_READS = ("item", "tolist", "cpu", "numpy", "__float__", "__int__", "__bool__", "__index__")


def _caller() -> tuple[str, int]:
    """File and line of the nearest caller outside torch."""
    frame = sys._getframe(2)
    while frame is not None and frame.f_code.co_filename.startswith(_TORCH):
        frame = frame.f_back
    return ("", 0) if frame is None else (frame.f_code.co_filename, frame.f_lineno)


@contextlib.contextmanager
def host_reads() -> Iterator[list[str]]:
    """Within the block, `reads` lists `"method file:line"` for each read by sparsehead code;
    `.to("cpu")` (the string: on CPU a move to a weight's own device is one too, and no read)
    counts as a read too."""
    reads: list[str] = []
    saved = {name: getattr(torch.Tensor, name) for name in (*_READS, "to")}

    def patched(name):
        original = saved[name]

        def method(self, *args, **kwargs):
            where, line = _caller()
            if where.startswith(_OURS) and (
                name != "to"
                or any(isinstance(a, str) and a == "cpu" for a in (*args, *kwargs.values()))
            ):
                reads.append(f"{name} {os.path.basename(where)}:{line}")
            return original(self, *args, **kwargs)

        return method

    try:
        for name in saved:
            setattr(torch.Tensor, name, patched(name))
        yield reads
    finally:
        for name, original in saved.items():
            setattr(torch.Tensor, name, original)
