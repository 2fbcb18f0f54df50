"""The min-max distance ratio of embeddings (Eq. 9), exact and in bounded memory."""

from __future__ import annotations

import numpy as np

from ._validation import as_numeric_array, check_finite, compute_dtype

__all__ = ["min_max_distance_ratio"]

_CHUNK_BYTES = 32 << 20  # one block of the distance matrix
_PAIRS_PER_BATCH = 1 << 16  # exact recomputation, pairs at a time


def min_max_distance_ratio(z) -> np.ndarray:
    """Eq. 9 for every row of `z` as the query and all other rows as the support set.

        M_i = (max_{j != i} ||z_i - z_j|| - min_{j != i} ||z_i - z_j||) / min_{j != i} ||z_i - z_j||

    A small ratio means the nearest and farthest neighbours are hard to tell apart (the
    concentration of distances that Sec. 5 ties to the head's dimension).

    Distances are found with a blocked GEMM in `z`'s precision (float32 for float32 input),
    then the nearest and farthest neighbour of each row are recomputed exactly in float64
    among every candidate that the GEMM's rounding-error bound cannot rule out. Per block of
    rows: one GEMM (which also adds the squared norms), one min, one max, and one comparison
    each to find the candidates, all in preallocated buffers. The result is
    translation and scale invariant, and memory stays bounded (about 32 MiB of distance block
    plus two copies of `z`) whatever the number of rows.

    Args:
        z: `(n, m)` embeddings, `n >= 2`.

    Returns:
        `(n,)` float64. A row with an exact duplicate has minimum distance 0 and ratio `inf`.
    """
    z = as_numeric_array(z, "z")
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] == 0:
        raise ValueError(f"z must be 2-D with at least 2 rows and 1 column; got shape {z.shape}")
    check_finite(z, "z")
    # Exact distances are taken on z scaled by a power of two (exact, no overflow); the GEMM
    # runs on a centred copy scaled to [-1, 1] (same ratio, well-conditioned).
    z64 = z.astype(np.float64)
    peak = np.abs(z64).max()
    if peak > 0:
        z64 = np.ldexp(z64, -np.frexp(peak)[1])
    x64 = z64 - z64.mean(axis=0)
    spread = np.abs(x64).max()
    if spread > 0:
        x64 /= spread
    x = x64.astype(compute_dtype(z.dtype))
    n, m = x.shape
    sq = np.einsum("ij,ij->i", x64, x64)
    del x64
    # |fl(sq_j - 2 <x_i, x_j>) - (sq_j - 2 <x_i, x_j>)| <= err_i for every j (a dot product of
    # m + 1 terms in precision eps, the last one sq_j, itself rounded once); candidates lie
    # within 2 * err_i.
    eps = np.finfo(x.dtype).eps
    err = 2.0 * (m + 4) * eps * (sq + sq.max())
    # One GEMM gives sq_j - 2 <x_i, x_j> = ||x_i - x_j||^2 - sq_i directly: rows [x_i, 1]
    # times columns [-2 x_j, sq_j] (no separate pass to add sq, no temporaries per block).
    left = np.empty((n, m + 1), x.dtype)
    left[:, :m] = x
    left[:, m] = 1
    right = np.empty((n, m + 1), x.dtype)
    np.multiply(x, -2, out=right[:, :m])
    right[:, m] = sq
    del x
    right_t = right.T

    d_min = np.empty(n)
    d_max = np.empty(n)
    rows = max(1, min(n, _CHUNK_BYTES // (left.itemsize * n)))
    buf = np.empty((rows, n), left.dtype)
    mask = np.empty((rows, n), bool)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        k = stop - start
        block = np.matmul(left[start:stop], right_t, out=buf[:k])
        local = np.arange(k)
        block[local, start + local] = np.inf
        low = block.min(axis=1).astype(np.float64) + 2 * err[start:stop]
        cand = np.less_equal(block, low[:, None].astype(block.dtype), out=mask[:k])
        d_min[start:stop] = _exact(z64, start, cand, np.minimum)
        block[local, start + local] = -np.inf
        high = block.max(axis=1).astype(np.float64) - 2 * err[start:stop]
        cand = np.greater_equal(block, high[:, None].astype(block.dtype), out=mask[:k])
        d_max[start:stop] = _exact(z64, start, cand, np.maximum)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = (d_max - d_min) / d_min
    ratio[d_min == 0] = np.inf
    return ratio


def _exact(x64: np.ndarray, start: int, candidates: np.ndarray, reduce: np.ufunc) -> np.ndarray:
    """Per row of the block, `reduce` of the exact distances to its candidate columns."""
    # Row-major flat indices (2-D nonzero is ~30x slower): r is sorted, every row has one.
    r, c = np.divmod(np.flatnonzero(candidates), candidates.shape[1])
    dist = np.empty(r.size)
    for i in range(0, r.size, _PAIRS_PER_BATCH):
        diff = x64[start + r[i : i + _PAIRS_PER_BATCH]] - x64[c[i : i + _PAIRS_PER_BATCH]]
        peak = np.abs(diff).max(axis=1)  # scaled like hypot: tiny distances do not underflow
        diff /= np.where(peak > 0, peak, 1.0)[:, None]
        dist[i : i + _PAIRS_PER_BATCH] = peak * np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return reduce.reduceat(dist, np.searchsorted(r, np.arange(candidates.shape[0])))
