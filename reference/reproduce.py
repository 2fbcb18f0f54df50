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
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

if __package__ in (None, ""):  # run as a script
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from reference.cli import config_from_args, parse_keep
from reference.names import METHODS
from reference.stats import NO_INTERVAL, paired_difference, verdict

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

BASELINE = "baseline"

#: Table 1 of the paper ("Towards the Sparseness of Projection Head in Self-Supervised
#: Learning"): linear and 5-NN accuracy (%), ResNet-18, for the datasets our loaders cover.
PAPER_TABLE1: dict[tuple[str, bool], dict[str, tuple[float, float]]] = {
    ("simclr", False): {"cifar10": (91.80, 88.42), "cifar100": (66.83, 56.57),
                        "stl10": (90.51, 85.68), "tiny-imagenet": (48.82, 32.86)},
    ("byol", False): {"cifar10": (91.73, 89.26), "cifar100": (66.60, 56.82),
                      "stl10": (91.86, 88.61), "tiny-imagenet": (51.01, 36.14)},
    ("barlow-twins", False): {"cifar10": (90.88, 88.78), "cifar100": (66.67, 56.39),
                              "stl10": (90.71, 86.31), "tiny-imagenet": (49.74, 33.61)},
    ("simclr", True): {"cifar10": (92.75, 90.32), "cifar100": (67.55, 56.84),
                       "stl10": (92.24, 88.49), "tiny-imagenet": (51.42, 36.16)},
    ("byol", True): {"cifar10": (92.45, 90.05), "cifar100": (67.52, 56.86),
                     "stl10": (92.60, 88.63), "tiny-imagenet": (52.16, 36.74)},
    ("barlow-twins", True): {"cifar10": (91.28, 89.87), "cifar100": (66.91, 56.47),
                             "stl10": (91.45, 88.46), "tiny-imagenet": (51.49, 35.26)},
}  # fmt: skip
PAPER_CITATION = (
    "Table 1 of 'Towards the Sparseness of Projection Head in Self-Supervised Learning' "
    "(ResNet-18, 1000-2000 epochs)"
)


class Metric(NamedTuple):
    """One compared quantity of a run: where it is in `run()`'s results, and how to show it."""

    key: str  # its name in comparison.json
    label: str  # its column in the tables
    path: tuple[str, ...]  # where it is in a run's results
    scale: float  # shown and compared as value * scale
    higher_is_better: bool | None  # None: neither direction is good in itself
    digits: int
    unit: str


