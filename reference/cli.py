"""The command line shared by `train_simclr.py`, `train_byol.py` and `train_barlow_twins.py`.

Precedence: explicit flags > `--preset` > the method's CPU-sized defaults
(`presets.METHOD_DEFAULTS`) > the shared ones (`presets.DEFAULTS`).
"""

from __future__ import annotations

import argparse

from .backbones import BACKBONES
from .heads import HEADS
from .presets import DEFAULTS, METHOD_DEFAULTS, PRESETS

__all__ = ["config_from_args", "make_parser"]


def make_parser(method: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"train_{method.replace('-', '_')}.py",
        description=f"{method} (+ SparseHead) with Keras 3 on any backend (KERAS_BACKEND).",
    )
    d = DEFAULTS
    p.add_argument("--preset", choices=sorted(PRESETS), help="the paper's settings (Sec. 7.1)")
    p.add_argument(
        "--l21",
        type=float,
        help="lambda of the L2,1 head penalty; 0 = SparseHead "
        "off (default 1e-4, the paper's; 0 for --head identity)",
    )
    p.add_argument(
        "--proximal",
        action="store_true",
        help="exact sparsity: a prox step on the head kernel after every update "
        "instead of the penalty in the loss",
    )
    p.add_argument("--head", choices=HEADS, help=f"projection head (default {d['head']})")
    p.add_argument("--head-hidden", type=int, help="hidden width of the MLP head")
    p.add_argument("--head-dim", type=int, help="embedding dimension m")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--temperature", type=float, help="InfoNCE temperature (SimCLR)")
    p.add_argument("--tau", type=float, help="BYOL: (starting) EMA decay of the target network")
    p.add_argument(
        "--tau-schedule",
        choices=("cosine", "constant"),
        help="BYOL: tau annealed to 1 with a cosine over the run (Grill et al., 2020), or fixed",
    )
    p.add_argument(
        "--crop-scale",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="area range of the random resized crop (the paper's: 0.2 1)",
    )
    p.add_argument("--backbone", choices=BACKBONES)
    p.add_argument("--dataset", help=f"dataset name (default {d['dataset']})")
    p.add_argument("--data-dir", help="where the dataset files are")
    p.add_argument("--download", action="store_true", help="download the dataset if missing")
    p.add_argument("--train-size", type=int, help="training images (subset); 0 = all")
    p.add_argument("--test-size", type=int, help="test images (subset); 0 = all")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", help="output folder (default runs/<method>-<dataset>-seed<seed>)")
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last completed epoch",
    )
    p.add_argument(
        "--distribute",
        choices=("none", "data-parallel"),
        default="none",
        help="data-parallel: keras.distribution.DataParallel over all devices (JAX)",
    )
    p.add_argument(
        "--jit-compile",
        choices=("auto", "on", "off"),
        help="XLA compilation of the train step (default: off on tensorflow, "
        "where it was measured slower on CPU; auto elsewhere)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def config_from_args(method: str, argv=None) -> dict:
    """Parse `argv` into a run configuration dict (see `training.run`)."""
    args = make_parser(method).parse_args(argv)
    cfg = {**DEFAULTS, **METHOD_DEFAULTS.get(method, {})}
    if args.preset:
        cfg.update(PRESETS[args.preset])
    for key, value in vars(args).items():
        if key in ("preset",) or value is None:
            continue
        if key in ("proximal", "download") and value is False:
            continue
        cfg[key] = value
    for key in ("train_size", "test_size"):
        if cfg.get(key) == 0:
            cfg[key] = None
    cfg["method"] = method
    cfg["preset"] = args.preset
    cfg["epochs_given"] = args.epochs is not None  # --resume keeps the saved epochs otherwise
    return cfg
