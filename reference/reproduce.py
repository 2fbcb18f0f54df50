"""Baseline vs SparseHead (penalty and proximal step, several lambdas) x several seeds.

For each method, prints two markdown tables: mean ± std over seeds of each setting (linear and
5-NN accuracy on representation and embedding, effective ranks, the head's group sparsity and
L2,1, training images/s), with the same network at random initialisation and the paper's
Table 1 row; and the paired comparison of each setting with the baseline (mean per-seed
difference, its 95 % Student-t interval, a verdict; see `reference/stats.py`). Overlays the
eigenvalue spectra of the settings as in Fig. 3.

    python reference/reproduce.py --methods simclr byol barlow-twins --l21 1e-4 \\
        --seeds 0 1 2 3 4 --out runs/reproduce -- --epochs 10 --test-size 0

Everything after `--` goes to the training script's command line (see
`python reference/train_simclr.py --help`); the same data, network and schedule are used for
every setting. Output per method in `--out/<method>/` (`table.md`, `comparison.json`,
`reproduce.json`, `spectra_overlay.png`, one folder per run), and all methods together in
`--out/summary.md` and `--out/summary.json`.

Every run's configuration and folder is checked before the first training step (one `error:`
line listing every problem, exit 2). The grid can be stopped at any moment (Ctrl-C, `kill`):
rerunning the same command skips the finished runs, continues an interrupted one from its last
completed epoch, and rebuilds the tables from all runs on disk (`reference/grid.py`).
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference import rundir
from reference.cli import import_training, parse_keep
from reference.errors import UsageError, main_guard
from reference.grid import Run, beyond_settings, check, execute, parse_settings, plan, settings
from reference.names import METHODS
from reference.paper import PAPER_CITATION, PAPER_TABLE1
from reference.tables import (
    BASELINE,
    METRICS,
    compare,
    comparison_table,
    markdown_table,
    summarise,
)

__all__ = [
    "METRICS",
    "PAPER_TABLE1",
    "compare",
    "comparison_table",
    "main",
    "markdown_table",
    "settings",
    "summarise",
]

EPILOG = (
    "Training flags (--epochs, --dataset, --batch-size, ...: see train_simclr.py --help) go "
    "after `--`, e.g. reproduce.py --seeds 0 1 -- --epochs 10. Rerunning the same command "
    "skips the finished runs and continues an interrupted one."
)


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors as `UsageError` (one `error:` line, exit 2, in `main_guard`)."""

    def error(self, message):
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="reproduce.py", description=__doc__.split("\n\n")[0], epilog=EPILOG)
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--methods",
        choices=METHODS,
        nargs="+",
        help="methods to run, one after the other (default simclr)",
    )
    which.add_argument("--method", choices=METHODS, help="one method (same as --methods M)")
    p.add_argument("--l21", type=float, nargs="+", default=[1e-4], help="lambda values")
    p.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2, 3, 4],
        help="seeds; each setting runs once per seed and is paired with the "
        "baseline's run of the same seed (default 0 1 2 3 4)",
    )
    p.add_argument(
        "--proximal-l21",
        type=float,
        nargs="+",
        help="lambda values of the proximal variant (default: those of --l21)",
    )
    p.add_argument("--hoyer", type=float, nargs="+", default=[], help="group Hoyer strengths")
    p.add_argument(
        "--budget",
        type=parse_keep,
        nargs="+",
        default=[],
        help="L2,0 budgets (int >= 1, or a fraction in (0, 1])",
    )
    p.add_argument(
        "--target-sparsity",
        type=float,
        nargs="+",
        default=[],
        help="adaptive-λ targets (fraction of groups holding 95%% of the energy)",
    )
    p.add_argument("--no-penalty", action="store_true", help="skip the penalty variant")
    p.add_argument("--no-proximal", action="store_true", help="skip the proximal variant")
    p.add_argument(
        "--setting",
        nargs=2,
        action="append",
        metavar=("LABEL", "OVERRIDES"),
        help="a further setting: a label and a JSON object of configuration "
        "overrides, e.g. --setting 'budget 16' '{\"budget\": 16}' (repeatable)",
    )
    p.add_argument("--out", default="runs/reproduce", help="output folder")
    return p


