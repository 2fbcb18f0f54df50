"""Does a label-free rank track the probes? (issue 21.5)

`RankMonitor` logs RankMe and the effective rank of the representation `r` and the embedding
`z` without labels. This reads finished reference runs and measures how well each rank orders
them like the linear probe does: Spearman's rank correlation `rho` over the runs, per method,
between a rank of `r` (of `z`) and the linear probe's accuracy on `r` (on `z`):

    rho = 1 - 6 sum_i d_i^2 / (n (n^2 - 1))      (no ties; `scipy.stats.spearmanr` in general)

with `d_i` the difference of run `i`'s two ranks among the `n` runs. The 95 % interval is the
percentile bootstrap over runs (`scipy.stats.bootstrap`, 9 999 resamples, seed 0); it treats
the runs as independent, which they are not quite (runs of one seed share data order and
initialisation), so read it as a guide to the spread, not as a test.

The ranks are those `evaluate.py` stores at the end of a run, computed by the same
`sparsehead.rankme` / `sparsehead.effective_rank` that `RankMonitor` calls, on the test
split's features (the monitor uses a smaller held-out batch each epoch).

    python reference/experiments/rank_vs_probe.py runs/table1 runs/projector [--json out.json]

Every `results.json` below the given folders is one run (unfinished `*.partial` folders are
skipped, as are `*.old` folders of an `--overwrite` swap); its method is `results["method"]`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script

#: (label, rank metric, probe metric): what is correlated with what.
PAIRS = (
    ("RankMe (r) vs linear (r)", "rankme_representation", "linear_representation"),
    ("eff. rank (r) vs linear (r)", "effective_rank_representation", "linear_representation"),
    ("RankMe (z) vs linear (z)", "rankme_embedding", "linear_embedding"),
    ("eff. rank (z) vs linear (z)", "effective_rank_embedding", "linear_embedding"),
)


def collect(folders) -> dict[str, list[dict]]:
    """The trained metrics of every finished run below `folders`, grouped by method."""
    runs: dict[str, list[dict]] = defaultdict(list)
    for folder in folders:
        for path in sorted(Path(folder).rglob("results.json")):
            # `rundir`'s OUT.partial (unfinished) and OUT.old (a run being replaced)
            if any(part.endswith((".partial", ".old")) for part in path.parent.parts):
                continue
            results = json.loads(path.read_text())
            runs[results["method"]].append(
                {"run": str(path.parent), **results["metrics"]["trained"]}
            )
    return dict(runs)


def spearman(x, y, *, resamples: int = 9999, seed: int = 0) -> dict:
    """Spearman's `rho` of `x` and `y` (one value per run) and its percentile-bootstrap 95 %
    interval over runs (`None` with fewer than 8 runs, where resamples with a single
    distinct run are common; `rho` is `None` when either is
    constant)."""
    from scipy import stats

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1 or x.size < 3:
        raise ValueError(f"x and y must be 1-D, of equal length >= 3; got {x.shape}, {y.shape}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:  # no order to compare
        return {"rho": None, "ci95": None, "n": int(x.size)}
    rho = float(stats.spearmanr(x, y).statistic)
    ci = None
    if x.size >= 8:
        boot = stats.bootstrap(
            (x, y),
            lambda a, b: stats.spearmanr(a, b).statistic,
            paired=True,
            vectorized=False,
            n_resamples=resamples,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
        ci = [float(boot.confidence_interval.low), float(boot.confidence_interval.high)]
    return {"rho": rho, "ci95": ci, "n": int(x.size)}


def correlations(runs: dict[str, list[dict]], **kwargs) -> dict:
    """`{method: {pair label: spearman(...)}}` for every method with at least 3 runs."""
    out = {}
    for method, rows in sorted(runs.items()):
        if len(rows) < 3:
            continue
        out[method] = {
            label: spearman([r[rank] for r in rows], [r[probe] for r in rows], **kwargs)
            for label, rank, probe in PAIRS
        }
    return out


def table(result: dict) -> str:
    """Markdown: one row per method, one column per pair, `rho [lo, hi]`."""
    lines = [
        "| method | runs | " + " | ".join(label for label, _, _ in PAIRS) + " |",
        "| --- | --- |" + " --- |" * len(PAIRS),
    ]
    for method, cells in result.items():
        n = next(iter(cells.values()))["n"]
        row = []
        for label, _, _ in PAIRS:
            c = cells[label]
            if c["rho"] is None:
                row.append("undefined (constant)")
                continue
            ci = f" [{c['ci95'][0]:+.2f}, {c['ci95'][1]:+.2f}]" if c["ci95"] else ""
            row.append(f"{c['rho']:+.2f}{ci}")
        lines.append(f"| {method} | {n} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="folders holding finished runs")
    parser.add_argument("--json", type=Path, help="also write the correlations as JSON")
    args = parser.parse_args(argv)
    missing = [str(f) for f in args.folders if not f.is_dir()]
    if missing:
        parser.error(f"not a folder: {', '.join(missing)}")
    result = correlations(collect(args.folders))
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
