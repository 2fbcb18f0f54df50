"""One reference run, top to bottom as in Sec. 7.1 of the paper:

1. Data: the training split (a Fashion-MNIST subset by default; `--preset paper-*` for
   CIFAR-10/100, STL-10, Tiny ImageNet), two views per image: random resized crop (scale
   0.2-1), colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.1, flip.
2. Network: backbone f (`--backbone`, ResNet-18 in the paper) and projection head h
   (`--head`: the paper's MLP Linear-BN-ReLU-Linear, or an alternative from heads.py),
   `L21(--l21)` on h's last kernel (`--l21 0`: the plain method; `--proximal`: exact zeros
   by a prox step).
3. Objective and optimiser: the method's loss + lambda ||W||_{2,1} (Eq. 12); Adam, weight
   decay 1e-6, `--lr`, `--epochs`, `--batch-size`.
4. Evaluation: linear probe (Eq. 3) and 5-NN on the frozen representation and embedding, for
   the trained network and the same network at random initialisation; eigenvalue spectra
   (Fig. 1, 3), effective rank, RankMe, head group sparsity, min-max distance ratio (Eq. 9).

`run(config)` is what `train_simclr.py`, `train_byol.py` and `train_barlow_twins.py` call;
`reproduce.py` calls it once per (setting, seed).
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
from sparsehead.adapters.keras import SparsityMonitor

from . import rundir
from .augment import Augment, AugmentParams, to_float
from .backbones import DTYPE_POLICIES, build_backbone
from .checks import Plan, check
from .errors import UsageError
from .evaluate import diagnostics, encode, knn_accuracy, probe
from .heads import build_head, regularized_kernel
from .methods import BYOL, BarlowTwins, SimCLR, mlp_predictor
from .report import plot_group_norms, plot_spectra, summary, versions, write_json
from .variants import head_callbacks, install_hoyer

__all__ = ["TwoViews", "raw_pixel_knn", "run", "spectra_title"]

# Environment variables that change speed or numerics, recorded with each run's results.
_SETTINGS = ("KERAS_BACKEND", "TF_ENABLE_ONEDNN_OPTS", "SPARSEHEAD_NUM_THREADS", "XLA_FLAGS")
_ACC = ("linear_representation", "knn5_representation", "linear_embedding", "knn5_embedding")


class TwoViews(keras.utils.PyDataset):
    """Batches `[x^1; x^2]` of two augmented views of the same `batch_size` images.

    Reshuffled every epoch; the views of batch `i` in epoch `e` depend only on
    `(seed, e, i)`, so a resumed run sees the same data as an uninterrupted one.
    The last incomplete batch is dropped (InfoNCE wants full batches).

    `device=True` (`--augment device`): `images` are uint8, and a batch is the dict
    `{"images": uint8 (N, H, W, C), **params}` of the source images and the two views' random
    parameters (`AugmentParams`, stacked `(2N, ...)`), drawn from the same generator calls;
    the model makes `[x^1; x^2]` from it inside the train step (`augment_ops.two_views_ops`).
    """

    def __init__(self, images, batch_size: int, augment: Augment, seed: int, epoch: int = 0,
                 device: bool = False):  # fmt: skip
        super().__init__()
        if len(images) < batch_size:
            raise ValueError(
                f"batch_size ({batch_size}) must not exceed the number of training images "
                f"({len(images)})"
            )
        self.images = images
        self.batch_size = batch_size
        self.augment = augment
        self.seed = seed
        self.epoch = epoch
        self.device = device
        self._order = None

    def __len__(self):
        return len(self.images) // self.batch_size

    def on_epoch_end(self):
        self.epoch += 1
        self._order = None

    def __getitem__(self, i):
        if self._order is None:
            self._order = np.random.default_rng([self.seed, self.epoch]).permutation(
                len(self.images)
            )
        rng = np.random.default_rng([self.seed, self.epoch, i])
        x = self.images[self._order[i * self.batch_size : (i + 1) * self.batch_size]]
        if self.device:
            views = [self.augment.draw(*x.shape, rng) for _ in range(2)]
            return {"images": x, **AugmentParams.concatenate(views).as_dict()}
        return np.concatenate([self.augment(x, rng), self.augment(x, rng)])


class _History(keras.callbacks.Callback):
    """Appends each completed epoch's logs (loss, head sparsity from `SparsityMonitor`,
    seconds) to `history.json`, so that an interrupted run keeps its history; with `echo`,
    also prints one plain line per epoch (what a log file gets instead of the progress bar)."""

    def __init__(self, path: Path, history: list, echo: bool = False, epochs: int = 0):
        super().__init__()
        self.path, self.history = path, history
        self.echo, self.epochs = echo, epochs
        self._t0 = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._t0}
        entry.update({k: float(v) for k, v in (logs or {}).items()})
        self.history.append(entry)
        write_json(self.path, self.history)
        if self.echo:
            print(_epoch_line(entry, self.epochs), flush=True)


def _epoch_line(entry: dict, epochs: int) -> str:
    """`epoch 3/10: loss 4.8123, head_l21 0.91, ... (12.3 s)`: plain text, no `\\r`."""
    logs = ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k not in ("epoch", "seconds"))
    return f"epoch {entry['epoch']}/{epochs}: {logs} ({entry['seconds']:.1f} s)"


def _build(cfg: dict, input_shape) -> tuple[keras.Model, keras.layers.Layer]:
    """The self-supervised model for `cfg['method']`, built, and its head."""

    def pair():
        precision = DTYPE_POLICIES[cfg.get("precision", "float32")]
        backbone = build_backbone(cfg["backbone"], input_shape, dtype=precision)
        head = build_head(cfg["head"], cfg["head_hidden"], cfg["head_dim"], cfg["penalty"],
                          k=cfg.get("head_topk"))  # fmt: skip
        return backbone, head

    backbone, head = pair()
    method = cfg["method"]
    if method == "simclr":
        model = SimCLR(backbone, head, temperature=cfg["temperature"], name="simclr")
    elif method == "barlow-twins":
        model = BarlowTwins(
            backbone, head, lambda_offdiag=cfg.get("lambda_offdiag", 5e-3), name="barlow_twins"
        )
    elif method == "byol":
        target_backbone, target_head = pair()
        target_backbone.name = "target_" + target_backbone.name
        # the predictor maps the embedding back to its own dimension (d for no projector)
        dim = cfg["head_dim"] if cfg["head"] != "identity" else backbone.output_shape[-1]
        model = BYOL(
            backbone,
            head,
            mlp_predictor(cfg["head_hidden"], dim),
            target_backbone,
            target_head,
            tau=cfg.get("tau", 0.99),
            total_steps=cfg.get("total_steps") if cfg.get("tau_schedule") == "cosine" else None,
            name="byol",
        )
    else:
        raise ValueError(f"method must be simclr, byol or barlow-twins; got {method!r}")
    if method == "byol":
        model.build((None, *input_shape))
    else:
        model(np.zeros((2, *input_shape), dtype="float32"))
    return model, head


def _augment(cfg: dict) -> Augment:
    return Augment(crop_scale=tuple(cfg.get("crop_scale") or Augment.crop_scale))


def _jit(cfg: dict):
    choice = cfg.get("jit_compile") or "auto"
    if choice == "auto":
        # Measured on a 2-core CPU: XLA made the TensorFlow step slower; JAX always jits.
        return False if keras.backend.backend() == "tensorflow" else "auto"
    return choice == "on"


def _devices() -> list[str]:
    """The devices Keras sees (the torch backend has no `keras.distribution`)."""
    try:
        return [str(d) for d in keras.distribution.list_devices()]
    except (AttributeError, NotImplementedError):
        import torch

        return ["cuda:0" if torch.cuda.is_available() else "cpu"]


def _check_backend(cfg: dict) -> None:
    """The part of the `check` stage that needs the framework: `--distribute`'s devices."""
    if cfg.get("distribute", "none") == "none":
        return
    if keras.backend.backend() != "jax":
        raise UsageError("--distribute data-parallel needs KERAS_BACKEND=jax")
    devices = keras.distribution.list_devices()
    if cfg["batch_size"] % len(devices):
        raise UsageError(
            f"--batch-size {cfg['batch_size']} must be divisible by the {len(devices)} devices "
            "of --distribute data-parallel"
        )


