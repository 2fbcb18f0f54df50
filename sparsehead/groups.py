"""The L2,1 group norm (Eq. 13), its minimum-norm subgradient and its proximal operator.

A *group* is one input feature of the head: the weights that read that feature. `group_axis`
is the axis whose index names the group; the L2 norm runs over every other axis.

| weight                      | layout               | group_axis |
| --------------------------- | -------------------- | ---------- |
| Keras `Dense` kernel        | `(in, out)`          | `-2`       |
| Keras `Conv2D` kernel       | `(kh, kw, in, out)`  | `-2`       |
| PyTorch `nn.Linear` weight  | `(out, in)`          | `-1`       |
| the paper's `W` in `z = Wr` | `(m, d)`             | `-1`       |

Half-precision inputs (float16, bfloat16) are accumulated in float32; float32 sums of squares
that overflow or underflow are recomputed, for the affected groups only, in scaled float64.
"""

from __future__ import annotations

import numpy as np

from ._parallel import map_spans, spans
from ._validation import (
    as_numeric_array,
    check_group_axis,
    check_nonnegative,
    compute_dtype,
)

__all__ = [
    "group_norms",
    "group_sparsity",
    "l21_norm",
    "l21_prox",
    "l21_subgradient",
    "sparsity_summary",
]

_BLOCK = 1 << 19  # elements per block when summing across rows (2 MiB of float32)
# Rows summed in the input precision before each float64 accumulation. Summing n positive
# float32 terms has a relative error of at most n * 2**-24 (typically ~sqrt(n) * 2**-24):
# 128 rows keep the norms within ~1e-7 of float64 while one einsum reads each block once.
_COL_ROWS = 128


def _as_groups(w, group_axis: int, name: str = "w"):
    """Validate `w`; return it in the compute dtype as a `(pre, G, post)` view, and its axis."""
    w = as_numeric_array(w, name, min_ndim=2)
    ax = check_group_axis(group_axis, w.ndim)
    if w.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {w.shape}")
    x = w.astype(compute_dtype(w.dtype), copy=False)
    pre = int(np.prod(w.shape[:ax], dtype=np.int64))
    post = int(np.prod(w.shape[ax + 1 :], dtype=np.int64))
    return x, x.reshape(pre, w.shape[ax], post), ax


