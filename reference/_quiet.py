"""Keep TensorFlow's import banners out of the reference scripts' output (not the library's).

TensorFlow 2.21 prints its oneDNN banner through absl's C++ logging before absl is initialised,
so `TF_CPP_MIN_LOG_LEVEL` cannot hide it, and it prints it again for each of its shared
libraries, also when Keras runs on JAX or PyTorch (Keras imports TensorFlow when it is
installed, on any backend, during training if not before). `import_quietly` catches file
descriptor 2 while the framework is imported and writes back every line except those
information/warning lines. An error line, a Python warning or a traceback passes through.
`TF_CPP_MIN_LOG_LEVEL=0` in the environment turns the filter off.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile

__all__ = ["NOISE", "import_quietly"]

#: absl's "before InitializeLog" notice, and absl/TF information (I) and warning (W) lines,
#: e.g. `I0000 00:00:1796189637.533223   10793 port.cc:153] oneDNN custom operations are on`.
NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IW]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ [\w.\-]+:\d+\] )"
)


@contextlib.contextmanager
def import_quietly():
    """Filter `NOISE` lines out of what the process writes to stderr inside the block."""
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            text = caught.read().decode(errors="replace")
            sys.stderr.write("".join(_kept(text)))
            sys.stderr.flush()


def _kept(text: str) -> list[str]:
    return [line for line in text.splitlines(keepends=True) if not NOISE.match(line)]
