"""Everything a run checks before it touches its output folder: flags, dataset, `--out`.

`check(cfg)` is the first stage of `training.run`, and what `train_*.py` runs before it
imports a framework (so that a wrong flag answers in a second): it resolves `--resume` against
the interrupted run's stored settings, checks every value (`check_config`), the output folder
(`rundir.check_out`) and the dataset (`load_data`: found, intact, large enough for a batch),
and returns a `Plan`. Each refusal is a `UsageError` naming the flag or file and what to do.
Nothing on disk is created or changed here.

Framework-free (NumPy and the dataset readers only).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import data as datasets
from . import rundir
from .errors import UsageError
from .names import (
    BACKBONES,
    CONTROLLERS,
    HEADLESS,
    HEADS,
    METHODS,
    PRECISIONS,
    REPRESENTATION_DIMS,
)

__all__ = [
    "Plan",
    "check",
    "check_config",
    "check_head",
    "default_l21",
    "default_out",
    "load_data",
    "resolve",
    "stored_settings",
]

Arrays = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class Plan:
    """A run that passed its checks: its settings (as `config.json` stores them), its output
    folder, whether it continues an interrupted run, and its data (uint8 images, labels)."""

    cfg: dict
    out: Path
    resume: bool
    overwrite: bool
    ssl: Arrays  # the images self-supervised training sees (STL-10: train+unlabeled)
    train: Arrays  # the labelled training split (linear probe, k-NN)
    test: Arrays


def default_out(cfg: dict) -> Path:
    return Path(f"runs/{cfg['method']}-{cfg['dataset']}-seed{cfg['seed']}")


def default_l21(cfg: dict) -> float:
    """The L2,1 factor when `--l21` is not given: the paper's 1e-4 (also `--target-sparsity`'s
    starting value), 0 for a head without weights (identity, DirectCLR) and where Hoyer or the
    budget replaces it."""
    if cfg["head"] in HEADLESS or cfg.get("hoyer") or cfg.get("budget") is not None:
        return 0.0
    return 1e-4


def resolve(cfg: dict) -> dict:
    """`cfg` as a run stores it: `l21` resolved, `penalty` (the L2,1 factor in the loss; the
    prox step replaces it with `--proximal`), and none of the command's own switches."""
    cfg = {k: v for k, v in cfg.items() if k not in ("given", "resume", "overwrite")}
    cfg.setdefault("distribute", "none")
    cfg.setdefault("augment", "host")  # stored, so that --resume refuses another one
    cfg.setdefault("precision", "float32")  # a configuration written before the flag existed
    if cfg.get("l21") is None:
        cfg["l21"] = default_l21(cfg)
    cfg["penalty"] = 0.0 if cfg.get("proximal") else cfg["l21"]
    return cfg


def stored_settings(cfg: dict) -> dict:
    """The configuration a run of `cfg` stores (`config.json`), after `check_config`: what
    `reproduce.py` checks each run of its grid with before the first one trains."""
    cfg = resolve(cfg)
    check_config(cfg)
    return cfg


def check(cfg: dict) -> Plan:
    """The `check` stage: the run `cfg` asks for, checked; nothing touched (module docstring).

    `cfg` holds `presets.DEFAULTS`' keys, `method`, `out`, and optionally `resume`,
    `overwrite` and `given` (the keys the user set; with `resume`, the others come from the
    interrupted run; default: all keys are the user's).
    """
    resume, overwrite = bool(cfg.get("resume")), bool(cfg.get("overwrite"))
    given = cfg.get("given")
    out = Path(cfg.get("out") or default_out(cfg))
    stored = rundir.stored_config(out) if resume else None
    if stored is not None and rundir.status(out) == "interrupted":
        mine = cfg if given is None else {k: cfg[k] for k in given if k in cfg}
        cfg = {**stored, **mine, **{k: cfg[k] for k in rundir.RESUMABLE if k in cfg}}
    cfg = stored_settings({**cfg, "out": str(out)})
    rundir.check_out(out, cfg, resume=resume, overwrite=overwrite, given=given)
    ssl, train, test = load_data(cfg)
    if len(ssl[0]) < cfg["batch_size"]:
        raise UsageError(
            f"--batch-size {cfg['batch_size']} is larger than the {len(ssl[0])} training images "
            f"of --dataset {cfg['dataset']}: lower --batch-size (or raise --train-size)"
        )
    return Plan(cfg, out, resume, overwrite, ssl, train, test)


