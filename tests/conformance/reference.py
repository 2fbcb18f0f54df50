"""An independent float64 reference for every operation the conformance suite checks.

Written from the formulas, not from `sparsehead`: a group's norm is `m * sqrt(sum((x/m)^2))`
(`m` the group's largest magnitude, so nothing overflows or underflows), the prox and the
projection are loops over the groups, the Hoyer gradient is the closed form of
`d/dW (S^2 / Q)`. The NumPy core is one of the backends compared with it.

Non-finite groups follow `sqrt(sum(w**2))` in float64: NaN for a group holding a NaN, +inf for
one holding an inf and no NaN.
"""

from __future__ import annotations

import math

import numpy as np


def _groups(w, group_axis: int) -> np.ndarray:
    """`w` in float64 as a `(G, n)` matrix, one row per group."""
    x = np.moveaxis(np.asarray(w, np.float64), group_axis, 0)
    return x.reshape(x.shape[0], -1)


def _back(rows: np.ndarray, w, group_axis: int) -> np.ndarray:
    shape = np.moveaxis(np.empty(np.shape(w), np.bool_), group_axis, 0).shape
    return np.moveaxis(rows.reshape(shape), 0, group_axis)


def group_norms(w, group_axis: int) -> np.ndarray:
    """`||W_j||_2` per group, in float64."""
    out = []
    for row in _groups(w, group_axis):
        if not np.isfinite(row).all():
            with np.errstate(invalid="ignore", over="ignore"):
                out.append(float(np.sqrt(np.sum(row**2))))
            continue
        m = float(np.abs(row).max()) if row.size else 0.0
        out.append(0.0 if m == 0 else m * math.sqrt(math.fsum((row / m) ** 2)))
    return np.array(out, np.float64)


def l21(w, group_axis: int) -> float:
    """`||W||_{2,1} = sum_j ||W_j||_2` (Eq. 12)."""
    return float(np.sum(group_norms(w, group_axis)))


def l21_subgradient(w, group_axis: int) -> np.ndarray:
    """The minimum-norm subgradient: `W_j / ||W_j||` on non-zero groups, exactly 0 on zero
    groups."""
    rows, g = _groups(w, group_axis), group_norms(w, group_axis)
    out = np.zeros_like(rows)
    for j, n in enumerate(g):
        if n > 0:
            out[j] = rows[j] / n
    return _back(out, w, group_axis)


def l21_prox(w, threshold: float, group_axis: int) -> np.ndarray:
    """Group soft-threshold: `max(0, 1 - t / ||W_j||) W_j`."""
    rows, g = _groups(w, group_axis), group_norms(w, group_axis)
    out = np.zeros_like(rows)
    for j, n in enumerate(g):
        if n > threshold:
            out[j] = rows[j] * (1 - threshold / n)
    return _back(out, w, group_axis)


def ranking(norms: np.ndarray) -> list[int]:
    """Groups from the first kept to the last: NaN, then +inf, then finite norms descending;
    ties to the lower index."""

    def key(j: int):
        n = norms[j]
        if math.isnan(n):
            return (0, 0.0, j)
        if math.isinf(n):
            return (1, 0.0, j)
        return (2, -n, j)

    return sorted(range(len(norms)), key=key)


def l20_project(w, k: int, group_axis: int) -> np.ndarray:
    """The `k` first groups of `ranking` kept as they are, every other group exactly 0."""
    rows = _groups(w, group_axis)
    out = np.zeros_like(rows)
    for j in ranking(group_norms(w, group_axis))[:k]:
        out[j] = rows[j]
    return _back(out, w, group_axis)


def group_hoyer(w, group_axis: int) -> float:
    """`HS(W) = (sum_j g_j)^2 / sum_j g_j^2`, 0 for an all-zero weight."""
    g = group_norms(w, group_axis)
    if not g.any():
        return 0.0
    r = g / g.max()
    return float(math.fsum(r) ** 2 / math.fsum(r * r))


def group_hoyer_gradient(w, group_axis: int) -> np.ndarray:
    """`2 S/Q W_j/g_j - 2 S^2/Q^2 W_j` on non-zero groups (S = sum g, Q = sum g^2), exactly 0
    on zero groups (the minimum-norm subgradient)."""
    rows, g = _groups(w, group_axis), group_norms(w, group_axis)
    out = np.zeros_like(rows)
    if g.any():
        m = g.max()
        r = g / m
        s, q = math.fsum(r), math.fsum(r * r)
        for j, n in enumerate(g):
            if n > 0:
                out[j] = 2 * s / q / m * (rows[j] / n) - 2 * (s / q) ** 2 * (rows[j] / m) / m
    return _back(out, w, group_axis)


def hoyer_term_scale(w, group_axis: int) -> float:
    """`2 S/Q / max g`: the size of each of the Hoyer gradient's two terms (they cancel, exactly
    for one non-zero group), the absolute floor for comparing its entries."""
    g = group_norms(w, group_axis)
    if not g.any():
        return 0.0
    r = g / g.max()
    return float(2 * r.sum() / (r @ r) / g.max())
