"""`python -m benchmarks --only train`: the SimCLR training step at CIFAR shape.

Synthetic CIFAR-shaped views (no dataset), ResNet-18 with the CIFAR stem
(`reference.backbones.resnet18_cifar`), the paper's MLP head, batch `B` images (2B views).
Each Keras backend runs in its own worker process (`python -m benchmarks.train --worker
BACKEND`), which builds the reference SimCLR model (`reference.training._build`, Adam with
weight decay as `reference.training._fit` compiles it) once per variant and, in the same
process on the same device, the plain PyTorch loop of `benchmarks._torch_simclr`; a last
worker runs the PyTorch loop with each `sparsehead.adapters.torch` piece. In a worker every
variant takes `steps` train steps per round, the order rotating every round
(`_harness.rotated`); each ratio is per round, and a row reports their median.

Rows (all ratios; absolute numbers in the notes are for orientation only):

- reference step vs plain PyTorch, pairs/s, per Keras backend (`>= 0.8`, the GPU target);
- SparseHead overhead per piece and framework: the step with `L21` (penalty), `ProximalL21`
  (prox after the step), `GroupBudget` (L2,0 projection after the step, half the groups) or
  the group Hoyer penalty over the same step without any (`<= 1.05`);
- Keras `AdaptiveL21`: `fit` with the callback over `fit` with a fixed `L21` (`<= 1.05`).

Each piece row's `extra` records what the piece left in its model after timing (its penalty,
the zero groups, the step installed after the optimizer's) beside the same for the model
without it, so a piece that was not attached shows.

Sizes: `tiny` (`--quick`, CI: 16x16 images flattened into the head, no ResNet: a smoke
test of the rows, batch 32), `cpu` (16x16, width 8, batch 32, PyTorch eager: the CPU table
of docs/benchmarks.md, `python -m benchmarks.train --size cpu`) and `full` (32x32, width
64 = ResNet-18, batch 512, `torch.compile`: `python -m benchmarks --only train` on a GPU).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import augment
from ._harness import Row, rotated, timed_row
from ._workers import KERAS_BACKENDS, keras_backends, run_worker

__all__ = ["BACKENDS", "PIECES", "SIZES", "Size", "bench_train", "overhead_rows", "run_group"]

BACKENDS = KERAS_BACKENDS
PIECES = ("L21", "ProximalL21", "GroupBudget", "GroupHoyer")
_ROOT = Path(__file__).resolve().parents[1]
_GROUP = "train"


@dataclass(frozen=True)
class Size:
    side: int  # images side x side x 3
    width: int  # ResNet-18 width (64: the real one); 0: no ResNet, the flattened image
    batch: int  # images per step (2 * batch views)
    hidden: int  # head widths
    dim: int
    steps: int  # train steps per variant and round
    reps: int  # timed rounds
    compile: bool  # torch.compile the PyTorch model

    def describe(self) -> str:
        net = f"resnet18-cifar w{self.width}" if self.width else "flatten (no backbone)"
        return f"{net} {self.side}px, batch {self.batch}"


# `tiny` has no ResNet: compiling the step of ResNet-18 (any width) took about 30 s per
# model on the loaded 2-core machine on JAX, 15 s on TensorFlow, six models per backend.
# `cpu` does not torch.compile: compiling ResNet-18 (width 16) took 6 minutes there.
SIZES = {
    "tiny": Size(16, 0, 32, 128, 16, steps=1, reps=2, compile=False),
    "cpu": Size(16, 8, 32, 128, 16, steps=2, reps=5, compile=False),
    "full": Size(32, 64, 512, 1024, 64, steps=8, reps=11, compile=True),
}


def bench_train(quick: bool) -> list[Row]:
    return run_group("tiny" if quick else "full")


def run_group(size: str) -> list[Row]:
    rows = [r for b in (*keras_backends(), "pytorch")
            for r in run_worker("benchmarks.train", b, ["--size", size], group=_GROUP,
                                name="train", sense="<=", limit=1.05)]  # fmt: skip
    # host vs device augmentation images/s at CIFAR shape (benchmarks/augment.py)
    return rows + augment.bench_augment(quick=size == "tiny")


def overhead_rows(
    names: list[str],
    times: list[list[float]],
    base: int,
    label: Callable[[str], str],
    baseline: str,
    *,
    limit: float = 1.05,
    evidence: dict | None = None,
) -> list[Row]:
    """One row per name other than `names[base]`: the per-round ratio of its time over the
    time of `names[base]` in the same round (`times[r][i]`, as `rotated` gives them)."""
    rows = []
    for i, name in enumerate(names):
        if i == base:
            continue
        a = [t[i] for t in times]
        b = [t[base] for t in times]
        ratios = [x / y for x, y in zip(a, b, strict=True)]
        row = timed_row(_GROUP, label(name), baseline, ratios, a, b, limit=limit)
        if evidence is not None:
            row.extra = {"piece": evidence[name], "without": evidence[names[base]]}
        rows.append(row)
    return rows


# ------------------------------------------------------------------ workers


def _views(size: Size):
    import numpy as np

    rng = np.random.default_rng(0)  # 2B views, as TwoViews hands them to the step
    return rng.random((2 * size.batch, size.side, size.side, 3), dtype=np.float32)


def _torch_input(views):
    import torch

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.from_numpy(views).permute(0, 3, 1, 2).to(device)
    return x.contiguous(memory_format=torch.channels_last)


def _torch_run(lp, x, steps: int) -> Callable[[], None]:
    import torch

    sync = torch.cuda.synchronize if x.device.type == "cuda" else (lambda: None)

    def run():
        for _ in range(steps):
            lp.step(x)
        sync()

    return run


def _torch_loop(piece, size: Size, x):
    from ._torch_simclr import loop

    kw = dict(width=size.width, hidden=size.hidden, dim=size.dim)
    return loop(piece, x=x, compile=size.compile, **kw)


def _pytorch_worker(size: Size) -> list[Row]:
    x = _torch_input(_views(size))
    names = ["none", *PIECES]
    loops = {n: _torch_loop(None if n == "none" else n, size, x) for n in names}
    times = rotated([_torch_run(loops[n], x, size.steps) for n in names], size.reps)
    times = [[t / size.steps for t in r] for r in times]
    evidence = {n: lp.read_evidence() for n, lp in loops.items()}
    how = f"{loops['none'].compiled}, {loops['none'].precision}, {x.device.type}"
    rows = overhead_rows(names, times, 0, lambda n: f"SparseHead {n} step [PyTorch], "
                         f"{size.describe()}", "same loop without it",
                         evidence=evidence)  # fmt: skip
    for row in rows:
        row.note = how
    return rows


def _flatten(shape):
    import keras

    inputs = keras.Input(shape, name="image")
    return keras.Model(inputs, keras.layers.Flatten(name="flatten")(inputs), name="flatten")


@contextlib.contextmanager
def _backbone_width(width: int):
    """`reference.training._build` builds `resnet18-cifar` at `width` (64 needs nothing; 0
    is the flattened image)."""
    from reference import backbones, training

    real = training.build_backbone
    if width == 0:
        training.build_backbone = lambda name, shape, dtype=None: _flatten(shape)
    elif width != 64:
        training.build_backbone = lambda name, shape, dtype=None: backbones.resnet18_cifar(
            shape, width, dtype=dtype
        )
    try:
        yield
    finally:
        training.build_backbone = real


def _reference(size: Size, piece: str | None):
    """The reference SimCLR model with `piece`, compiled as `_fit` does, its callbacks
    started (the prox or the budget installed in the step), and its head kernel."""
    import keras

    from reference.heads import regularized_kernel
    from reference.presets import DEFAULTS, PRESETS
    from reference.training import _build, _jit
    from reference.variants import head_callbacks, install_hoyer

    l21 = 1e-4 if piece in ("L21", "ProximalL21") else 0.0
    cfg = {**DEFAULTS, **PRESETS["paper-cifar10"], "method": "simclr",
           "backbone": "resnet18-cifar", "head_hidden": size.hidden, "head_dim": size.dim,
           "batch_size": size.batch, "epochs": 1, "l21": l21,
           "proximal": piece == "ProximalL21", "penalty": l21 if piece == "L21" else 0.0,
           "budget": 0.5 if piece == "GroupBudget" else None, "budget_steps": [0, 0],
           "hoyer": 1e-3 if piece == "GroupHoyer" else 0.0}  # fmt: skip
    keras.utils.set_random_seed(0)
    with _backbone_width(size.width):
        model, head = _build(cfg, (size.side, size.side, 3))
    kernel = regularized_kernel(head)
    install_hoyer(cfg, kernel)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg["lr"], weight_decay=cfg["weight_decay"] or None),
        jit_compile=_jit(cfg),
    )
    model.optimizer.build(model.trainable_variables)  # the slots the prox threshold reads
    for cb in head_callbacks(cfg, kernel, steps_per_epoch=1):
        cb.set_model(model)
        cb.on_train_begin()  # installs the prox / the budget as the kernel's constraint
    return model, kernel


def _keras_evidence(model, kernel) -> dict:
    import keras
    import numpy as np

    w = keras.ops.convert_to_numpy(kernel)
    penalty = sum(float(keras.ops.convert_to_numpy(v)) for v in model.losses)
    fn = getattr(kernel.constraint, "fn", None)
    owner = getattr(fn, "__self__", None)
    return {
        "penalty": penalty,
        "zero_groups": int((np.linalg.norm(w, axis=1) == 0).sum()),
        "groups": int(w.shape[0]),
        "post_step": None if owner is None else type(owner).__name__,
    }


def _keras_run(model, x, steps: int) -> Callable[[], None]:
    def run():
        for _ in range(steps):
            model.train_on_batch(x)  # returns the logs as NumPy: one device sync per step

    return run


def _adaptive_rows(size: Size, backend: str, views, fixed) -> list[Row]:
    """`fit` with `AdaptiveL21` (every `steps` steps: one update per round) over `fit` with
    `fixed`, the reference model with a fixed `L21` (already stepped). The callback's
    `on_train_begin` (which retraces the step, once per `fit`) runs once before timing;
    every timed `fit` runs its per-batch and per-epoch hooks."""
    import numpy as np
    from sparsehead.adapters.keras import AdaptiveL21

    adaptive, kernel = _reference(size, "L21")
    every = size.steps
    cb = AdaptiveL21(0.25, kernel, l21=1e-4, every=every)
    cb.set_model(adaptive)
    cb.on_train_begin()
    cb.on_train_begin = cb.on_train_end = lambda logs=None: None  # per fit: measured apart
    updates, update = [0], cb._update

    def counted():  # the updates that ran, as evidence that the callback acted
        updates[0] += 1
        update()

    cb._update = counted
    data = np.concatenate([views] * size.steps)

    def fit(model, callbacks):
        return lambda: model.fit(data, batch_size=len(views), epochs=1, shuffle=False,
                                 verbose=0, callbacks=callbacks)  # fmt: skip

    times = rotated([fit(fixed, []), fit(adaptive, [cb])], size.reps)
    times = [[t / size.steps for t in r] for r in times]
    updates = updates[0]
    (row,) = overhead_rows(["fixed", "adaptive"], times, 0,
                           lambda _: f"AdaptiveL21 fit, every {every} steps [Keras {backend}], "
                           f"{size.describe()}", "fit with a fixed L21")  # fmt: skip
    row.extra = {"updates": updates, "measure": cb.measure_value}
    row.note = f"{updates} updates of lambda; the once-per-fit retrace is not in the ratio"
    return [row]


def _keras_worker(backend: str, size: Size) -> list[Row]:
    import keras

    import reference  # noqa: F401  (before Keras: the reference run's environment defaults)

    views = _views(size)
    x = keras.ops.convert_to_tensor(views)  # on the device once, as a loader would leave it
    xt = _torch_input(views)
    plain = _torch_loop(None, size, xt)
    names = ["none", *PIECES]
    built = {n: _reference(size, None if n == "none" else n) for n in names}
    runs = [_torch_run(plain, xt, size.steps)] + [
        _keras_run(built[n][0], x, size.steps) for n in names
    ]
    times = rotated(runs, size.reps)
    times = [[t / size.steps for t in r] for r in times]
    evidence = {n: _keras_evidence(*built[n]) for n in names}
    t_torch = [r[0] for r in times]
    t_ref = [r[1 + names.index("L21")] for r in times]
    pairs = size.batch
    note = (f"Keras {pairs / statistics.median(t_ref):.0f} pairs/s, PyTorch "
            f"{pairs / statistics.median(t_torch):.0f} pairs/s ({plain.compiled}, "
            f"{plain.precision}, {xt.device.type}); Keras float32")  # fmt: skip
    speed = [b / a for a, b in zip(t_ref, t_torch, strict=True)]  # pairs/s Keras over PyTorch
    name = f"SimCLR step pairs/s [Keras {backend}, L21 head], {size.describe()}"
    row = timed_row(_GROUP, name, "plain PyTorch loop (same worker)", speed, t_ref, t_torch,
                    sense=">=", limit=0.8, note=note)  # fmt: skip
    rows = [row]
    keras_times = [r[1:] for r in times]
    rows += overhead_rows(names, keras_times, 0, lambda n: f"SparseHead {n} step [Keras "
                          f"{backend}], {size.describe()}", "same step without it",
                          evidence=evidence)  # fmt: skip
    rows += _adaptive_rows(size, backend, views, built["L21"][0])
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("--size", choices=tuple(SIZES), default="cpu")
    p.add_argument("--worker", choices=(*BACKENDS, "pytorch"), help=argparse.SUPPRESS)
    p.add_argument("--markdown", metavar="PATH", help="also write the table as markdown")
    args = p.parse_args(argv)
    if args.worker:
        size = SIZES[args.size]
        if args.worker == "pytorch":
            rows = _pytorch_worker(size)
        else:
            os.environ.setdefault("KERAS_BACKEND", args.worker)
            rows = _keras_worker(args.worker, size)
        for row in rows:
            print(json.dumps(vars(row)), flush=True)
        return 0
    from .machine import machine_info, machine_markdown
    from .report import markdown_table, text_table

    info = machine_markdown(machine_info())
    print(info, flush=True)
    rows = run_group(args.size)
    print(text_table(rows))
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as f:
            f.write(f"Command: `python -m benchmarks.train --size {args.size}`\n\n{info}\n\n")
            f.write(markdown_table(rows) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