def _positive_int(cfg: dict, key: str, low: int = 1) -> None:
    value = cfg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise UsageError(f"{_flag(key)} must be an int >= {low}; got {value!r}")


def _number(cfg: dict, key: str, *, positive: bool) -> None:
    value = cfg.get(key)
    ok = isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise UsageError(f"{_flag(key)} must be {'> 0' if positive else '>= 0'}; got {value!r}")


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def check_config(cfg: dict) -> None:
    """Every setting's value and combination (`UsageError` naming the flag)."""
    for key, choices in (("method", METHODS), ("backbone", BACKBONES), ("head", HEADS),
                         ("precision", PRECISIONS)):  # fmt: skip
        if cfg.get(key) not in choices:
            raise UsageError(
                f"{_flag(key)} must be one of {', '.join(choices)}; got {cfg.get(key)!r}"
            )
    try:
        datasets.get_spec(cfg["dataset"])
    except (TypeError, ValueError) as exc:
        raise UsageError(f"--dataset: {exc}") from None
    for key in ("epochs", "batch_size", "head_hidden", "head_dim"):
        _positive_int(cfg, key)
    for key in ("seed",):
        _positive_int(cfg, key, low=0)
    for key in ("train_size", "test_size"):
        if cfg.get(key) is not None:
            _positive_int(cfg, key, low=0)
    for key in ("lr", "temperature"):
        _number(cfg, key, positive=True)
    for key in ("weight_decay", "l21"):
        _number(cfg, key, positive=False)
    check_head(cfg)
    lo, hi = cfg.get("crop_scale") or (0.2, 1.0)
    if not 0 < lo <= hi <= 1:
        raise UsageError(f"--crop-scale must be MIN MAX with 0 < MIN <= MAX <= 1; got {lo} {hi}")
    if cfg["method"] == "byol":
        tau = cfg.get("tau", 0.99)
        if not 0 <= tau < 1:
            raise UsageError(f"--tau must be in [0, 1); got {tau!r}")
        if cfg.get("tau_schedule", "cosine") not in ("cosine", "constant"):
            raise UsageError(
                f"--tau-schedule must be cosine or constant; got {cfg['tau_schedule']!r}"
            )
    if cfg["method"] == "barlow-twins":
        _number(cfg, "lambda_offdiag", positive=False)
    if cfg.get("augment", "host") not in ("host", "device"):
        raise UsageError(f"--augment must be host or device; got {cfg['augment']!r}")
    if cfg.get("distribute", "none") not in ("none", "data-parallel"):
        raise UsageError(f"--distribute must be none or data-parallel; got {cfg['distribute']!r}")
    check_variants(cfg)


def check_head(cfg: dict) -> None:
    """`--head` with its own settings (`--head-dim` as DirectCLR's `d0`, `--head-topk`), and
    SparseHead only on a head with weights (reference/heads.py)."""
    head, k = cfg["head"], cfg.get("head_topk")
    if head in HEADLESS and cfg["l21"] > 0:
        raise UsageError(f"--l21 must be 0 with --head {head} (it has no weights to sparsify)")
    if head in HEADLESS and cfg["proximal"]:
        raise UsageError(f"--proximal needs a head with weights; --head {head} has none")
    if head == "directclr":
        d = REPRESENTATION_DIMS[cfg["backbone"]]
        if cfg["head_dim"] > d:
            raise UsageError(
                f"--head-dim is DirectCLR's d0 and must be <= the representation dimension "
                f"{d} of --backbone {cfg['backbone']}; got {cfg['head_dim']}"
            )
    if head == "topk":
        if k is None:
            raise UsageError("--head topk needs --head-topk K (hidden units kept per sample)")
        _positive_int(cfg, "head_topk")
        if k > cfg["head_hidden"]:
            raise UsageError(
                f"--head-topk must be <= --head-hidden ({cfg['head_hidden']}); got {k}"
            )
    elif k is not None:
        raise UsageError(f"--head-topk needs --head topk; got --head {head}")


