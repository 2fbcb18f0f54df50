"""The grid's tables: per-setting mean ± std over seeds, and the paired comparison with the
baseline (mean per-seed difference, its 95 % Student-t interval, a verdict; `stats.py`).

Everything here is a pure function of the runs' `results.json` contents, so tables rebuilt
from the runs on disk are the tables of an uninterrupted grid.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from .paper import PAPER_CITATION, PAPER_TABLE1, paper_row
from .stats import NO_INTERVAL, paired_difference, verdict

__all__ = [
    "BASELINE",
    "METRICS",
    "Metric",
    "compare",
    "comparison_table",
    "markdown_table",
    "summarise",
]

BASELINE = "baseline"


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


def _setting_row(label: str, s: dict) -> str:
    cells = [_pm(s.get(m.key), m.digits) for m in METRICS]
    if "groups" in s and "groups_95_energy" in s:
        cells[METRICS.index(_BY_KEY["groups_95_energy"])] += f" / {int(s['groups'][0])}"
    cells.append(_pm(s.get("zero_groups"), 1))
    return f"| {label} | " + " | ".join(cells) + " |"


def _random_init_row(s: dict) -> str:
    cells = [_pm(s.get(f"random_init_{m.key}"), m.digits) for m in _INIT_KEYS]
    cells += ["-"] * (len(METRICS) + 1 - len(cells))
    return "| random init (same network, untrained) | " + " | ".join(cells) + " |"


def _paper_lines(method: str, dataset: str) -> list[str]:
    """The paper's rows for `method` on `dataset`, or a note with its CIFAR-10 numbers."""
    lines = []
    for sparse in (False, True):
        paper = paper_row(method, sparse, dataset)
        label = f"paper: {method}{' + SparseHead' if sparse else ''}"
        if paper:
            lines.append(
                f"| {label} | {paper[0]:.2f} | {paper[1]:.2f} |" + " - |" * len(METRICS[1:])
            )
    if not paper_row(method, False, dataset):
        lines += ["", f"The paper has no row for {dataset}; for CIFAR-10 it reports:"]
        for sparse in (False, True):
            lin, knn = PAPER_TABLE1[(method, sparse)]["cifar10"]
            lines.append(f"- {method}{' + SparseHead' if sparse else ''}: linear {lin:.2f}, "
                         f"5-NN {knn:.2f}")  # fmt: skip
    return lines


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
    lines += [_setting_row(label, s) for label, s in rows]
    if rows:
        lines.append(_random_init_row(rows[0][1]))
    lines += _paper_lines(method, dataset)
    lines += ["", f"Source of the paper's numbers: {PAPER_CITATION}."]
    return "\n".join(lines)


def _per_metric(runs: dict[str, list[dict]], seeds: list) -> dict[str, dict[str, list[float]]]:
    """label -> metric key -> per-seed values, for the metrics every run of the setting has."""
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
    return values


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
    values = _per_metric(runs, seeds)
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


def _comparison_line(label: str, m: Metric, e: dict, base: dict, verdict_: str) -> str:
    f = f".{m.digits}f"
    ci = NO_INTERVAL if e["ci95"] is None else f"[{e['ci95'][0]:+{f}}, {e['ci95'][1]:+{f}}]"
    return (
        f"| {label} | {m.label} | {base[m.key]['mean']:{f}} | {e['mean']:{f}} | "
        f"{e['diff_mean']:+{f}} | {ci} | {verdict_} |"
    )


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
            if e is not None and "diff_mean" in e:
                verdict_ = comparison["verdicts"][label][m.key]
                lines.append(_comparison_line(label, m, e, base, verdict_))
    lines += [
        "",
        "`better`/`worse` (accuracy) and `higher`/`lower` (the other metrics): the interval "
        "excludes 0; otherwise the difference is within ± the interval's half-width of 0.",
    ]
    return "\n".join(lines)
