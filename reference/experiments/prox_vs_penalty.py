"""Proximal step vs loss penalty at equal lambda: a small SimCLR on a Fashion-MNIST subset.

The measurement behind the "prox vs penalty" table in docs/keras.md (not a test).

    KERAS_BACKEND=jax python reference/experiments/prox_vs_penalty.py            # ~ minutes
    KERAS_BACKEND=jax python reference/experiments/prox_vs_penalty.py --epochs 3 # smoke

An MLP encoder (784 -> 256 -> 128, the representation) and `ProjectionHead(128, 64)` are
trained with InfoNCE (tau = 0.5) on two augmented views (random shifts of up to 3 px and
25 % pixel dropout), Adam lr 3e-3 (and SGD for the last rows). Evaluation: logistic-regression
linear probe and 5-NN on the frozen 128-d representation (sklearn), plus the head's sparsity.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from pathlib import Path

import keras
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sparsehead.adapters.keras import ProjectionHead, ProximalL21, SparsityMonitor, info_nce

import sparsehead as sh

DATA = Path("/usr/share/datasets/fashion-mnist")


def load(split: str, n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(DATA / f"{prefix}-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(DATA / f"{prefix}-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    idx = rng.choice(len(x), n, replace=False)
    return x[idx].astype(np.float32) / 255.0, y[idx]


def augment(x: np.ndarray, rng) -> np.ndarray:
    out = np.empty_like(x)
    shifts = rng.integers(-3, 4, size=(len(x), 2))
    for i, (dy, dx) in enumerate(shifts):
        out[i] = np.roll(x[i], (dy, dx), axis=(0, 1))
    out *= rng.random(out.shape) > 0.25
    return out.reshape(len(x), -1)


class Views(keras.utils.PyDataset):
    """Batches of two fresh augmented views side by side, `(batch, 2 * 784)`."""

    def __init__(self, x: np.ndarray, batch_size: int, seed: int):
        super().__init__()
        self.x, self.batch_size = x, batch_size
        self.rng = np.random.default_rng(seed)
        self.on_epoch_end()

    def __len__(self) -> int:
        return len(self.x) // self.batch_size

    def on_epoch_end(self) -> None:
        self.views = np.concatenate([augment(self.x, self.rng), augment(self.x, self.rng)], 1)
        self.views = self.views[self.rng.permutation(len(self.x))]

    def __getitem__(self, i: int):
        return (self.views[i * self.batch_size : (i + 1) * self.batch_size],)


class SimCLR(keras.Model):
    def __init__(self, l21: float):
        super().__init__(name="simclr")
        self.encoder = keras.Sequential(
            [keras.layers.Dense(256, activation="relu"), keras.layers.Dense(128)], name="encoder"
        )
        self.head = ProjectionHead(128, 64, l21=l21)

    def call(self, views, training=False):
        v1, v2 = keras.ops.split(views, 2, axis=-1)
        z1 = self.head(self.encoder(v1, training=training), training=training)
        z2 = self.head(self.encoder(v2, training=training), training=training)
        return keras.ops.concatenate([z1, z2], axis=-1)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        z1, z2 = keras.ops.split(y_pred, 2, axis=-1)
        total = info_nce(z1, z2, temperature=0.5)
        for loss in self.losses:  # the head's L2,1 penalty, when l21 > 0
            total = total + loss
        return total


def run(mode: str, lam: float, optimizer: str, lr: float, data, epochs: int, seed: int = 0):
    (x_train, y_train), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = SimCLR(l21=lam if mode == "penalty" else 0.0)
    opt = keras.optimizers.Adam(lr) if optimizer == "adam" else keras.optimizers.SGD(lr, 0.9)
    model.compile(optimizer=opt)
    model.build((None, 2 * 784))
    callbacks = [SparsityMonitor(model.head)]
    if mode.startswith("prox"):
        precondition = "lr" if mode == "prox-lr" else "auto"
        callbacks.insert(0, ProximalL21(lam, model.head, precondition=precondition))
    start = time.perf_counter()
    views = Views(x_train, batch_size=256, seed=seed)
    hist = model.fit(views, epochs=epochs, verbose=0, callbacks=callbacks).history
    seconds = time.perf_counter() - start
    r_train = keras.ops.convert_to_numpy(model.encoder(x_train.reshape(len(x_train), -1)))
    r_test = keras.ops.convert_to_numpy(model.encoder(x_test.reshape(len(x_test), -1)))
    mean, std = r_train.mean(0), r_train.std(0) + 1e-6
    probe = LogisticRegression(max_iter=2000).fit((r_train - mean) / std, y_train)
    knn = KNeighborsClassifier(5).fit(r_train, y_train)
    kernel = keras.ops.convert_to_numpy(model.head.kernel)
    summary = sh.sparsity_summary(kernel)
    return {
        "mode": mode,
        "optimizer": optimizer,
        "lambda": lam,
        "loss": round(float(hist["loss"][-1]), 4),
        "linear_probe": round(float(probe.score((r_test - mean) / std, y_test)), 4),
        "knn5": round(float(knn.score(r_test, y_test)), 4),
        "l21": round(summary["l21"], 3),
        "max_group_norm": round(float(sh.group_norms(kernel).max()), 4),
        "zero_groups": summary["zero_groups"],
        "groups_95_energy": summary["groups_95_energy"],
        "frac_below_1pct": round(summary["frac_below_1pct"], 3),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--train", type=int, default=5000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--lam", type=float, default=1e-2)
    parser.add_argument("--modes", default="none,penalty,prox,prox-lr", help="comma-separated")
    parser.add_argument("--optimizers", default="adam,sgd", help="comma-separated")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = (load("train", args.train, rng), load("test", args.test, rng))
    configs = [
        ("none", 0.0, "adam", 3e-3),
        ("penalty", args.lam, "adam", 3e-3),
        ("prox", args.lam, "adam", 3e-3),
        ("prox-lr", args.lam, "adam", 3e-3),
        ("penalty", args.lam, "sgd", 0.05),
        ("prox", args.lam, "sgd", 0.05),
    ]
    modes, optimizers = args.modes.split(","), args.optimizers.split(",")
    configs = [c for c in configs if c[0] in modes and c[2] in optimizers]
    rows = []
    for mode, lam, optimizer, lr in configs:
        rows.append(run(mode, lam, optimizer, lr, data, args.epochs))
        print(json.dumps(rows[-1]), flush=True)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