def _sum_of_squares(x3: np.ndarray) -> np.ndarray:
    """Per-group sum of squares of `x3` of shape `(pre, G, post)`, as float64 of shape `(G,)`.

    Large row and column groups are split across threads (rows by group, columns by blocks
    of rows whose partial sums are added in float64).
    """
    pre, n_groups, post = x3.shape
    if pre == 1:  # groups are contiguous rows: one dot product each
        x2 = x3[0]
        out = np.empty(n_groups, np.float64)

        def rows(a: int, b: int) -> None:
            out[a:b] = np.einsum("gq,gq->g", x2[a:b], x2[a:b])

        map_spans(rows, spans(n_groups, x3.size))
        return out
    if post == 1:  # groups are columns: one fused einsum per block of rows, added in float64
        x2 = x3[:, :, 0]
        step = max(1, min(_COL_ROWS, _BLOCK // n_groups))

        def columns(a: int, b: int) -> np.ndarray:
            acc = np.zeros(n_groups, np.float64)
            for i in range(a, b, step):
                block = x2[i : min(b, i + step)]
                acc += np.einsum("ij,ij->j", block, block)
            return acc

        return sum(map_spans(columns, spans(pre, x3.size, align=step)))
    acc = np.zeros(n_groups, np.float64)
    for p in range(pre):  # e.g. the kh * kw taps of a conv kernel
        acc += np.einsum("gq,gq->g", x3[p], x3[p])
    return acc


def _norms64(x3: np.ndarray, name: str = "w", *, nonfinite: bool = False) -> np.ndarray:
    """Group norms in float64, exact up to rounding for any finite input.

    NaN and inf are refused (`ValueError`), or with `nonfinite=True` reported: a group holding
    a NaN gets the norm NaN, a group holding an inf (and no NaN) the norm +inf.
    """
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        ss = _sum_of_squares(x3)
    # Sums that overflowed, came out NaN, or may have lost terms to underflow (zero groups
    # included) are redone, for those groups only, in float64 scaled by the group's max.
    tiny = np.finfo(x3.dtype).tiny / np.finfo(x3.dtype).eps
    suspect = np.flatnonzero(~(ss >= tiny) | (ss == np.inf))
    norms = np.sqrt(ss)
    if suspect.size:
        sub = x3[:, suspect, :].astype(np.float64)
        peak = np.abs(sub).max(axis=(0, 2))  # NaN if the group holds one (max propagates it)
        bad = ~np.isfinite(peak)
        if bad.any() and not nonfinite:
            raise ValueError(f"{name} must be finite; it holds NaN or inf")
        scale = np.where(peak > 0, peak, 1.0)
        scale[bad] = 1.0
        sub /= scale[None, :, None]
        norms[suspect] = np.where(bad, peak, scale * np.sqrt(np.einsum("pgq,pgq->g", sub, sub)))
    return norms


def _broadcast(v: np.ndarray, ndim: int, ax: int) -> np.ndarray:
    """Reshape a per-group vector so that it broadcasts along `group_axis`."""
    shape = [1] * ndim
    shape[ax] = v.size
    return v.reshape(shape)


def group_norms(w, group_axis: int = -2) -> np.ndarray:
    """L2 norm of each group: `g_j = ||W_j||_2`.

    Args:
        w: array of at least 2 dimensions.
        group_axis: the axis whose index names a group; the norm runs over all other axes.

    Returns:
        Shape `(w.shape[group_axis],)`, float32 for float16/bfloat16/float32 input, else float64.
    """
    x, x3, _ = _as_groups(w, group_axis)
    return _norms64(x3).astype(x.dtype)


def l21_norm(w, group_axis: int = -2) -> float:
    """The L2,1 norm (Eq. 13): `||W||_{2,1} = sum_j ||W_j||_2`, as a Python float."""
    _, x3, _ = _as_groups(w, group_axis)
    return float(_norms64(x3).sum())


def l21_subgradient(w, group_axis: int = -2) -> np.ndarray:
    """Minimum-norm subgradient of `||W||_{2,1}`: `W_j / ||W_j||_2`, and 0 on zero groups.

    Returns an array of `w`'s shape, in `w`'s dtype (float64 for integer input).
    """
    x, x3, ax = _as_groups(w, group_axis)
    norms = _norms64(x3)
    g = _broadcast(norms, x.ndim, ax)
    out = np.zeros(x.shape, np.float64 if g.max() > np.finfo(x.dtype).max else x.dtype)
    np.divide(x, g.astype(out.dtype), out=out, where=g > 0)
    # Groups so small that their entries may be subnormal (few significant bits): divide by
    # the group's max first, so the result has unit norm to rounding.
    info = np.finfo(x.dtype)
    small = np.flatnonzero((norms > 0) & (norms < info.tiny / info.eps))
    if small.size:
        sub = np.moveaxis(x, ax, 0)[small].astype(np.float64)
        axes = tuple(range(1, sub.ndim))
        sub /= np.abs(sub).max(axis=axes, keepdims=True)
        sub /= np.sqrt(np.sum(sub * sub, axis=axes, keepdims=True))
        np.moveaxis(out, ax, 0)[small] = sub
    return out.astype(_result_dtype(np.asarray(w).dtype), copy=False)


def _result_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if dtype.kind == "f" or dtype.name == "bfloat16" else np.dtype(np.float64)


def l21_prox(w, threshold: float, group_axis: int = -2, *, out: np.ndarray | None = None):
    """Proximal operator of `threshold * ||.||_{2,1}`: group soft-thresholding.

    `prox(W)_j = max(0, 1 - threshold / ||W_j||_2) * W_j`: a group whose norm is at most
    `threshold` becomes exactly 0; `threshold = 0` is the identity.

    Args:
        w: array of at least 2 dimensions.
        threshold: `t >= 0`, finite (for a proximal gradient step, `lr * lambda`).
        group_axis: the axis whose index names a group.
        out: optional array of `w`'s shape and result dtype to write into; `out=w` works
            in place.

    Returns:
        The thresholded array (`out` if given), in `w`'s dtype (float64 for integer input).
    """
    t = check_nonnegative(threshold, "threshold")
    x, x3, ax = _as_groups(w, group_axis)
    g = _norms64(x3)
    factor = np.zeros_like(g)
    keep = g > t
    factor[keep] = 1.0 - t / g[keep]
    dtype = _result_dtype(np.asarray(w).dtype)
    if out is None:
        out = _unaliased_empty(x.size, dtype, x).reshape(x.shape)
    elif not isinstance(out, np.ndarray) or out.shape != x.shape or out.dtype != dtype:
        raise ValueError(f"out must be an ndarray of shape {x.shape} and dtype {dtype}")
    scale = _broadcast(_unaliased_empty(factor.size, x.dtype, out), x.ndim, ax)
    scale.flat[:] = factor
    # Split along the first axis; `scale` is sliced with it only when it varies along it.
    lead = x.shape[0]

    def multiply(a: int, b: int) -> None:
        np.multiply(x[a:b], scale if ax else scale[a:b], out=out[a:b], casting="same_kind")

    map_spans(multiply, spans(lead, x.size))
    return out


def _unaliased_empty(size: int, dtype, other: np.ndarray) -> np.ndarray:
    """A 1-D empty array whose address is half a page away from `other`'s, modulo 4 KiB.

    A loop that loads one stream and stores another at the same address modulo 4 KiB stalls
    on the CPU's store-to-load alias check ("4K aliasing"); large allocations are page-aligned
    alike, so the prox's output and its column factors would hit it (measured 4.5x slower).
    """
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size + 4096 // itemsize, dtype)
    shift = (other.ctypes.data + 2048 - raw.ctypes.data) % 4096 // itemsize
    return raw[shift : shift + size]


def group_sparsity(w, group_axis: int = -2, atol: float = 0.0) -> float:
    """Fraction of groups whose L2 norm is `<= atol` (exactly zero for the default)."""
    atol = check_nonnegative(atol, "atol")
    _, x3, _ = _as_groups(w, group_axis)
    return float(np.mean(_norms64(x3) <= atol))


def sparsity_summary(w, group_axis: int = -2) -> dict[str, float]:
    """Scale-free sparsity of a head's weight, beside its raw L2,1 norm.

    A penalty can lower `||W||_{2,1}` by shrinking every group alike (BatchNorm after the
    layer and the cosine in InfoNCE/BYOL make the loss blind to that). These measures do not
    change when `W` is scaled as a whole, so they tell selection from shrinkage:

    - `l21`: `||W||_{2,1}`;
    - `groups`: the number of groups;
    - `groups_95_energy`: the fewest groups that hold 95 % of `||W||_F^2`;
    - `frac_below_1pct`, `frac_below_0p1pct`: fraction of groups whose norm is below 1 % or
      0.1 % of the largest group norm;
    - `zero_groups`: the number of groups that are exactly 0.
    """
    _, x3, _ = _as_groups(w, group_axis)
    g = _norms64(x3)
    energy = np.sort(g**2)[::-1]
    total = energy.sum()
    top = g.max()
    return {
        "l21": float(g.sum()),
        "groups": int(g.size),
        "groups_95_energy": int(np.searchsorted(np.cumsum(energy), 0.95 * total) + 1)
        if total > 0
        else 0,
        "frac_below_1pct": float(np.mean(g < 0.01 * top)) if top > 0 else 1.0,
        "frac_below_0p1pct": float(np.mean(g < 0.001 * top)) if top > 0 else 1.0,
        "zero_groups": int(np.count_nonzero(g == 0)),
    }