def _distribute(cfg: dict) -> None:
    if cfg.get("distribute", "none") != "none":
        devices = keras.distribution.list_devices()
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))


def run(cfg: dict | Plan, callbacks=(), verbose: int = 1) -> dict:
    """Train `cfg['method']` as configured, evaluate, write `cfg['out']`; return the results.

    `cfg` holds the keys of `presets.DEFAULTS` plus `method`, `out` and optionally `resume`,
    `overwrite`, `given`, `distribute`, `quiet` (see `checks.check`), or is the `Plan` that
    `checks.check` returned. `callbacks` are extra Keras callbacks (the tests use one to stop
    a run midway). The stages below run in order: `--out` is touched only from stage 2 on
    (in `OUT.partial/`), and the run appears at `--out` only in stage 7, whole (rundir.py).
    """
    t_start = time.perf_counter()
    plan = cfg if isinstance(cfg, Plan) else check(cfg)  # 1. check: flags, data, --out
    _check_backend(plan.cfg)
    work = _prepare_output(plan)  # 2. OUT.partial/: new (config.json first) or resumed
    s = _build_run(plan, work)  # 3. build: seed, model, head kernel
    t_eval = time.perf_counter()
    # The same network at random initialisation, and 5-NN on the raw pixels: the floors that
    # training must beat.
    random_init, random_init_spectra = _evaluate(s)
    raw_pixels = {"knn5": raw_pixel_knn(s.x_train, s.y_train, s.x_test, s.y_test)}
    eval_seconds = time.perf_counter() - t_eval
    fit = _fit(s, callbacks, verbose)  # 4. fit, from the last epoch backup if resumed
    t_eval = time.perf_counter()
    trained, spectra = _evaluate(s)  # 5. evaluate the trained network
    eval_seconds += time.perf_counter() - t_eval
    metrics = {"trained": trained, "random_init": random_init, "raw_pixels": raw_pixels}
    timing = {"eval_seconds": eval_seconds, "t_start": t_start}
    curves = {"trained": spectra, "random init": random_init_spectra}
    results = _report(s, fit, metrics, curves, timing)  # 6. report: results.json last
    rundir.commit(plan.out)  # 7. commit: OUT.partial/ becomes OUT/ in one rename
    if verbose:
        print(summary(results), file=sys.stdout, flush=True)
    return results