_T = ("metrics", "trained")
_H = (*_T, "head_sparsity")
#: Every metric of the paired comparison. Accuracies are in percentage points, and higher is
#: better. For effective rank, sparsity and throughput neither direction is good in itself
#: (a lower embedding rank is the paper's claimed effect, not a merit), so their verdicts say
#: `higher` / `lower`.
METRICS: tuple[Metric, ...] = (
    Metric("linear_representation", "linear (r)",
           (*_T, "linear_representation"), 100, True, 2, "%"),
    Metric("knn5_representation", "5-NN (r)", (*_T, "knn5_representation"), 100, True, 2, "%"),
    Metric("linear_embedding", "linear (z)", (*_T, "linear_embedding"), 100, True, 2, "%"),
    Metric("knn5_embedding", "5-NN (z)", (*_T, "knn5_embedding"), 100, True, 2, "%"),
    Metric("effective_rank_representation", "eff. rank r",
           (*_T, "effective_rank_representation"), 1, None, 1, ""),
    Metric("effective_rank_embedding", "eff. rank z",
           (*_T, "effective_rank_embedding"), 1, None, 1, ""),
    Metric("head_l21", "head L2,1", (*_H, "l21"), 1, None, 3, ""),
    Metric("head_frobenius", "head ‖W‖_F", (*_T, "head_frobenius"), 1, None, 3, ""),
    Metric("frac_below_1pct", "head groups < 1% of max (%)", (*_H, "frac_below_1pct"),
           100, None, 1, "% of groups"),
    Metric("groups_95_energy", "head groups for 95% energy", (*_H, "groups_95_energy"),
           1, None, 1, "groups"),
    Metric("train_images_per_second", "training images/s",
           ("timing", "train_images_per_second"), 1, None, 0, "images/s"),
)  # fmt: skip
_BY_KEY = {m.key: m for m in METRICS}
# The columns that also exist for the network at random initialisation.
_INIT_KEYS = METRICS[:6]


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
    labels = [label for label, _ in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        raise ValueError(f"setting labels must be unique; repeated: {dup}")
    slugs = [_slug(label) for label in labels]
    if len(set(slugs)) != len(slugs):
        raise ValueError(f"setting labels {labels} give clashing output folders {slugs}")
    return out


def _slug(label: str) -> str:
    """The run folder name of a setting: 'SparseHead proximal λ=0.01' -> 'proximal-l21_0.01'."""
    s = label.replace("SparseHead ", "").replace("λ=", "l21_")
    return re.sub(r"[^\w.+-]+", "-", s).strip("-") or "setting"


def _value(run: dict, metric: Metric) -> float | None:
    """`metric` of one run's results, scaled; None when absent or not a finite number."""
    v = run
    for k in metric.path:
        v = v.get(k) if isinstance(v, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v) * metric.scale


def _mean_std(v) -> tuple[float, float]:
    v = np.asarray(v, dtype=np.float64)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def summarise(runs: list[dict]) -> dict[str, tuple[float, float]]:
    """Mean and sample standard deviation (0 for one seed) over seeds of each metric that every
    run has (`METRICS` keys, `zero_groups`, `groups`), and of the random-init accuracies and
    ranks (keys prefixed `random_init_`)."""
    out = {}
    for m in METRICS:
        v = [_value(r, m) for r in runs]
        if None not in v:
            out[m.key] = _mean_std(v)
    sparsity = [r["metrics"]["trained"].get("head_sparsity") for r in runs]
    if all(sparsity):
        out["zero_groups"] = _mean_std([s["zero_groups"] for s in sparsity])
        out["groups"] = (float(sparsity[0]["groups"]), 0.0)
    for m in _INIT_KEYS:
        init = m._replace(path=("metrics", "random_init", *m.path[2:]))
        v = [_value(r, init) for r in runs]
        if None not in v:
            out[f"random_init_{m.key}"] = _mean_std(v)
    return out


def _pm(m: tuple[float, float] | None, digits: int = 2) -> str:
    return "-" if m is None else f"{m[0]:.{digits}f} ± {m[1]:.{digits}f}"


def markdown_table(method: str, dataset: str, rows: list[tuple[str, dict]], seeds) -> str:
    """The mean ± std table of `rows` ((label, summary)), the random-init row (from the first
    row, the baseline's runs) and the paper's matching row."""
    head = [m.label for m in METRICS] + ["exact zero groups"]
    lines = [
        f"{method} on {dataset}, seeds {list(seeds)} (mean ± std; accuracy in %; r = "
        "representation, z = embedding)",
        "",
        "| setting | " + " | ".join(head) + " |",
        "|---" * (len(head) + 1) + "|",
    ]
    for label, s in rows:
        cells = [_pm(s.get(m.key), m.digits) for m in METRICS]
        if "groups" in s and "groups_95_energy" in s:
            cells[METRICS.index(_BY_KEY["groups_95_energy"])] += f" / {int(s['groups'][0])}"
        cells.append(_pm(s.get("zero_groups"), 1))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if rows:
        s = rows[0][1]
        cells = [_pm(s.get(f"random_init_{m.key}"), m.digits) for m in _INIT_KEYS]
        cells += ["-"] * (len(head) - len(cells))
        lines.append("| random init (same network, untrained) | " + " | ".join(cells) + " |")
    for sparse in (False, True):
        paper = PAPER_TABLE1.get((method, sparse), {}).get(dataset)
        label = f"paper: {method}{' + SparseHead' if sparse else ''}"
        if paper:
            lines.append(
                f"| {label} | {paper[0]:.2f} | {paper[1]:.2f} |" + " - |" * (len(head) - 2)
            )
    if not PAPER_TABLE1.get((method, False), {}).get(dataset):
        lines += ["", f"The paper has no row for {dataset}; for CIFAR-10 it reports:"]
        for sparse in (False, True):
            lin, knn = PAPER_TABLE1[(method, sparse)]["cifar10"]
            lines.append(f"- {method}{' + SparseHead' if sparse else ''}: linear {lin:.2f}, "
                         f"5-NN {knn:.2f}")  # fmt: skip
    lines += ["", f"Source of the paper's numbers: {PAPER_CITATION}."]
    return "\n".join(lines)


def compare(runs: dict[str, list[dict]], seeds, baseline: str = BASELINE) -> dict:
    """The paired comparison of every setting with `baseline`, as written to comparison.json.

    `runs[label][i]` is the run of seed `seeds[i]`. Returns `{"settings": {label: {metric:
    {"per_seed", "mean", "paired_diff", "diff_mean", "ci95"}}}, "verdicts": {label: {metric:
    str}}}`; the baseline has no diff fields, `ci95` is None for one seed, and a metric that
    some run lacks (e.g. head sparsity of an identity head) is left out of its setting.
    """
    seeds = list(seeds)
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct (each is one pair); got {seeds}")
    if baseline not in runs:
        raise ValueError(f"no runs for the baseline {baseline!r}; settings: {list(runs)}")
    values: dict[str, dict[str, list[float]]] = {}
    for label, rs in runs.items():
        if len(rs) != len(seeds):
            raise ValueError(f"{label!r}: {len(rs)} runs for {len(seeds)} seeds {seeds}")
        for r, seed in zip(rs, seeds, strict=True):
            got = r.get("config", {}).get("seed", seed)
            if got != seed:
                raise ValueError(f"{label!r}: run in place of seed {seed} has seed {got}")
        values[label] = {}
        for m in METRICS:
            v = [_value(r, m) for r in rs]
            if None not in v:
                values[label][m.key] = v
    out: dict = {"settings": {}, "verdicts": {}}
    for label, per_metric in values.items():
        entry, verdicts = {}, {}
        for key, v in per_metric.items():
            entry[key] = {"per_seed": v, "mean": float(np.mean(v))}
            if label == baseline or key not in values[baseline]:
                continue
            c = paired_difference(values[baseline][key], v)
            entry[key].update(paired_diff=c["paired_diff"], diff_mean=c["diff_mean"],
                              ci95=c["ci95"])  # fmt: skip
            m = _BY_KEY[key]
            verdicts[key] = verdict(c, m.higher_is_better, m.digits)
        out["settings"][label] = entry
        if label != baseline:
            out["verdicts"][label] = verdicts
    return out


def comparison_table(method: str, dataset: str, comparison: dict, seeds) -> str:
    """The paired table: each setting minus the baseline, per metric, with its 95 % interval."""
    n = len(list(seeds))
    lines = [
        f"{method} on {dataset}: each setting minus the baseline, paired by seed (n = {n}; "
        "mean difference, 95 % Student-t interval with n-1 dof; accuracy in points)",
        "",
        "| setting | metric | baseline | setting | difference | 95% interval | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    base = comparison["settings"].get(BASELINE, {})
    for label, entry in comparison["settings"].items():
        if label == BASELINE:
            continue
        for m in METRICS:
            e = entry.get(m.key)
            if e is None or "diff_mean" not in e:
                continue
            f = f".{m.digits}f"
            ci = NO_INTERVAL if e["ci95"] is None else (
                f"[{e['ci95'][0]:+{f}}, {e['ci95'][1]:+{f}}]")  # fmt: skip
            lines.append(
                f"| {label} | {m.label} | {base[m.key]['mean']:{f}} | {e['mean']:{f}} | "
                f"{e['diff_mean']:+{f}} | {ci} | {comparison['verdicts'][label][m.key]} |"
            )
    lines += [
        "",
        "`better`/`worse` (accuracy) and `higher`/`lower` (the other metrics): the interval "
        "excludes 0; otherwise the difference is within ± the interval's half-width of 0.",
    ]
    return "\n".join(lines)


def beyond_settings(hoyers=(), budgets=(), targets=()) -> list[tuple[str, dict]]:
    """Settings for the variants beyond the paper (docs/beyond.md): group Hoyer at each
    strength, an L2,0 budget at each `keep`, and adaptive λ (proximal step, starting at the
    paper's 1e-4) at each target fraction of groups holding 95 % of the energy."""
    out = [(f"group Hoyer {h:g}", {"hoyer": h, "l21": 0.0, "proximal": False}) for h in hoyers]
    out += [(f"budget keep={k:g}", {"budget": k, "l21": 0.0, "proximal": False}) for k in budgets]
    out += [(f"adaptive λ target={f:g}", {"target_sparsity": f, "l21": 1e-4, "proximal": True})
            for f in targets]  # fmt: skip
    return out


def _parse_settings(pairs) -> list[tuple[str, dict]]:
    out = []
    for label, text in pairs or ():
        try:
            overrides = json.loads(text)
        except json.JSONDecodeError as e:
            raise ValueError(f"--setting {label!r}: overrides must be a JSON object ({e})") from e
        out.append((label, overrides))
    return out


def _reproduce(method: str, args, train_argv: list[str], extra, out: Path) -> dict:
    """All settings x seeds of one method into `out`; its tables, comparison and report."""
    from reference.cli import import_training

    run = import_training()  # also imports keras, quietly
    import keras

    from reference.report import plot_spectra, write_json

    base = config_from_args(method, [*train_argv, "--quiet"])
    grid = settings(args.l21, not args.no_penalty, not args.no_proximal, extra, args.proximal_l21)
    for label, overrides in grid:
        unknown = sorted(set(overrides) - set(base))
        if unknown:
            raise ValueError(f"setting {label!r}: unknown configuration keys {unknown}; "
                             f"known: {sorted(base)}")  # fmt: skip
    rows, curves, all_runs, results = [], {}, {}, {}
    for label, overrides in grid:
        runs = []
        for seed in args.seeds:
            cfg = {**base, **overrides, "seed": seed,
                   "out": str(out / f"{_slug(label)}-seed{seed}")}  # fmt: skip
            keras.utils.clear_session()
            res = run(cfg, verbose=0)
            acc = res["metrics"]["trained"]
            print(f"{method} {label:<32} seed {seed}: linear {acc['linear_representation']:.4f}, "
                  f"5-NN {acc['knn5_representation']:.4f}", flush=True)  # fmt: skip
            runs.append(res)
            spectra_path = Path(cfg["out"]) / "spectra.npz"
            if seed == args.seeds[0] and spectra_path.exists():
                spectra = np.load(spectra_path)
                curves[label] = {k: spectra[f"trained_{k}"] for k in ("representation",
                                                                       "embedding")}  # fmt: skip
        rows.append((label, summarise(runs)))
        results[label] = runs
        all_runs[label] = [r["config"]["out"] for r in runs]
    comparison = compare(results, args.seeds)
    dataset = base["dataset"]
    table = (markdown_table(method, dataset, rows, args.seeds) + "\n\n"
             + comparison_table(method, dataset, comparison, args.seeds))  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "table.md").write_text(table + "\n")
    write_json(out / "comparison.json", {
        "method": method, "dataset": dataset, "seeds": list(args.seeds), "baseline": BASELINE,
        "units": {m.key: m.unit for m in METRICS}, **comparison})  # fmt: skip
    if curves:
        plot_spectra(out / "spectra_overlay.png", curves,
                     title=f"{method} on {dataset}: baseline vs SparseHead (seed "
                     f"{args.seeds[0]})")  # fmt: skip
    report = {"method": method, "dataset": dataset, "seeds": list(args.seeds),
              "train_args": train_argv, "rows": dict(rows), "runs": all_runs,
              "comparison": comparison, "table": table,
              "paper_citation": PAPER_CITATION}  # fmt: skip
    write_json(out / "reproduce.json", report)
    return report


def main(argv=None, extra_settings=()) -> dict:
    """The command line (see the module docstring); `extra_settings` are further (label,
    overrides) compared with the baseline, beside any `--setting`. Returns the combined
    report `{"methods": {method: report}, ...}`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    train_argv = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
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
        "--budget", type=parse_keep, nargs="+", default=[], help="L2,0 budgets (int or fraction)"
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
    p.add_argument("--out", default="runs/reproduce")
    args = p.parse_args(own)  # fmt: skip
    if len(set(args.seeds)) != len(args.seeds):
        p.error(f"--seeds must be distinct; got {args.seeds}")
    methods = list(dict.fromkeys(args.methods or [args.method or "simclr"]))
    try:
        extra = [
            *beyond_settings(args.hoyer, args.budget, args.target_sparsity),
            *extra_settings,
            *_parse_settings(args.setting),
        ]
        settings(args.l21, not args.no_penalty, not args.no_proximal, extra, args.proximal_l21)
    except (TypeError, ValueError) as e:
        p.error(str(e))

    from reference.report import write_json

    out = Path(args.out)
    reports = {m: _reproduce(m, args, train_argv, extra, out / m) for m in methods}
    summary = "\n\n".join(r["table"] for r in reports.values())
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.md").write_text(summary + "\n")
    combined = {"methods": reports, "seeds": list(args.seeds), "train_args": train_argv}
    write_json(out / "summary.json", {
        "methods": list(methods), "seeds": list(args.seeds), "train_args": train_argv,
        "baseline": BASELINE, "comparison": {m: r["comparison"] for m, r in reports.items()},
        "folders": {m: str(out / m) for m in methods}})  # fmt: skip
    print(summary)
    return combined


if __name__ == "__main__":
    main()
