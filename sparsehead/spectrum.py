"""Spectrum diagnostics of representations and embeddings (Fig. 1 and 3 of the paper)."""

from __future__ import annotations

import numpy as np

from ._validation import as_numeric_array, check_finite, check_nonnegative

__all__ = ["effective_rank", "eigenvalue_spectrum", "rankme"]


def _rows(x, min_rows: int = 1) -> np.ndarray:
    x = as_numeric_array(x, "x")
    if x.ndim != 2 or x.shape[0] < min_rows or x.shape[1] == 0:
        raise ValueError(
            f"x must be 2-D (samples, features) with at least {min_rows} rows; got shape {x.shape}"
        )
    check_finite(x, "x")
    return x.astype(np.float64)


def _centred(x: np.ndarray) -> np.ndarray:
    """`x - mean(x)`, exactly 0 when all rows are equal: the first row is subtracted first
    (the mean of n equal floats is not always that float: 0.1 + 0.1 + 0.1 = 0.30000000000000004)."""
    y = x - x[0]
    return y - y.mean(axis=0)


def eigenvalue_spectrum(x) -> np.ndarray:
    """Eigenvalues of the sample covariance of the rows of `x`, descending, clipped at 0.

    `C = (x - mean)^T (x - mean) / (n - 1)`, shape `(d, d)`; returns its `d` eigenvalues.
    Fig. 1 and 3 plot these on a log scale: a collapsed dimension shows as a cliff.

    Args:
        x: `(n, d)` representations or embeddings, `n >= 2`.
    """
    x = _rows(x, min_rows=2)
    xc = _centred(x)
    cov = xc.T @ xc / (x.shape[0] - 1)
    return np.clip(np.linalg.eigvalsh(cov)[::-1], 0.0, None)


def _entropy_exp(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(np.exp(-np.sum(p * np.log(p))))


def effective_rank(x) -> float:
    """Effective rank (Roy & Vetterli, 2007): `exp(H(p))`, `p = s / sum(s)`.

    `s` are the singular values of the centred `x` and `H` the Shannon entropy (nats). It lies
    in `[1, min(n, d)]`; a centred `x` that is exactly zero (all rows equal) has rank 0.

    Args:
        x: `(n, d)` samples as rows.
    """
    x = _rows(x)
    s = np.linalg.svd(_centred(x), compute_uv=False)
    total = s.sum()
    return _entropy_exp(s / total) if total > 0 else 0.0


def rankme(x, eps: float = 1e-7) -> float:
    """RankMe (Garrido et al., 2023): `exp(-sum_k p_k log p_k)`, `p = s / ||s||_1 + eps`.

    `s` are the singular values of the *uncentred* `x`, as in the RankMe paper.

    Args:
        x: `(n, d)` embeddings as rows.
        eps: the small constant RankMe adds to every `p_k`.
    """
    eps = check_nonnegative(eps, "eps")
    s = np.linalg.svd(_rows(x), compute_uv=False)
    total = s.sum()
    p = (s / total if total > 0 else np.zeros_like(s)) + eps
    return _entropy_exp(p)