def check_variants(cfg: dict) -> None:
    """Values and combinations of `--hoyer`, `--budget`, `--target-sparsity` and their
    companions (reference/variants.py)."""
    hoyer, budget, target = cfg.get("hoyer") or 0.0, cfg.get("budget"), cfg.get("target_sparsity")
    if not hoyer >= 0:
        raise UsageError(f"--hoyer must be >= 0; got {hoyer!r}")
    if budget is not None and not (
        (isinstance(budget, int) and not isinstance(budget, bool) and budget >= 1)
        or (isinstance(budget, float) and 0 < budget <= 1)
    ):
        raise UsageError(
            f"--budget must be an int >= 1 (groups kept) or a fraction in (0, 1]; got {budget!r}"
            + (" (0 would remove the whole head)" if budget == 0 else "")
        )
    if target is not None and not 0 < target < 1:
        raise UsageError(f"--target-sparsity must be a fraction in (0, 1); got {target!r}")
    dual_lr, every = cfg.get("dual_lr", 1.0), cfg.get("adaptive_every")
    if not (isinstance(dual_lr, (int, float)) and math.isfinite(dual_lr) and dual_lr > 0):
        raise UsageError(f"--dual-lr must be > 0; got {dual_lr!r}")
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
        raise UsageError(f"--adaptive-every must be an int >= 0 (0: per epoch); got {every!r}")
    controller = cfg.get("controller", "dual")
    if controller not in CONTROLLERS:
        choices = ", ".join(CONTROLLERS)
        raise UsageError(f"--controller must be one of {choices}; got {controller!r}")
    if target is None and (dual_lr != 1.0 or every is not None or controller != "dual"):
        raise UsageError("--dual-lr, --adaptive-every and --controller need --target-sparsity")
    steps = cfg.get("budget_steps")
    if steps is not None:
        if budget is None:
            raise UsageError("--budget-steps needs --budget")
        if len(steps) != 2 or not 0 <= steps[0] <= steps[1]:
            raise UsageError(
                f"--budget-steps must be BEGIN END with 0 <= BEGIN <= END; got {list(steps)}"
            )
    chosen = [name for name, on in (("--hoyer", hoyer > 0), ("--budget", budget is not None),
                                     ("--target-sparsity", target is not None)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise UsageError(f"choose one of --hoyer, --budget and --target-sparsity; got {chosen}")
    if chosen and cfg["head"] in HEADLESS:
        raise UsageError(f"{chosen[0]} needs a head with weights; --head {cfg['head']} has none")
    if hoyer > 0 and cfg.get("l21"):
        raise UsageError("--hoyer replaces the L2,1 penalty: leave --l21 at 0 (or unset)")
    if (hoyer > 0 or budget is not None) and cfg.get("proximal"):
        raise UsageError(
            "--proximal is the L2,1 prox step; it does not combine with --hoyer/--budget"
        )


def load_data(cfg: dict) -> tuple[Arrays, Arrays, Arrays]:
    """The run's data: (self-supervised, labelled train, test) splits, each `(images, labels)`
    (`--train-size`/`--test-size` random class-balanced subsets). A dataset that is missing,
    corrupt or empty is a `UsageError` naming `--dataset`/`--data-dir`."""
    name, where = cfg["dataset"], cfg.get("data_dir")
    kw = {"data_dir": where, "download": cfg.get("download", False)}
    try:
        train = datasets.load_dataset(name, split="train", **kw)
        test = datasets.load_dataset(name, split="test", **kw)
        ssl_split = cfg.get("ssl_split", "train")
        ssl = None if ssl_split == "train" else datasets.load_dataset(name, split=ssl_split, **kw)
    except (OSError, ValueError) as exc:  # not found, checksum, corrupt, unsafe pickle
        source = f"--dataset {name}" + (f" --data-dir {where}" if where else "")
        raise UsageError(f"{source}: {exc}") from None
    for split, (images, _) in (("train", train), ("test", test)):
        if len(images) == 0:
            raise UsageError(f"--dataset {name}: the {split} split holds no images")
    if cfg.get("train_size"):
        train = datasets.subset(*train, min(cfg["train_size"], len(train[1])), seed=cfg["seed"])
    if cfg.get("test_size"):
        test = datasets.subset(*test, min(cfg["test_size"], len(test[1])), seed=cfg["seed"] + 1)
    return (train if ssl is None else ssl), train, test
