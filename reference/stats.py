"""Paired comparison of a setting with the baseline over seeds: mean difference, 95 % interval.

Runs of one seed share the data order and the initialisation, so the seed-to-seed spread
(often larger than the effect sought) cancels in the per-seed difference
`d_s = x_s(setting) - x_s(baseline)`. For `n` seeds:

    d_mean = (1/n) sum_s d_s,    sd = sqrt(sum_s (d_s - d_mean)^2 / (n - 1)),
    CI_95 = d_mean ± t_{0.975, n-1} * sd / sqrt(n)                (Student t, n - 1 dof)

the paired t interval (the interval of `scipy.stats.ttest_rel`). With one seed there is no
interval (no dof to estimate the spread).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["NO_INTERVAL", "paired_difference", "t_quantile", "verdict"]

#: The verdict (and the table's interval cell) when there is a single seed.
NO_INTERVAL = "n=1: no interval"


def t_quantile(p: float, dof: int) -> float:
    """The `p` quantile of Student's t distribution with `dof` degrees of freedom.

    `t_quantile(0.975, 4)` is 2.776 (the two-sided 95 % value for 5 paired seeds).
    """
    from scipy import stats  # scikit-learn depends on scipy: installed with `reference`

    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1); got {p!r}")
    if int(dof) != dof or dof < 1:
        raise ValueError(f"dof must be a positive integer; got {dof!r}")
    return float(stats.t.ppf(p, int(dof)))


def paired_difference(
    baseline: Sequence[float], setting: Sequence[float], confidence: float = 0.95
) -> dict:
    """Per-seed differences `setting - baseline`, their mean and its Student-t interval.

    `baseline` and `setting` are the values of one metric, index `s` from the same seed.
    Returns `{"paired_diff": [d_s], "diff_mean": d_mean, "ci95": [lo, hi] or None,
    "half_width": t * sd / sqrt(n) or None}` (`None` when `n = 1`).
    """
    b = np.asarray(baseline, dtype=np.float64)
    x = np.asarray(setting, dtype=np.float64)
    if b.ndim != 1 or x.ndim != 1 or b.size != x.size or b.size == 0:
        raise ValueError(
            "baseline and setting must be 1-D, non-empty and of equal length (one value per "
            f"seed); got shapes {b.shape} and {x.shape}"
        )
    if not (np.all(np.isfinite(b)) and np.all(np.isfinite(x))):
        raise ValueError(f"values must be finite; got baseline {b.tolist()}, setting {x.tolist()}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1); got {confidence!r}")
    d = x - b
    n = d.size
    mean = float(d.mean())
    out = {"paired_diff": d.tolist(), "diff_mean": mean, "ci95": None, "half_width": None}
    if n > 1:
        se = float(d.std(ddof=1)) / math.sqrt(n)
        half = t_quantile(0.5 + confidence / 2, n - 1) * se
        out["ci95"] = [mean - half, mean + half]
        out["half_width"] = half
    return out


def verdict(comparison: dict, higher_is_better: bool | None, digits: int = 2) -> str:
    """A plain reading of `paired_difference`'s interval.

    The interval above 0: `better` (or `higher` when `higher_is_better` is None, i.e. for
    metrics where neither direction is good in itself: rank, sparsity, throughput); below 0:
    `worse` (`lower`); containing 0: `no detectable difference at ±x` (x the half-width,
    `digits` decimals); one seed: `n=1: no interval`.
    """
    ci = comparison["ci95"]
    if ci is None:
        return NO_INTERVAL
    lo, hi = ci
    if lo > 0:
        return {True: "better", False: "worse", None: "higher"}[higher_is_better]
    if hi < 0:
        return {True: "worse", False: "better", None: "lower"}[higher_is_better]
    return f"no detectable difference at ±{comparison['half_width']:.{digits}f}"
