"""Reference SimCLR training step: Keras (each backend) against a plain PyTorch loop.

The Keras model is the one `reference/train_simclr.py` trains on its default config
(`reference.presets.DEFAULTS`: the small CNN on 28x28x1 Fashion-MNIST-sized images, the MLP
head with `L21`, InfoNCE at temperature 0.5, Adam with weight decay, batch 256 pairs = 512
views), built with `reference.training._build`. The PyTorch loop is the same network written
in plain PyTorch (channels-last), with the same loss, penalty and optimizer. Both are fed
the same pre-augmented batch, so this measures the training step, not data loading.

Each Keras backend runs in its own process, which also runs the PyTorch loop; the two are
stepped alternately (A B, B A, ...), and the ratio of images/s is taken per round.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

from ._harness import Row, timed_row
from ._workers import KERAS_BACKENDS, keras_backends, run_worker, worker_main

__all__ = ["bench_simclr"]

BACKENDS = KERAS_BACKENDS
_ROOT = Path(__file__).resolve().parents[1]


def bench_simclr(quick: bool) -> list[Row]:
    args = ["--quick"] if quick else []
    rows = [r for b in keras_backends() for r in run_worker("benchmarks.simclr", b, args,
            group="simclr", name="SimCLR step", sense=">=", limit=1.0)]  # fmt: skip
    measured = [r for r in rows if r.reps > 0]
    if measured:
        best = max(measured, key=lambda r: r.ratio)
        best.note = (best.note + "; fastest Keras backend").lstrip("; ")
    return rows


# ------------------------------------------------------------------ worker (one backend)


def _keras_step(batch: int, shape):
    import keras

    from reference.presets import DEFAULTS
    from reference.training import _build, _jit

    cfg = dict(DEFAULTS, method="simclr", penalty=1e-4, batch_size=batch)
    keras.utils.set_random_seed(0)
    model, _ = _build(cfg, shape)
    model.compile(
        optimizer=keras.optimizers.Adam(cfg["lr"], weight_decay=cfg["weight_decay"] or None),
        jit_compile=_jit(cfg),
    )
    return model, cfg


def _torch_step(cfg: dict, shape):
    import torch
    from torch import nn

    torch.manual_seed(0)
    c = shape[-1]
    width = 32

    def conv_bn(cin, cout):
        return [nn.Conv2d(cin, cout, 3, 2, padding=1, bias=False), nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True)]  # fmt: skip

    chans = [c, width, 2 * width, 4 * width, 4 * width]
    layers = [m for i in range(4) for m in conv_bn(chans[i], chans[i + 1])]
    backbone = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    last = nn.Linear(cfg["head_hidden"], cfg["head_dim"])
    hidden = cfg["head_hidden"]
    head = nn.Sequential(
        nn.Linear(chans[-1], hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True), last
    )
    net = nn.Sequential(backbone, head).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    tau, lam = cfg["temperature"], cfg["penalty"]

    def info_nce(z):
        u = nn.functional.normalize(z, dim=1)
        s = u @ u.T / tau
        m = s.shape[0]
        s = s.masked_fill(torch.eye(m, dtype=torch.bool), float("-inf"))
        target = (torch.arange(m) + m // 2) % m
        return nn.functional.cross_entropy(s, target)

    def step(x):
        opt.zero_grad(set_to_none=True)
        loss = info_nce(net(x)) + lam * last.weight.square().sum(0).sqrt().sum()
        loss.backward()
        opt.step()
        return loss

    return step


def _worker(backend: str, quick: bool) -> list[dict]:
    import numpy as np
    import torch

    import reference  # noqa: F401  (before Keras: the reference run's environment defaults)

    batch = 32 if quick else 256
    reps, steps = (3, 1) if quick else (9, 4)
    shape = (28, 28, 1)
    rng = np.random.default_rng(0)
    views = rng.random((2 * batch, *shape), dtype=np.float32)  # two views of `batch` images
    model, cfg = _keras_step(batch, shape)
    torch_step = _torch_step(cfg, shape)
    xt = torch.from_numpy(views).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)

    def keras_run():
        for _ in range(steps):
            model.train_on_batch(views)

    def torch_run():
        for _ in range(steps):
            torch_step(xt)

    for _ in range(2):
        keras_run()
        torch_run()
    ka, tb = [], []
    for r in range(reps):
        order = (keras_run, torch_run) if r % 2 == 0 else (torch_run, keras_run)
        for fn in order:
            t0 = time.perf_counter()
            fn()
            (ka if fn is keras_run else tb).append(time.perf_counter() - t0)
    ratios = [b / a for a, b in zip(ka, tb, strict=True)]  # images/s Keras over PyTorch
    ips = 2 * batch * steps
    row = timed_row("simclr", f"SimCLR train step images/s [Keras {backend}], batch {batch} "
                    "pairs, small-cnn 28x28x1", "plain PyTorch loop", ratios,
                    [t / steps for t in ka], [t / steps for t in tb], sense=">=", limit=1.0,
                    note=f"Keras {ips / statistics.median(ka):.0f} img/s, PyTorch "
                    f"{ips / statistics.median(tb):.0f} img/s")  # fmt: skip
    return [vars(row)]


def main(argv=None) -> int:
    return worker_main(_worker, argv)


if __name__ == "__main__":
    sys.exit(main())
