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
    among every candidate that the GEMM's rounding-error bound cannot rule out. The result is
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
    # |fl(sq_j - 2 <x_i, x_j>) - (sq_j - 2 <x_i, x_j>)| <= err_i for every j (dot products of
    # length m in precision eps, then two additions); candidates lie within 2 * err_i.
    eps = np.finfo(x.dtype).eps
    err = 2.0 * (m + 4) * eps * (sq + sq.max())

    d_min = np.empty(n)
    d_max = np.empty(n)
    rows = max(1, _CHUNK_BYTES // (x.itemsize * n))
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        block = (-2 * x[start:stop]) @ x.T  # ||x_i - x_j||^2 - sq_i, up to rounding
        block += sq.astype(x.dtype)
        local = np.arange(stop - start)
        block[local, start + local] = np.inf
        low = block.min(axis=1).astype(np.float64) + 2 * err[start:stop]
        d_min[start:stop] = _exact(z64, start, block <= low[:, None].astype(x.dtype), np.minimum)
        block[local, start + local] = -np.inf
        high = block.max(axis=1).astype(np.float64) - 2 * err[start:stop]
        d_max[start:stop] = _exact(z64, start, block >= high[:, None].astype(x.dtype), np.maximum)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = (d_max - d_min) / d_min
    ratio[d_min == 0] = np.inf
    return ratio


def _exact(x64: np.ndarray, start: int, candidates: np.ndarray, reduce: np.ufunc) -> np.ndarray:
    """Per row of the block, `reduce` of the exact distances to its candidate columns."""
    r, c = np.nonzero(candidates)  # row-major: r is sorted, every row has a candidate
    dist = np.empty(r.size)
    for i in range(0, r.size, _PAIRS_PER_BATCH):
        diff = x64[start + r[i : i + _PAIRS_PER_BATCH]] - x64[c[i : i + _PAIRS_PER_BATCH]]
        peak = np.abs(diff).max(axis=1)  # scaled like hypot: tiny distances do not underflow
        diff /= np.where(peak > 0, peak, 1.0)[:, None]
        dist[i : i + _PAIRS_PER_BATCH] = peak * np.sqrt(np.einsum("ij,ij->i", diff, diff))
    return reduce.reduceat(dist, np.searchsorted(r, np.arange(candidates.shape[0])))
