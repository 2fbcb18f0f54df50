"""The group Hoyer-square measure of DeepHoyer (Yang, Wen and Li, ICLR 2020) and its gradient.

`HS(W) = (sum_j g_j)^2 / sum_j g_j^2` with `g_j = ||W_j||_2` the group norms (Eq. 13's groups).
It lies in `[1, G]` for `W != 0`: 1 when one group holds all the weight, `G` when all groups
have the same norm, and it is unchanged when `W` is scaled as a whole. A penalty `hoyer * HS`
can therefore only be lowered by concentrating the weight in fewer groups, never by the uniform
shrinkage that BatchNorm and the cosine of InfoNCE/BYOL let `||W||_{2,1}` get away with.
"""

from __future__ import annotations

import numpy as np

from .groups import _as_groups, _norms64, _result_dtype, l21_subgradient

__all__ = ["group_hoyer", "group_hoyer_gradient"]


def _ratios(g: np.ndarray) -> tuple[float, float, float]:
    """`(m, S/m, Q/m^2)` with `m = max g`: sums of `g / m`, which lie in `[0, 1]` (no overflow)."""
    top = float(g.max())
    if top == 0:
        return 0.0, 0.0, 0.0
    r = g / top
    return top, float(r.sum()), float(np.dot(r, r))


def group_hoyer(w, group_axis: int = -2) -> float:
    """Group Hoyer-square: `HS(W) = (sum_j ||W_j||_2)^2 / sum_j ||W_j||_2^2`, a Python float.

    `1 <= HS <= G` (G groups) for `W != 0`, and `0.0` for `W = 0` by convention. `HS(cW) =
    HS(W)` for any `c != 0`. Computed in float64 after dividing every group norm by the
    largest, which leaves `HS` unchanged and cannot overflow.

    Args:
        w: array of at least 2 dimensions, finite.
        group_axis: the axis whose index names a group; the norm runs over all other axes.
    """
    _, x3, _ = _as_groups(w, group_axis)
    _, s, q = _ratios(_norms64(x3))
    return s * s / q if q > 0 else 0.0


def group_hoyer_gradient(w, group_axis: int = -2) -> np.ndarray:
    """Gradient of `HS(W)`: `dHS/dW_j = 2 S/Q * u_j - 2 S^2/Q^2 * W_j`.

    `S = sum_j g_j`, `Q = sum_j g_j^2`, `u_j = W_j / g_j` (the L2,1 subgradient; 0 where
    `g_j = 0`, so a zero group gets gradient 0), and the gradient is 0 for `W = 0`. Evaluated
    as `(2/m) * (s/q * u_j - (s/q)^2 * W_j/m)` with `m = max_j g_j`, `s = S/m`, `q = Q/m^2`.
    The gradient is orthogonal to `W` (`HS` is scale invariant) and scales as `1/m` (so it
    overflows to inf where `m` is below ~1e-308 and the groups do not cancel).

    Returns:
        An array of `w`'s shape, in `w`'s dtype (float64 for integer input), computed in
        float64.
    """
    x, x3, ax = _as_groups(w, group_axis)
    top, s, q = _ratios(_norms64(x3))
    dtype = _result_dtype(np.asarray(w).dtype)
    if top == 0:
        return np.zeros(x.shape, dtype)
    x64 = x.astype(np.float64)
    u = l21_subgradient(x64, ax)
    c = s / q
    # Divide by `top` last: for one group the bracket is exactly 0, even when 2 / top overflows.
    return ((c * u - (c * c) * (x64 / top)) / top * 2.0).astype(dtype)
