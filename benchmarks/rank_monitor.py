"""What `RankMonitor` costs, as a share of a training epoch of the reference SimCLR default.

`python -m benchmarks.rank_monitor [--epochs 4] [--rows 512]` (one Keras backend per process,
`KERAS_BACKEND`): trains `reference/train_simclr.py`'s default configuration
(`reference.presets.DEFAULTS`: small CNN, MLP head with `L21`, 8192 Fashion-MNIST images,
batch 256) through the reference's own fit stage, with `RankMonitor` on the first `--rows`
test images added, and prints one JSON line: the seconds of each epoch (the reference's
history, which excludes the monitor), the seconds of each monitor call, the share
`monitor / epoch` (median over epochs after the first, whose time includes compilation), and
the machine's load average at the start and the end. Nothing but a temporary folder is written.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--rows", type=int, default=512, help="held-out images measured")
    args = parser.parse_args(argv)

    import keras
    from sparsehead.adapters.keras import RankMonitor

    from reference import cli
    from reference.checks import check
    from reference.training import _build_run, _fit, _prepare_output

    seconds: list[float] = []

    class Timed(RankMonitor):
        def on_epoch_end(self, epoch, logs=None):
            t = time.perf_counter()
            super().on_epoch_end(epoch, logs)
            seconds.append(time.perf_counter() - t)

    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "run")
        plan = check(cli.config_from_args("simclr", ["--epochs", str(args.epochs), "--out", out]))
        run = _build_run(plan, _prepare_output(plan))
        monitor = Timed(run.x_test[: args.rows], "backbone", "head")
        fit = _fit(run, [monitor], verbose=0)
    epochs = [h["seconds"] for h in fit.history]
    later = slice(1, None) if len(epochs) > 1 else slice(None)
    share = statistics.median(m / e for m, e in zip(seconds[later], epochs[later], strict=True))
    result = {
        "backend": keras.backend.backend(),
        "rows": args.rows,
        "epoch_seconds": [round(s, 2) for s in epochs],
        "monitor_seconds": [round(s, 3) for s in seconds],
        "share_of_epoch": round(share, 4),
        "last": {k: round(v, 2) for k, v in monitor.records[-1].items()},
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