def _parse(argv) -> tuple[argparse.Namespace, list[str]]:
    """The grid's own flags (before `--`) and the training flags (after it)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    args = _parser().parse_args(argv[:cut])
    if len(set(args.seeds)) != len(args.seeds):
        raise UsageError(f"--seeds must be distinct; got {args.seeds}")
    return args, argv[cut + 1 :]


def _grid(args, extra_settings) -> list[tuple[str, dict]]:
    extra = [
        *beyond_settings(args.hoyer, args.budget, args.target_sparsity),
        *extra_settings,
        *parse_settings(args.setting),
    ]
    try:
        return settings(args.l21, not args.no_penalty, not args.no_proximal, extra,
                        args.proximal_l21)  # fmt: skip
    except (TypeError, ValueError) as e:
        raise UsageError(str(e)) from e


def _check_config(cfg: dict) -> dict:
    """A single run's own checks of `cfg` (`checks.stored_settings`), and its dataset (once
    per distinct data setting of the grid); the configuration the run stores."""
    from reference.checks import stored_settings

    stored = stored_settings(cfg)
    _check_data(*(stored.get(k) for k in _DATA_KEYS))
    return stored


_DATA_KEYS = ("dataset", "data_dir", "download", "train_size", "batch_size", "ssl_split")


@functools.cache
def _check_data(dataset, data_dir, download, train_size, batch_size, ssl_split) -> None:
    """The dataset is there, intact, and holds a batch (`checks.load_data`'s `UsageError`)."""
    from reference.checks import load_data

    cfg = {"dataset": dataset, "data_dir": data_dir, "download": download, "seed": 0,
           "train_size": train_size, "test_size": None, "ssl_split": ssl_split}  # fmt: skip
    ssl, _, _ = load_data(cfg)
    if len(ssl[0]) < batch_size:
        raise UsageError(
            f"--batch-size {batch_size} is larger than the {len(ssl[0])} training images of "
            f"--dataset {dataset}: lower --batch-size (or raise --train-size)"
        )


def _trainer():
    run = import_training()  # also imports keras, quietly
    import keras

    def train(cfg: dict) -> dict:
        keras.utils.clear_session()
        hooks = _fault_callbacks(Path(cfg["out"]), keras)
        return run(cfg, verbose=0, **({"callbacks": hooks} if hooks else {}))

    return train


def _fault_callbacks(out: Path, keras) -> list:
    """Test hook (none in normal use): with `$SPARSEHEAD_FAULT` set, a callback that reaches
    `rundir.fault_point('grid-epoch-<method>-<folder>-<epoch>')` at each epoch's end, after
    the run's own callbacks (its epoch backup) have run."""
    if not os.environ.get(rundir.FAULT_ENV):
        return []

    class FaultPoint(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            rundir.fault_point(f"grid-epoch-{out.parent.name}-{out.name}-{epoch + 1}")

    return [FaultPoint()]


# -- the outputs: each written whole or not at all (a rerun rebuilds them) ---------------------
def _write_json(path: Path, obj) -> None:
    from reference.report import write_json

    write_json(path, obj)


def _curves(runs: list[Run], seed) -> dict[str, dict]:
    """The trained spectra of each setting's run of `seed`, for the overlay plot."""
    curves = {}
    for run in runs:
        path = run.out / "spectra.npz"
        if run.seed == seed and path.exists():
            with np.load(path) as spectra:
                curves[run.label] = {k: spectra[f"trained_{k}"]
                                     for k in ("representation", "embedding")}  # fmt: skip
    return curves


def _plot(path: Path, curves: dict, title: str) -> None:
    from reference.report import plot_spectra

    png = io.BytesIO()
    plot_spectra(png, curves, title=title)
    rundir.write_atomic(path, png.getvalue())


def _method_report(method: str, runs: list[Run], results: list[dict], seeds, train_argv):
    """The tables, comparison and report of one method's runs (`results[i]` of `runs[i]`)."""
    by_label: dict[str, list[dict]] = {}
    for run, res in zip(runs, results, strict=True):
        by_label.setdefault(run.label, []).append(res)
    rows = [(label, summarise(rs)) for label, rs in by_label.items()]
    comparison = compare(by_label, seeds)
    dataset = runs[0].cfg["dataset"]
    table = (markdown_table(method, dataset, rows, seeds) + "\n\n"
             + comparison_table(method, dataset, comparison, seeds))  # fmt: skip
    folders = {label: [str(r.out) for r in runs if r.label == label] for label in by_label}
    return {"method": method, "dataset": dataset, "seeds": list(seeds),
            "train_args": train_argv, "rows": dict(rows), "runs": folders,
            "comparison": comparison, "table": table,
            "paper_citation": PAPER_CITATION}  # fmt: skip


def _write_method(out: Path, report: dict, runs: list[Run]) -> None:
    """table.md, comparison.json, spectra_overlay.png and reproduce.json of one method, each
    written whole (`rundir.write_atomic`); `rundir.fault_point('grid-table')` between the
    first two is a test hook (a no-op in normal use)."""
    method, dataset, seeds = report["method"], report["dataset"], report["seeds"]
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_atomic(out / "table.md", report["table"] + "\n")
    rundir.fault_point("grid-table")
    _write_json(out / "comparison.json", {
        "method": method, "dataset": dataset, "seeds": seeds, "baseline": BASELINE,
        "units": {m.key: m.unit for m in METRICS}, **report["comparison"]})  # fmt: skip
    curves = _curves(runs, seeds[0])
    if curves:
        title = f"{method} on {dataset}: baseline vs SparseHead (seed {seeds[0]})"
        _plot(out / "spectra_overlay.png", curves, title)
    _write_json(out / "reproduce.json", report)


def _write_summary(out: Path, reports: dict, seeds, train_argv) -> str:
    summary = "\n\n".join(r["table"] for r in reports.values())
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_atomic(out / "summary.md", summary + "\n")
    _write_json(out / "summary.json", {
        "methods": list(reports), "seeds": list(seeds), "train_args": train_argv,
        "baseline": BASELINE, "comparison": {m: r["comparison"] for m, r in reports.items()},
        "folders": {m: str(out / m) for m in reports}})  # fmt: skip
    return summary


def main(argv=None, extra_settings=()) -> dict:
    """The command line (see the module docstring); `extra_settings` are further (label,
    overrides) compared with the baseline, beside any `--setting`. Returns the combined
    report `{"methods": {method: report}, ...}`. A user's mistake raises `UsageError`
    (`main_guard` prints it as one line)."""
    args, train_argv = _parse(argv)
    grid = _grid(args, extra_settings)
    methods = list(dict.fromkeys(args.methods or [args.method or "simclr"]))
    out = Path(args.out)
    runs = plan(methods, grid, args.seeds, train_argv, out)
    actions = check(runs, _check_config)  # every problem, before a framework is imported
    train = _trainer()
    reports = {}
    for method in methods:  # each method's tables as soon as its runs are done
        picked = [i for i, r in enumerate(runs) if r.method == method]
        mruns = [runs[i] for i in picked]
        results = execute(mruns, [actions[i] for i in picked], train)
        reports[method] = _method_report(method, mruns, results, args.seeds, train_argv)
        _write_method(out / method, reports[method], mruns)
    summary = _write_summary(out, reports, args.seeds, train_argv)
    print(summary)
    return {"methods": reports, "seeds": list(args.seeds), "train_args": train_argv}


if __name__ == "__main__":
    main_guard(main)
