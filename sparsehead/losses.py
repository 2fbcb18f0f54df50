"""The self-supervised objectives the paper regularizes: InfoNCE (Eq. 2), BYOL, Barlow Twins.

Embeddings are rows: `z1[i]` and `z2[i]` are the two views of sample `i`, shape `(N, m)`.
float16/bfloat16 inputs are computed in float32, float32 in float32, the rest in float64.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_numeric_array,
    check_finite,
    check_nonnegative,
    check_positive,
    compute_dtype,
)

__all__ = ["barlow_twins_loss", "byol_loss", "cosine_similarity", "info_nce", "l2_normalize"]

_REDUCTIONS = ("mean", "sum", "none")
_BLOCK_ELEMS = 1 << 16  # elements of one block of rows of the similarity matrix: in L2 cache


def _pair(z1, z2, names=("z1", "z2"), min_rows: int = 1, check_values: bool = True):
    a = as_numeric_array(z1, names[0])
    b = as_numeric_array(z2, names[1])
    for arr, name in ((a, names[0]), (b, names[1])):
        if arr.ndim != 2:
            raise ValueError(f"{name} must be 2-D (batch, features); got shape {arr.shape}")
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; got {a.shape} and {b.shape}"
        )
    if a.shape[0] < min_rows or a.shape[1] == 0:
        raise ValueError(
            f"{names[0]} must hold at least {min_rows} rows and 1 feature (an empty batch has no "
            f"loss); got shape {a.shape}"
        )
    if check_values:
        check_finite(a, names[0])
        check_finite(b, names[1])
    dtype = np.result_type(compute_dtype(a.dtype), compute_dtype(b.dtype))
    return a.astype(dtype, copy=False), b.astype(dtype, copy=False)


def _reduce(per_item: np.ndarray, reduction: str):
    if reduction == "mean":
        return float(per_item.mean())
    if reduction == "sum":
        return float(per_item.sum())
    return per_item


def _check_reduction(reduction) -> str:
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    return reduction


def l2_normalize(z: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm; a zero row stays zero (so its cosine with anything is 0)."""
    sq = np.einsum("ij,ij->i", z, z)
    info = np.finfo(z.dtype)
    if np.all((sq >= info.tiny / info.eps) & (sq <= info.max)):  # no row over- or underflowed
        return z * (1.0 / np.sqrt(sq)).astype(z.dtype)[:, None]
    scale = np.max(np.abs(z), axis=-1, keepdims=True)  # avoids overflow and underflow
    scale[scale == 0] = 1
    u = z / scale
    n = np.sqrt(np.einsum("ij,ij->i", u, u))[:, None]
    n[n == 0] = 1
    u /= n
    return u


def cosine_similarity(a, b) -> np.ndarray:
    """Row-wise `cos(a_i, b_i) = <a_i, b_i> / (||a_i|| ||b_i||)`, 0 where a row is zero."""
    a, b = _pair(a, b, ("a", "b"))
    return np.einsum("ij,ij->i", l2_normalize(a), l2_normalize(b))


def info_nce(z1, z2, temperature: float = 0.5, reduction: str = "mean"):
    """InfoNCE / NT-Xent (Eq. 2) over the 2N embeddings of a batch of N pairs.

    With `Z = [z1; z2]` (2N rows), `s_ab = cos(Z_a, Z_b) / temperature` and `p(a)` the other
    view of anchor `a`:

        loss_a = -log( exp(s_{a,p(a)}) / sum_{b != a} exp(s_ab) )

    The denominator runs over all 2N - 1 other embeddings, the positive included. Eq. 2 is
    `reduction="sum"` over the 2N anchors; `"mean"` divides by 2N; `"none"` returns the 2N
    per-anchor losses (rows of `z1` first, then `z2`).

    Args:
        z1: `(N, m)` embeddings of the first view; zero rows are allowed (cosine 0).
        z2: `(N, m)` embeddings of the second view, row `i` the positive of `z1[i]`.
        temperature: `tau > 0`; the paper uses 0.5.
        reduction: `"mean"`, `"sum"` or `"none"`.
    """
    tau = check_positive(temperature, "temperature")
    _check_reduction(reduction)
    a, b = _pair(z1, z2, check_values=False)  # checked by `_unit_rows`' own pass
    return _reduce(_info_nce_rows(_unit_rows(a, b, 1.0 / tau), 1.0 / tau), reduction)


def _unit_rows(a: np.ndarray, b: np.ndarray, inv_tau: float) -> np.ndarray:
    """`[a; b]` with unit rows times `sqrt(inv_tau)`, a new `(2N, m)` array written in one pass.

    The row norms are the only pass over the inputs before it: a NaN or inf in `a` or `b`
    makes its row's square sum non-finite, and only then are the inputs checked element-wise
    (for the error message) or, when a finite row overflowed, normalized safely.
    """
    sq = [np.einsum("ij,ij->i", x, x) for x in (a, b)]
    info = np.finfo(a.dtype)
    v = np.empty((2 * a.shape[0], a.shape[1]), a.dtype)
    if all(np.all((s >= info.tiny / info.eps) & (s <= info.max)) for s in sq):
        for x, s, out in zip((a, b), sq, np.split(v, 2), strict=True):
            np.multiply(x, (np.sqrt(inv_tau) / np.sqrt(s)).astype(a.dtype)[:, None], out=out)
        return v
    check_finite(a, "z1")
    check_finite(b, "z2")
    for x, out in zip((a, b), np.split(v, 2), strict=True):
        np.multiply(l2_normalize(x), a.dtype.type(np.sqrt(inv_tau)), out=out)
    return v


