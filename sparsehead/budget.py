"""An exact group budget: projection onto the L2,0 ball and the cubic schedule to reach it.

Theorem 5.6 of the paper is stated for the constraint "at most k non-zero groups"
(`||W||_{2,0} <= k`), which the L2,1 norm only relaxes. The Euclidean projection onto that set
keeps the k groups of largest norm `g_j = ||W_j||_2` and zeroes the others. Reaching the budget
gradually, as gradual magnitude pruning does (Zhu and Gupta, 2017), follows the cubic schedule

    k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,   rounded up,

for `t0 <= t <= t1`, with `G` groups before `t0` and `k_f` after `t1`.
"""

from __future__ import annotations

import math
import numbers
from fractions import Fraction

import numpy as np

from ._validation import check_int
from .groups import _as_groups, _norms64, _result_dtype

__all__ = ["budget_schedule", "budget_steps", "l20_project", "rank_groups", "resolve_keep"]


def resolve_keep(keep, groups: int) -> int:
    """The number of groups to keep: `keep` itself for an int in `[1, groups]`, or
    `ceil(keep * groups)` for a float fraction in `(0, 1]`, at least one group; `0.25` of 10
    groups keeps 3. The fraction is taken as written in decimal (its shortest `str`), in exact
    arithmetic: `0.07` of 100 groups keeps 7, although `0.07 * 100` is 7.000000000000001 in
    floats and the binary value of 0.07 is a little above 7/100. `keep = 0` is refused: a
    budget of no group would remove the whole head.
    """
    groups = check_int(groups, "groups", low=1)
    if isinstance(keep, bool):
        raise TypeError("keep must be an int or a float fraction; got bool")
    if isinstance(keep, numbers.Integral):
        keep = int(keep)
        if keep < 1:
            raise ValueError(f"keep must be >= 1 or a fraction in (0, 1]; got {keep}")
        if keep > groups:
            raise ValueError(f"keep must be <= {groups} (the number of groups); got {keep}")
        return keep
    if isinstance(keep, numbers.Real):
        frac = float(keep)
        if not (math.isfinite(frac) and 0 < frac <= 1):
            raise ValueError(f"keep must be >= 1 or a fraction in (0, 1]; got {frac}")
        return math.ceil(Fraction(str(keep)) * groups)
    raise TypeError(f"keep must be an int or a float fraction; got {type(keep).__name__}")


def rank_groups(norms: np.ndarray) -> np.ndarray:
    """Group indices from the first kept to the last: NaN norms first, then +inf, then the
    finite norms descending; ties (NaN with NaN included) go to the lower index.

    A NaN is never hidden: the projection keeps a group that holds one before any other.
    """
    norms = np.asarray(norms, np.float64)
    nan = np.isnan(norms)
    order = np.argsort(-np.where(nan, 0.0, norms), kind="stable")
    return order[np.argsort(~nan[order], kind="stable")]


def l20_project(w, keep, group_axis: int = -2, *, out: np.ndarray | None = None):
    """Projection onto `{W : at most k groups non-zero}`: keep the k groups of largest norm.

    The `k = resolve_keep(keep, G)` groups with the largest `||W_j||_2` are copied, all others
    set to exactly 0. Ties are broken by the lower index (a stable sort of the norms,
    descending), so the result is deterministic. If fewer than k groups are non-zero, the
    result equals `w`. NaN and inf propagate and are never hidden: a group holding a NaN ranks
    above every other group, then a group holding an inf, then the finite norms
    (`rank_groups`), so with room for one of `[inf, 1, nan, 3]` the NaN group is kept.

    Args:
        w: array of at least 2 dimensions (NaN and inf allowed, see above).
        keep: an int in `[1, G]` (the number of groups), or a float fraction in `(0, 1]`
            (`ceil(keep * G)` groups).
        group_axis: the axis whose index names a group.
        out: optional array of `w`'s shape and result dtype to write into; `out=w` works in
            place.

    Returns:
        The projected array (`out` if given), in `w`'s dtype (float64 for integer input).
    """
    x, x3, ax = _as_groups(w, group_axis)
    g = _norms64(x3, nonfinite=True)
    k = resolve_keep(keep, g.size)
    drop = rank_groups(g)[k:]
    w = np.asarray(w)
    dtype = _result_dtype(w.dtype)
    if out is None:
        out = w.astype(dtype, copy=True)
    elif not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype != dtype:
        raise ValueError(f"out must be an ndarray of shape {x.shape} and dtype {dtype}")
    else:
        np.copyto(out, w, casting="same_kind")
    np.moveaxis(out, ax, 0)[drop] = 0
    return out


def _schedule_args(groups, keep, begin_step, end_step) -> tuple[int, int, int, int]:
    g = check_int(groups, "groups", low=1)
    k = resolve_keep(keep, g)
    t0 = check_int(begin_step, "begin_step", low=0)
    t1 = check_int(end_step, "end_step", low=t0)
    return g, k, t0, t1


def budget_schedule(step: int, groups: int, keep, begin_step: int, end_step: int) -> int:
    """The cubic budget of gradual pruning (Zhu and Gupta, 2017) at step `step`.

    `k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3`, rounded up, for `t0 < t < t1`;
    `G` for `t <= t0` and `k_f` for `t >= t1` (`k_f = resolve_keep(keep, G)`). Computed in
    exact integer arithmetic, so every adapter can match it bit for bit.

    Args:
        step: the step `t` (an int; e.g. the number of optimizer steps taken).
        groups: `G >= 1`.
        keep: the final budget `k_f`, as for `l20_project`.
        begin_step: `t0 >= 0`.
        end_step: `t1 >= t0`.
    """
    t = check_int(step, "step")
    g, k, t0, t1 = _schedule_args(groups, keep, begin_step, end_step)
    if t >= t1:
        return k
    if t <= t0:
        return g
    d, a = t1 - t0, t1 - t
    return k + -(-(g - k) * a**3 // d**3)


def budget_steps(groups: int, keep, begin_step: int, end_step: int) -> np.ndarray:
    """The steps at which the cubic budget drops, for evaluating it inside a compiled step.

    Returns `T`, int64 of shape `(G - k_f,)`, non-decreasing, with
    `budget_schedule(t, ...) == G - count(t >= T)` for every int `t`. `T[i]` is the first step
    whose budget is at most `G - 1 - i`. A jitted step needs only a comparison and a sum.
    """
    g, kf, t0, t1 = _schedule_args(groups, keep, begin_step, end_step)
    d = t1 - t0
    out = np.empty(g - kf, np.int64)
    for i, k in enumerate(range(g - 1, kf - 1, -1)):
        # budget(t) <= k  <=>  (g - kf) * a^3 <= (k - kf) * d^3 with a = t1 - t (for t0 < t).
        a = int(d * ((k - kf) / (g - kf)) ** (1 / 3)) if d else 0
        while a > 0 and (g - kf) * a**3 > (k - kf) * d**3:
            a -= 1
        while a + 1 < d and (g - kf) * (a + 1) ** 3 <= (k - kf) * d**3:
            a += 1
        out[i] = t1 - a
    return out
