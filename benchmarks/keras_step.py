"""Keras: the cost of `sparsehead.L21` and `sparsehead.ProximalL21` in a compiled train step.

Keras fixes its backend per process, so each backend runs in a subprocess
(`python -m benchmarks.keras_step --worker BACKEND`) that prints its rows as JSON. In the
worker, models that differ only in the regularizer are stepped in rotating order (A B C,
B C A, C A B, ...), each timing a few `train_on_batch` calls; the ratios are per round.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from ._harness import Row, timed_row
from ._workers import KERAS_BACKENDS, keras_backends, run_worker

__all__ = ["BACKENDS", "bench_keras_l21", "bench_keras_prox"]

BACKENDS = KERAS_BACKENDS
_SIZES = {False: (512, 2048, 128, 256), True: (64, 128, 16, 32)}  # in, hidden, out, batch


def _run(what: str, quick: bool) -> list[Row]:
    args = ["--what", what, *(["--quick"] if quick else [])]
    return [r for b in keras_backends() for r in run_worker("benchmarks.keras_step", b, args,
            group="keras", name=what, sense="<=", limit=1.0)]  # fmt: skip


def bench_keras_l21(quick: bool) -> list[Row]:
    return _run("l21", quick)


def bench_keras_prox(quick: bool) -> list[Row]:
    return _run("prox", quick)


# ------------------------------------------------------------------ worker (one backend)


def _model(sizes, regularizer=None):
    import keras

    d_in, hidden, d_out, _ = sizes
    keras.utils.set_random_seed(0)
    inp = keras.Input((d_in,))
    h = keras.layers.Dense(hidden)(inp)
    h = keras.layers.BatchNormalization()(h)
    h = keras.layers.ReLU()(h)
    out = keras.layers.Dense(d_out, kernel_regularizer=regularizer)(h)
    model = keras.Model(inp, out)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def _rounds(models, x, y, reps: int, steps: int) -> list[list[float]]:
    """Seconds per step of each model, per round; the order rotates every round."""
    k = len(models)
    for m in models:  # compile and warm up
        for _ in range(3):
            m.train_on_batch(x, y)
    times = [[0.0] * k for _ in range(reps)]
    for r in range(reps):
        for j in range(k):
            i = (r + j) % k
            t0 = time.perf_counter()
            for _ in range(steps):
                models[i].train_on_batch(x, y)
            times[r][i] = (time.perf_counter() - t0) / steps
    return times


def _row(name, baseline, ratios, limit, a, b, note="") -> dict:
    return vars(timed_row("keras", name, baseline, ratios, a, b, limit=limit, note=note))


def _worker(backend: str, what: str, quick: bool) -> list[dict]:
    import keras
    import numpy as np
    from sparsehead.adapters.keras import L21, ProximalL21

    sizes = _SIZES[quick]
    d_in, hidden, d_out, batch = sizes
    reps, steps = (3, 2) if quick else (61, 5)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, d_in)).astype("float32")
    y = rng.standard_normal((batch, d_out)).astype("float32")
    shape = f"{d_in}->{hidden}->{d_out}, batch {batch}"
    if what == "l21":
        models = [
            _model(sizes),
            _model(sizes, L21(1e-4)),
            _model(sizes, keras.regularizers.L2(1e-4)),
        ]
        t = _rounds(models, x, y, reps, steps)
        none, l21, l2 = ([r[i] for r in t] for i in range(3))
        r_l21 = [a / b for a, b in zip(l21, none, strict=True)]
        r_l2 = [a / b for a, b in zip(l2, none, strict=True)]
        vs_l2 = [a / b for a, b in zip(l21, l2, strict=True)]
        return [
            _row(f"Keras L21 train step [{backend}], {shape}", "no regularizer", r_l21, 1.05,
                 l21, none, note=f"L2's ratio: {statistics.median(r_l2):.3f}x"),
            _row(f"Keras L21 vs L2 train step [{backend}]", "keras.regularizers.L2",
                 vs_l2, 1.02, l21, l2),
        ]  # fmt: skip
    plain, prox = _model(sizes), _model(sizes)
    cb = ProximalL21(1e-4, prox.layers[-1])
    cb.set_model(prox)
    prox.optimizer.build(prox.trainable_variables)  # the slots the threshold reads
    cb.on_train_begin()  # installs the prox as the kernel's constraint, recompiles the step
    t = _rounds([plain, prox], x, y, reps, steps)
    a, b = [r[1] for r in t], [r[0] for r in t]
    return [
        _row(f"Keras ProximalL21 train step [{backend}], {shape}", "same step without it",
             [p / q for p, q in zip(a, b, strict=True)], 1.10, a, b)
    ]  # fmt: skip


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--worker", choices=BACKENDS, required=True)
    p.add_argument("--what", choices=("l21", "prox"), required=True)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    os.environ.setdefault("KERAS_BACKEND", args.worker)
    for row in _worker(args.worker, args.what, args.quick):
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
