"""The command line shared by `train_simclr.py`, `train_byol.py` and `train_barlow_twins.py`.

Precedence: explicit flags > `--preset` > the method's CPU-sized defaults
(`presets.METHOD_DEFAULTS`) > the shared ones (`presets.DEFAULTS`, which also hold the
settings only one method reads: `temperature`, `tau`, `lambda_offdiag`).

Building the parser imports no deep-learning framework (`--help` answers at once): the choices
come from `names.py` and `data.py`, and `main` imports the training code only after parsing
and after the run's checks (`checks.check`: flags, dataset, `--out`), so that a mistake
answers in about a second with one `error: ...` line and exit status 2 (`errors.main_guard`).
"""

from __future__ import annotations

import argparse
import importlib.util

from .data import list_datasets
from .errors import main_guard
from .names import BACKBONES, CONTROLLERS, HEADS, PRECISIONS
from .presets import DEFAULTS, METHOD_DEFAULTS, PRESETS

__all__ = [
    "METHOD_DEFAULTS",
    "Parser",
    "config_from_args",
    "import_training",
    "main",
    "make_parser",
    "parse_keep",
]


def parse_keep(text: str) -> int | float:
    """`--budget`: an int number of groups, or a fraction of them when it has a point."""
    try:
        return float(text) if any(c in text for c in ".eE") else int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an int or a fraction: {text!r}") from None


