"""The settings grid of `reproduce.py`: which runs, checked as a whole, then trained or skipped.

A grid is methods x settings x seeds; each (method, setting, seed) is one run of
`training.run` in its own folder `OUT/<method>/<setting slug>-seed<seed>` (`rundir.py`: the
folder exists if and only if its run finished). The protocol, so that a grid can be killed
at any moment and rerun with the same command:

1. `plan`: every run's configuration, from the training command line (`cli.config_from_args`,
   what a single run uses) and the setting's overrides.
2. `check`: every configuration through the training run's own checks, and every run folder
   against its configuration (`rundir.status`, `rundir.stored_config`), before the first
   training step. All problems are collected into one `UsageError`; nothing is written.
   A finished run with the same configuration is `SKIP`ped, an interrupted one (its
   `.partial` folder) is `RESUME`d from its last epoch backup, an absent one is `TRAIN`ed;
   a run on disk with another configuration is refused, never mixed or replaced.
3. `execute`: the runs in order; the tables are then rebuilt from all runs of the grid
   (`tables.py`), so a resumed grid writes what an uninterrupted one writes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import NamedTuple

from . import rundir
from .cli import config_from_args
from .errors import UsageError
from .tables import BASELINE

__all__ = [
    "RESUME",
    "SKIP",
    "TRAIN",
    "Run",
    "beyond_settings",
    "check",
    "execute",
    "parse_settings",
    "plan",
    "settings",
    "slug",
]

TRAIN, RESUME, SKIP = "train", "resume", "skip"
#: Configuration keys that say how a run is carried out, not what it computes.
_NOT_COMPARED = frozenset({"out", "resume", "overwrite", "quiet", "given"})


class Run(NamedTuple):
    """One (method, setting, seed) of the grid and its full configuration (`cfg['out']` set)."""

    method: str
    label: str
    seed: int
    cfg: dict

    @property
    def out(self) -> Path:
        return Path(self.cfg["out"])


def settings(
    l21s: list[float], penalty: bool, proximal: bool, extra=(), proximal_l21s=None
) -> list[tuple[str, dict]]:
    """(label, config overrides) for the baseline, each SparseHead variant, then `extra`.

    The penalty runs at each of `l21s`, the proximal step at each of `proximal_l21s` (default:
    `l21s`).

    `extra` is a sequence of further (label, overrides), e.g. `("group Hoyer 1e-3",
    {"hoyer": 1e-3})`; `reproduce.py --setting LABEL JSON` adds one from the command line.
    Every setting is compared with the first, the baseline.
    """
    out = [(BASELINE, {"l21": 0.0, "proximal": False})]
    if penalty:
        out += [(f"SparseHead penalty λ={lam:g}", {"l21": lam, "proximal": False}) for lam in l21s]
    if proximal:
        out += [(f"SparseHead proximal λ={lam:g}", {"l21": lam, "proximal": True})
                for lam in (l21s if proximal_l21s is None else proximal_l21s)]  # fmt: skip
    for label, overrides in extra:
        if not isinstance(label, str) or not label:
            raise ValueError(f"setting label must be a non-empty string; got {label!r}")
        if not isinstance(overrides, dict):
            raise TypeError(f"overrides of setting {label!r} must be a dict; got {overrides!r}")
        out.append((label, dict(overrides)))
    _check_labels([label for label, _ in out])
    return out


def _check_labels(labels: list[str]) -> None:
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"setting labels must be unique; repeated: {dup}")
    slugs = [slug(label) for label in labels]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"setting labels {labels} give clashing output folders {slugs}")


def slug(label: str) -> str:
    """The run folder name of a setting: 'SparseHead proximal λ=0.01' -> 'proximal-l21_0.01'."""
    s = label.replace("SparseHead ", "").replace("λ=", "l21_")
    return re.sub(r"[^\w.+-]+", "-", s).strip("-") or "setting"


def beyond_settings(hoyers=(), budgets=(), targets=()) -> list[tuple[str, dict]]:
    """Settings for the variants beyond the paper (docs/beyond.md): group Hoyer at each
    strength, an L2,0 budget at each `keep`, and adaptive λ (proximal step, starting at the
    paper's 1e-4) at each target fraction of groups holding 95 % of the energy."""
    out = [(f"group Hoyer {h:g}", {"hoyer": h, "l21": 0.0, "proximal": False}) for h in hoyers]
    out += [(f"budget keep={k:g}", {"budget": k, "l21": 0.0, "proximal": False}) for k in budgets]
    out += [(f"adaptive λ target={f:g}", {"target_sparsity": f, "l21": 1e-4, "proximal": True})
            for f in targets]  # fmt: skip
    return out


def parse_settings(pairs) -> list[tuple[str, dict]]:
    """`--setting LABEL JSON` pairs as (label, overrides)."""
    out = []
    for label, text in pairs or ():
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as e:
            raise UsageError(f"--setting {label!r}: overrides must be a JSON object ({e})") from e
        out.append((label, overrides))
    return out


# -- 1. plan -----------------------------------------------------------------------------------
def plan(
    methods: Iterable[str], grid: list[tuple[str, dict]], seeds, train_argv, out: Path
) -> list[Run]:
    """Every run of the grid, method by method, setting by setting, seed by seed."""
    runs = []
    for method in methods:
        base = config_from_args(method, [*train_argv, "--quiet"])
        base.pop("given", None)  # every key is the grid's: checked against a stored run whole
        _check_keys(base, grid)
        for label, overrides in grid:
            for seed in seeds:
                folder = out / method / f"{slug(label)}-seed{seed}"
                cfg = {**base, **overrides, "seed": seed, "out": str(folder)}
                runs.append(Run(method, label, seed, cfg))
    return runs


def _check_keys(base: dict, grid: list[tuple[str, dict]]) -> None:
    for label, overrides in grid:
        unknown = sorted(set(overrides) - set(base))
        if unknown:
            raise UsageError(
                f"--setting {label!r}: unknown configuration keys {unknown}; known: {sorted(base)}"
            )


# -- 2. check ----------------------------------------------------------------------------------
def check(runs: list[Run], check_config: Callable[[dict], dict]) -> list[str]:
    """What to do with each run (`TRAIN`, `RESUME` or `SKIP`), after checking every
    configuration (`check_config(cfg)` returns the configuration a run stores, or raises
    `ValueError`) and every run folder. One `UsageError` lists every problem; nothing on
    disk is touched."""
    problems: dict[str, None] = {}  # ordered, without repeats (the same error for each seed)
    actions = []
    for run in runs:
        where = f"{run.method} {run.label!r}"
        try:
            stored = check_config(dict(run.cfg))
        except ValueError as e:
            problems[f"{where}: {e}"] = None
            actions.append(TRAIN)
            continue
        try:
            actions.append(_action(run, stored))
        except UsageError as e:
            problems[str(e)] = None
    if problems:
        raise UsageError(_one_message(list(problems)))
    return actions


def _action(run: Run, cfg: dict) -> str:
    """`SKIP` a finished run of `cfg`, `RESUME` an interrupted one, `TRAIN` a new one;
    `UsageError` if the folder holds a run of another configuration."""
    state = rundir.status(run.out)
    if state != "absent":
        diff = _differing(rundir.stored_config(run.out), cfg, strict=state == "complete")
        if diff:
            where = run.out if state == "complete" else rundir.partial_dir(run.out)
            raise UsageError(
                f"{where} holds a run with other settings ({', '.join(diff)}); rerun with "
                "the settings it was made with, or choose another --out"
            )
    if state == "complete":
        return SKIP
    rundir.check_out(run.out, cfg, resume=state == "interrupted", overwrite=False)
    return RESUME if state == "interrupted" else TRAIN


def _differing(stored: dict, cfg: dict, strict: bool) -> list[str]:
    """`key: new (was old)` for each configuration value that differs; with `strict` (a
    finished run) `epochs` too, else a raised `epochs` continues the interrupted run."""
    keys = [k for k in sorted(set(stored) & set(cfg)) if k not in _NOT_COMPARED]
    diff = rundir.differing_keys({k: stored[k] for k in keys}, {k: cfg[k] for k in keys})
    if strict and "epochs" in keys and cfg["epochs"] != stored["epochs"]:
        diff = sorted({*diff, "epochs"})
    return [f"{k} {cfg[k]!r} (was {stored[k]!r})" for k in diff]


def _one_message(problems: list[str], shown: int = 8) -> str:
    more = len(problems) - shown
    text = "; ".join(problems[:shown]) + (f"; and {more} more" if more > 0 else "")
    n = len(problems)
    return f"the grid has {n} problem{'s' * (n > 1)}, nothing was run: {text}"


# -- 3. execute --------------------------------------------------------------------------------
def execute(runs: list[Run], actions: list[str], train: Callable[[dict], dict]) -> list[dict]:
    """Each run's results, in order: read from disk (`SKIP`) or from `train(cfg)` (`TRAIN`,
    `RESUME` with `cfg['resume']`). `rundir.fault_point('grid-after-<folder>')` follows each
    run trained in this process (a test hook; a no-op in normal use)."""
    results = []
    for run, action in zip(runs, actions, strict=True):
        if action == SKIP:
            res = json.loads((run.out / rundir.RESULTS).read_text())
            print(f"{_line(run)}: finished before, skipped", flush=True)
        else:
            res = train({**run.cfg, "resume": action == RESUME})
            acc = res["metrics"]["trained"]
            print(f"{_line(run)}: linear {acc['linear_representation']:.4f}, "
                  f"5-NN {acc['knn5_representation']:.4f}", flush=True)  # fmt: skip
            rundir.fault_point(f"grid-after-{run.method}-{run.out.name}")
        results.append(res)
    return results


def _line(run: Run) -> str:
    return f"{run.method} {run.label:<32} seed {run.seed}"