def _info_nce_rows(v: np.ndarray, inv_tau: float) -> np.ndarray:
    """Per-anchor InfoNCE of the rows of `v` (2N, m), in one GEMM and one pass over its result.

    `v` holds the unit rows of `[z1; z2]` times `sqrt(inv_tau)` (`_unit_rows`), so
    `S = v v^T` (a symmetric rank-k update: half a GEMM) holds the logits `cos / tau`.
    Since `|cos| <= 1`, every logit is at most `c = 1/tau`: the exponentials need no row max;
    they are taken unshifted while `e^c` fits the dtype, else shifted by `c`. Each cache-sized
    block of rows of the upper triangle is exponentiated and summed in place. With `p` the
    positive's logit and `R` the (shifted) sum over the negatives, the loss is
    `log(e^(p-shift) + R) - (p - shift)`, formed in float64, so it stays accurate also when
    the positive dominates and the loss is tiny. A row whose `R` is so small that terms may
    have underflowed is redone in float64 with its own max as the shift.
    """
    m = v.shape[0]
    n = m // 2
    dtype = v.dtype
    info = np.finfo(dtype)
    s = v @ v.T
    idx = np.arange(m)
    pos = (idx + n) % m
    positive = s[idx, pos].astype(np.float64)
    s[idx, idx] = -np.inf
    s[idx, pos] = -np.inf
    shift = 0.0 if inv_tau < 0.9 * np.log(info.max) else inv_tau
    # S is symmetric: exponentiate only the upper triangle, block by block (rows [r0, r1),
    # columns [r0, m)); its row sums serve rows r0..r1 and its column sums (past the square
    # diagonal part) serve the rows below, so each exp is taken once for two entries.
    rest = np.zeros(m)
    rows = max(1, min(m, _BLOCK_ELEMS // m))
    for start in range(0, m, rows):
        stop = min(m, start + rows)
        block = s[start:stop, start:]
        if shift:
            block -= dtype.type(shift)
        np.exp(block, out=block)
        rest[start:stop] += block.sum(axis=1)
        rest[stop:] += block[:, stop - start :].sum(axis=0)
    del s
    lp = positive - shift
    with np.errstate(divide="ignore"):
        loss = np.logaddexp(lp, np.log(rest)) - lp
    redo = np.flatnonzero(~(rest >= m * info.tiny / info.eps))  # terms may have underflowed
    if redo.size:  # exact log-sum-exp for those rows, shifted by each row's own max
        u64 = l2_normalize(v.astype(np.float64))
        t = (u64[redo] @ u64.T) * inv_tau
        t[np.arange(redo.size), redo] = -np.inf
        top = t.max(axis=1, keepdims=True)
        lse = top[:, 0] + np.log(np.exp(t - top).sum(axis=1))
        loss[redo] = lse - t[np.arange(redo.size), pos[redo]]
    return loss


def byol_loss(p, z, reduction: str = "mean"):
    """BYOL's regression loss: `2 - 2 cos(p_i, z_i)` per row.

    Args:
        p: `(N, m)` predictions of the online network for one view.
        z: `(N, m)` target projections of the other view (treated as constants in training).
        reduction: `"mean"` (default), `"sum"` or `"none"`.
    """
    _check_reduction(reduction)
    p, z = _pair(p, z, ("p", "z"))
    return _reduce(2.0 - 2.0 * np.einsum("ij,ij->i", l2_normalize(p), l2_normalize(z)), reduction)


def barlow_twins_loss(z1, z2, lambda_offdiag: float = 5e-3, eps: float = 1e-5) -> float:
    """Barlow Twins: `sum_i (1 - C_ii)^2 + lambda_offdiag * sum_{i != j} C_ij^2`.

    `C = zn1^T zn2 / N` is the `(m, m)` cross-correlation of the embeddings, each normalised
    along the batch as BatchNorm without affine does: `zn = (z - mean) / sqrt(var + eps)`,
    `var` the biased batch variance.

    Args:
        z1: `(N, m)` embeddings of the first view, `N >= 2`.
        z2: `(N, m)` embeddings of the second view.
        lambda_offdiag: weight of the redundancy-reduction term (5e-3 in Barlow Twins).
        eps: added to the variance, as in BatchNorm (keeps constant features finite).
    """
    lam = check_nonnegative(lambda_offdiag, "lambda_offdiag")
    eps = check_nonnegative(eps, "eps")
    a, b = _pair(z1, z2, min_rows=2)
    n = a.shape[0]

    def standardize(z):
        zc = z - z.mean(axis=0)
        return zc / np.sqrt(np.mean(zc * zc, axis=0) + eps)

    c = standardize(a).T @ standardize(b) / n
    on = np.sum((1.0 - np.diagonal(c)) ** 2, dtype=np.float64)
    c2 = c * c
    np.fill_diagonal(c2, 0)
    return float(on + lam * np.sum(c2, dtype=np.float64))