class Parser(argparse.ArgumentParser):
    """argparse with its errors in the scripts' style: one `error: ...` line, exit 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def _default(key: str) -> str:
    value = DEFAULTS[key]
    return f" (default: {'all' if value is None else value})"


def make_parser(method: str) -> argparse.ArgumentParser:
    if method not in METHOD_DEFAULTS:
        raise ValueError(f"method must be one of {sorted(METHOD_DEFAULTS)}; got {method!r}")
    p = Parser(
        prog=f"train_{method.replace('-', '_')}.py",
        description=f"{method} (+ SparseHead) with Keras 3 on any backend (KERAS_BACKEND). "
        f"With no flags: {DEFAULTS['epochs']} epochs on {DEFAULTS['train_size']} images of "
        f"{DEFAULTS['dataset']} (shipped with the repository), a few minutes on a CPU.",
    )
    p.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="the paper's settings (Sec. 7.1); explicit flags override it",
    )
    p.add_argument(
        "--l21",
        type=float,
        help="lambda of the L2,1 head penalty; 0 = SparseHead off (default: 1e-4, the "
        "paper's; 0 for --head identity and directclr)",
    )
    p.add_argument(
        "--proximal",
        action="store_true",
        help="exact sparsity: a prox step on the head kernel after every update "
        "instead of the penalty in the loss",
    )
    p.add_argument(
        "--hoyer",
        type=float,
        help="group Hoyer regularizer hoyer * HS(W) on the head's last kernel instead of L2,1 "
        "(scale-invariant; docs/beyond.md)" + _default("hoyer"),
    )
    p.add_argument(
        "--budget",
        type=parse_keep,
        metavar="KEEP",
        help="keep at most KEEP groups of the head's last kernel (an int, or a fraction in "
        "(0, 1]), reached by the cubic schedule of gradual pruning (no L2,1 by default)",
    )
    p.add_argument(
        "--budget-steps",
        type=int,
        nargs=2,
        metavar=("BEGIN", "END"),
        help="optimizer steps where the budget schedule starts and ends "
        "(default: 0 and two thirds of the training steps)",
    )
    p.add_argument(
        "--target-sparsity",
        type=float,
        metavar="F",
        help="adapt the L2,1 strength (from --l21) by dual ascent until a fraction F of the "
        "head's groups holds 95%% of the energy; use with --proximal",
    )
    p.add_argument(
        "--dual-lr",
        type=float,
        help="--target-sparsity's step on log(l21)" + _default("dual_lr"),
    )
    p.add_argument(
        "--controller",
        choices=CONTROLLERS,
        help="--target-sparsity's rule: the dual step on the measure, or the damped PI "
        "controller on its average (gains: sparsehead.controller.PI_DEFAULTS)"
        + _default("controller"),
    )
    p.add_argument(
        "--adaptive-every",
        type=int,
        metavar="N",
        help="--target-sparsity updates l21 every N training steps; 0: at each epoch's end "
        "(default: 4 times per epoch)",
    )
    p.add_argument(
        "--head",
        choices=HEADS,
        help="projection head: the paper's MLP, a linear one, none (identity), DirectCLR (the "
        "loss on the first --head-dim features of the representation) or the MLP with a top-k "
        "sparse hidden layer (--head-topk)" + _default("head"),
    )
    p.add_argument("--head-hidden", type=int, help="hidden width of the MLP head" + _default(
        "head_hidden"))  # fmt: skip
    p.add_argument("--head-dim", type=int, help="embedding dimension m (DirectCLR's d0)"
                   + _default("head_dim"))  # fmt: skip
    p.add_argument(
        "--head-topk",
        type=int,
        metavar="K",
        help="--head topk: the hidden units each sample keeps (its K largest activations)",
    )
    p.add_argument("--epochs", type=int, help="training epochs" + _default("epochs"))
    p.add_argument("--batch-size", type=int, help="images per batch (two views each)" + _default(
        "batch_size"))  # fmt: skip
    p.add_argument("--lr", type=float, help="Adam learning rate" + _default("lr"))
    p.add_argument("--weight-decay", type=float, help="Adam weight decay" + _default(
        "weight_decay"))  # fmt: skip
    if method == "simclr":
        p.add_argument("--temperature", type=float, help="InfoNCE temperature tau (Eq. 2)"
                       + _default("temperature"))  # fmt: skip
    if method == "byol":
        p.add_argument(
            "--tau",
            type=float,
            help="target network moving average, t <- tau t + (1 - tau) o, at the start"
            + _default("tau"),
        )
        p.add_argument(
            "--tau-schedule",
            choices=("cosine", "constant"),
            help="tau annealed to 1 with a cosine over the run (Grill et al., 2020), or fixed"
            + _default("tau_schedule"),
        )
    if method == "barlow-twins":
        p.add_argument(
            "--lambda-offdiag",
            type=float,
            help="weight of the off-diagonal terms C_ij^2 of the loss" + _default("lambda_offdiag"),
        )
    p.add_argument(
        "--crop-scale",
        type=float,
        nargs=2,
        metavar=("MIN", "MAX"),
        help="area range of the random resized crop (the paper's: 0.2 1)" + _default("crop_scale"),
    )
    p.add_argument("--backbone", choices=BACKBONES, help="feature extractor" + _default(
        "backbone"))  # fmt: skip
    p.add_argument(
        "--dataset",
        choices=list_datasets(),
        metavar="DATASET",
        help=f"one of {', '.join(list_datasets())}" + _default("dataset") + "; "
        "fashion-mnist-10k is shipped with the repository, fashion-mnist is the full set "
        "(Debian package dataset-fashion-mnist, --data-dir, or --download)",
    )
    p.add_argument("--data-dir", help="where the dataset files are (default: the usual places)")
    p.add_argument(
        "--download",
        action="store_true",
        help="download the dataset if missing (Fashion-MNIST through Keras)",
    )
    p.add_argument("--train-size", type=int, help="training images (a random subset); 0 = all"
                   + _default("train_size"))  # fmt: skip
    p.add_argument("--test-size", type=int, help="test images (a random subset); 0 = all"
                   + _default("test_size"))  # fmt: skip
    p.add_argument("--seed", type=int, help="random seed" + _default("seed"))
    p.add_argument(
        "--out",
        help="output folder (default: runs/<method>-<dataset>-seed<seed>); it appears when "
        "the run has finished (until then the run works in OUT.partial)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of --out (kept in OUT.partial) from its last "
        "completed epoch, with its settings (only --epochs may be raised)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the finished run in --out (kept until the new one has finished), or "
        "discard an interrupted one and start over",
    )
    p.add_argument(
        "--distribute",
        choices=("none", "data-parallel"),
        help="data-parallel: keras.distribution.DataParallel over all devices (JAX) "
        "(default: none)",
    )
    p.add_argument(
        "--jit-compile",
        choices=("auto", "on", "off"),
        help="XLA compilation of the train step (default: off on tensorflow, "
        "where it was measured slower on CPU; auto elsewhere)",
    )
    p.add_argument(
        "--augment",
        choices=("host", "device"),
        help="where the two views are made: host (NumPy, in the data loader) or device (the "
        "random parameters drawn on the host with the same random streams, the pixels made "
        "inside the compiled train step; equal to host up to float32 rounding) (default: host)",
    )
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="mixed: the backbone computes in bfloat16 with float32 weights; the head, the "
        "loss, the L2,1 penalty, the optimizer and the evaluation stay float32 (for GPUs and "
        "TPUs; slower on most CPUs)" + _default("precision"),
    )
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no per-epoch output (default: a progress bar on a terminal, one line per "
        "epoch otherwise)",
    )
    return p


def config_from_args(method: str, argv=None) -> dict:
    """Parse `argv` into a run configuration dict (see `training.run`). `given` lists the
    keys the command sets (flags, `--preset`): with `--resume` the others come from the
    interrupted run."""
    args = make_parser(method).parse_args(argv)
    cfg = {**DEFAULTS, **METHOD_DEFAULTS.get(method, {})}
    given = {"method"}
    if args.preset:
        cfg.update(PRESETS[args.preset])
        given.update(PRESETS[args.preset], ["preset"])
    for key, value in vars(args).items():
        if key in ("preset",) or value is None:
            continue
        if key in ("proximal", "download", "resume", "overwrite") and value is False:
            continue
        cfg[key] = value
        given.add(key)
    for key in ("train_size", "test_size"):
        if cfg.get(key) == 0:
            cfg[key] = None
    cfg.setdefault("distribute", "none")
    cfg["method"] = method
    cfg["preset"] = args.preset
    cfg["given"] = sorted(given)
    return cfg


def import_training():
    """`training.run`, imported with TensorFlow's start-up banners filtered (see _quiet.py)."""
    from ._quiet import import_quietly

    with import_quietly():
        if importlib.util.find_spec("tensorflow") is not None:
            import tensorflow  # noqa: F401  (Keras loads it on every backend; now, not later)
        from .training import run
    return run


def main(method: str, argv=None) -> dict:
    """What `train_<method>.py` runs: parse, check (flags, dataset, `--out`), then import the
    framework and train. A user's mistake ends the process with one `error: ...` line (exit
    status 2), Ctrl-C with one line (exit status 130), never a traceback (`main_guard`)."""

    def checked_run() -> dict:
        from .checks import check

        plan = check(config_from_args(method, argv))
        return import_training()(plan)

    return main_guard(checked_run)