def _prepare_output(plan: Plan) -> Path:
    """Stage 2: the work folder `OUT.partial/` with the run's `config.json` (a resumed run
    keeps its backup and history; `--overwrite` discards an interrupted one's)."""
    work = rundir.partial_dir(plan.out)
    if not plan.resume:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
    write_json(work / "config.json", plan.cfg)
    return work


@dataclass
class _Run:
    """What the stages after `build` share: settings, work folder, data as floats, model."""

    cfg: dict
    work: Path
    x_ssl: np.ndarray
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    model: keras.Model
    head: keras.layers.Layer
    kernel: object  # the head's last kernel (keras.Variable), None for a head without weights


def _build_run(plan: Plan, work: Path) -> _Run:
    """Stage 3: seed, the data as floats, backbone f and head h (L21 on its last layer) with
    the method's objective."""
    cfg = dict(plan.cfg)
    keras.utils.set_random_seed(cfg["seed"])
    _distribute(cfg)
    # Data (Sec. 7.1): the training split for self-supervised training and the linear probe,
    # the test split for accuracy and diagnostics.
    (x_ssl, _), (x_train, y_train), (x_test, y_test) = plan.ssl, plan.train, plan.test
    same = x_ssl is x_train
    x_train, x_test = to_float(x_train), to_float(x_test)
    if cfg.get("augment", "host") == "device":  # uint8 to the device, augmented there
        x_ssl = plan.ssl[0]
    else:
        x_ssl = x_train if same else to_float(x_ssl)
    cfg["train_size"], cfg["test_size"] = len(x_train), len(x_test)
    cfg["total_steps"] = (len(x_ssl) // cfg["batch_size"]) * cfg["epochs"]
    model, head = _build(cfg, x_train.shape[1:])
    kernel = regularized_kernel(head)
    install_hoyer(cfg, kernel)
    return _Run(cfg, work, x_ssl, x_train, y_train, x_test, y_test, model, head, kernel)


def _evaluate(s: _Run) -> tuple[dict, dict]:
    """Stage 5 (and the random-init floor): frozen features -> linear probe and 5-NN;
    spectra, ranks, sparsity, min-max ratio."""
    features_train = encode(s.model.backbone, s.head, s.x_train)
    features_test = encode(s.model.backbone, s.head, s.x_test)
    metrics = probe(features_train, features_test, s.y_train, s.y_test)
    extra, spectra = diagnostics(*features_test, s.kernel, seed=s.cfg["seed"])
    return {**metrics, **extra}, spectra


@dataclass
class _Fit:
    history: list
    initial_epoch: int
    steps_per_epoch: int
    seconds: float


def _fit(s: _Run, callbacks, verbose: int) -> _Fit:
    """Stage 4: Adam (weight decay), `model.fit` from the last completed epoch's backup (0 for
    a new run); each epoch's backup and `history.json` go to the work folder; the final
    weights after it."""
    cfg, ckpt = s.cfg, s.work / "checkpoints"
    s.model.compile(
        optimizer=keras.optimizers.Adam(cfg["lr"], weight_decay=cfg["weight_decay"] or None),
        jit_compile=_jit(cfg),
    )
    meta = ckpt / "backup" / "training_metadata.json"
    initial_epoch = json.loads(meta.read_text())["epoch"] if meta.exists() else 0
    history_path = s.work / "history.json"
    history = json.loads(history_path.read_text()) if history_path.exists() else []
    history = [h for h in history if h["epoch"] <= initial_epoch]

    views = TwoViews(s.x_ssl, cfg["batch_size"], _augment(cfg), cfg["seed"], epoch=initial_epoch,
                     device=cfg.get("augment", "host") == "device")  # fmt: skip
    cbs = [keras.callbacks.BackupAndRestore(str(ckpt / "backup"), delete_checkpoint=False)]
    cbs += head_callbacks(cfg, s.kernel, len(views))
    if s.kernel is not None:
        cbs.append(SparsityMonitor(s.kernel))
    # A progress bar on a terminal; a plain line per epoch in a pipe or a log file (the bar's
    # `\r` and colour codes would fill it).
    talk = bool(verbose) and not cfg.get("quiet")
    bar = talk and sys.stdout.isatty()
    cbs += [_History(history_path, history, echo=talk and not bar, epochs=cfg["epochs"])]
    cbs += [*callbacks, _FaultPoints()] if os.environ.get(rundir.FAULT_ENV) else list(callbacks)
    # First: it loads the stateful callbacks before they start, and saves them before the
    # backup does.
    cbs.insert(0, _CallbackStates(s.work / "callback_states.json", cbs, initial_epoch))

    t_train = time.perf_counter()
    # shuffle=False: `views` already draws each epoch's order from (seed, epoch). Keras' own
    # shuffle of the batch indices draws from Python's global `random`, which a resumed run
    # does not restore: it applied the same batches in another order.
    s.model.fit(views, epochs=cfg["epochs"], callbacks=cbs, shuffle=False,
                verbose=1 if bar else 0)  # fmt: skip
    seconds = time.perf_counter() - t_train
    s.model.save_weights(str(ckpt / "final.weights.h5"))
    return _Fit(history, initial_epoch, len(views), seconds)


class _CallbackStates(keras.callbacks.Callback):
    """Checkpoints the callbacks that carry a state besides the model's weights (those with
    `state_dict()` / `load_state_dict()`, e.g. `AdaptiveL21`'s `λ` and controller state),
    which the backup does not hold: at every epoch end, before the backup's own save, their
    states go to `path` keyed by the epoch, the previous epoch's kept (a kill between this
    save and the backup's leaves the backup one epoch behind); a resumed run loads the states
    of the backup's epoch before those callbacks start, so it continues the same `λ`."""

    def __init__(self, path: Path, callbacks: list, initial_epoch: int):
        super().__init__()
        self.path, self.initial_epoch = path, initial_epoch
        self.owners = [c for c in callbacks if callable(getattr(c, "load_state_dict", None))]

    def _saved(self) -> dict:
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def on_train_begin(self, logs=None):
        if not self.owners or self.initial_epoch == 0:
            return
        states = self._saved().get(str(self.initial_epoch))
        if states is None or len(states) != len(self.owners):
            raise RuntimeError(
                f"{self.path}: no state of the {len(self.owners)} stateful callbacks at epoch "
                f"{self.initial_epoch}, where the backup is; the run cannot resume exactly "
                "(run it again with --overwrite)"
            )
        for owner, state in zip(self.owners, states, strict=True):
            owner.load_state_dict(state)

    def on_epoch_end(self, epoch, logs=None):
        if self.owners:
            keep = {k: v for k, v in self._saved().items() if k == str(epoch)}
            keep[str(epoch + 1)] = [owner.state_dict() for owner in self.owners]
            write_json(self.path, keep)


class _FaultPoints(keras.callbacks.Callback):
    """Test hook (`rundir.FAULT_ENV`): points `batch` (the first batch done, before any
    epoch ends) and `epoch-N` (epoch N's backup written)."""

    def on_train_batch_end(self, batch, logs=None):
        rundir.fault_point("batch")

    def on_epoch_end(self, epoch, logs=None):
        rundir.fault_point(f"epoch-{epoch + 1}")


def _report(s: _Run, fit: _Fit, metrics: dict, curves: dict, timing: dict) -> dict:
    """Stage 6: plots, spectra and `results.json` into the work folder, `results.json` last
    (written whole: it marks the run finished, rundir.py)."""
    cfg, work, spectra = s.cfg, s.work, curves["trained"]
    plot_spectra(work / "spectra.png", curves, title=spectra_title(cfg))
    if "group_norms" in spectra:
        plot_group_norms(work / "group_norms.png", spectra["group_norms"])
    np.savez(
        work / "spectra.npz",
        **{f"trained_{k}": v for k, v in spectra.items()},
        **{f"random_init_{k}": v for k, v in curves["random init"].items()},
    )
    history = fit.history
    epochs_run = [h for h in history if h["epoch"] > fit.initial_epoch]
    steps = fit.steps_per_epoch * cfg["batch_size"]
    steady = epochs_run[1:] or epochs_run
    steady_s = sum(h["seconds"] for h in steady)
    results = {
        "method": cfg["method"],
        "config": {k: v for k, v in cfg.items() if k not in ("resume", "penalty")},
        "backend": keras.backend.backend(),
        "devices": _devices(),
        "versions": versions(),
        "environment": {k: v for k, v in os.environ.items() if k in _SETTINGS},
        "epochs_completed": len(history),
        "history": history,
        "metrics": metrics,
        "timing": {
            "train_seconds": fit.seconds,
            "eval_seconds": timing["eval_seconds"],
            "total_seconds": time.perf_counter() - timing["t_start"],
            "epochs_this_session": len(epochs_run),
            # Source images per second (each is augmented twice), first epoch (compilation)
            # excluded when there is more than one.
            "train_images_per_second": steps * len(steady) / steady_s if steady_s else math.nan,
            "threads": os.cpu_count(),
        },
    }
    rundir.fault_point("report")
    write_json(work / "results.json", results)
    return results


def spectra_title(cfg: dict) -> str:
    """The spectra plot's title: method, the head unless it is the MLP, and how SparseHead
    was applied (or that it was off)."""
    head = cfg.get("head", "mlp")
    what = {"mlp": "", "identity": ", no projector", "linear": ", linear head",
            "directclr": f", DirectCLR d0={cfg.get('head_dim')}",
            "topk": f", top-k head k={cfg.get('head_topk')}"}[head]  # fmt: skip
    name = cfg["method"] + what
    if cfg.get("hoyer"):
        return f"{name}, group Hoyer hoyer={cfg['hoyer']:g}"
    if cfg.get("budget") is not None:
        return f"{name}, L2,0 budget keep={cfg['budget']:g}"
    if cfg.get("target_sparsity") is not None:
        how = "proximal step" if cfg["proximal"] else "penalty"
        return f"{name}, adaptive L2,1 {how} target={cfg['target_sparsity']:g}"
    if not cfg["l21"]:
        return f"{name}, no SparseHead (l21=0)"
    how = "proximal step" if cfg["proximal"] else "penalty"
    return f"{name}, SparseHead {how} l21={cfg['l21']:g}"


def raw_pixel_knn(x_train, y_train, x_test, y_test, k: int = 5) -> float:
    """k-NN accuracy (`evaluate.knn_accuracy`, cosine) on the flattened pixels."""
    x_train = np.asarray(x_train, dtype=np.float32).reshape(len(x_train), -1)
    x_test = np.asarray(x_test, dtype=np.float32).reshape(len(x_test), -1)
    return knn_accuracy(x_train, y_train, x_test, y_test, k=k)


def accuracies(results: dict) -> dict[str, float]:
    """The four accuracies of a run (trained network)."""
    return {k: results["metrics"]["trained"][k] for k in _ACC}
