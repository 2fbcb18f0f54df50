"""What every framework's `RankMonitor` shares: its argument checks and the measures it logs.

A rank monitor runs a fixed held-out batch `x` (`n` samples) through the backbone `f` and the
projection head `h` at the end of an epoch, then logs, for the representation `r = f(x)` and
the embedding `z = h(r)` (both `(n, d)`):

- `rankme_<space>`: RankMe (Garrido et al., 2023), `sparsehead.rankme`;
- `effective_rank_<space>`: effective rank (Roy & Vetterli, 2007), `sparsehead.effective_rank`;

the one-number summaries of the eigenvalue spectra of Fig. 1 and 3 of the paper. They need no
labels. The adapters only get `r` and `z` out of their framework; the numbers come from here.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_numeric_array, check_finite, check_int
from .spectrum import effective_rank, rankme

__all__ = ["MEASURES", "SPACES", "check_monitor", "check_output", "rank_measures"]

#: The logged measures, by name (the key is `f"{name}_{space}"`).
MEASURES = {"rankme": rankme, "effective_rank": effective_rank}
#: The two outputs a monitor measures.
SPACES = ("representation", "embedding")


def rank_measures(representation, embedding=None) -> dict[str, float]:
    """`{f"{measure}_{space}": value}` for the representation and, if given, the embedding.

    Each output is `(n, d)` as rows. One holding NaN or inf (a diverged run) gets NaN for its
    measures, never a rank.
    """
    out = {}
    for space, x in zip(SPACES, (representation, embedding), strict=True):
        if x is None:
            continue
        x = np.asarray(x, dtype=np.float64)
        finite = bool(np.isfinite(x).all())
        for name, measure in MEASURES.items():
            out[f"{name}_{space}"] = measure(x) if finite else float("nan")
    return out


def _check_part(value, name: str, optional: bool) -> None:
    if value is None and optional:
        return
    if not (isinstance(value, str) or callable(value)):
        raise TypeError(
            f"{name} must be a layer or module, a callable, or the name of the model's "
            f"attribute that holds one; got {type(value).__name__}"
        )


def check_monitor(x, backbone, head, every, batch_size, prefix) -> np.ndarray:
    """The checks of `RankMonitor`'s arguments, in every framework; returns `x` as an array.

    `x`: numbers, at least 2 dimensions (samples first), at least 2 samples, finite;
    `backbone`: a callable or an attribute name; `head`: the same or `None`; `every`,
    `batch_size`: ints `>= 1`; `prefix`: a str.
    """
    arr = as_numeric_array(x, "x")
    if arr.ndim < 2 or arr.shape[0] < 2 or arr.size == 0:
        raise ValueError(
            f"x must hold at least 2 samples along its first axis (samples, ...); "
            f"got shape {arr.shape}"
        )
    check_finite(arr, "x")
    _check_part(backbone, "backbone", optional=False)
    _check_part(head, "head", optional=True)
    check_int(every, "every", low=1)
    check_int(batch_size, "batch_size", low=1)
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str; got {type(prefix).__name__}")
    return arr


def check_output(y: np.ndarray, samples: int, name: str) -> np.ndarray:
    """`y`, the output of `name` (`backbone` or `head`) on `samples` rows, if it is
    `(samples, d)` with `d >= 1`; a `ValueError` naming `name` otherwise."""
    if y.ndim != 2 or y.shape[0] != samples or y.shape[1] == 0:
        raise ValueError(
            f"{name} must return one feature vector per sample, shape ({samples}, d); "
            f"got shape {y.shape}"
        )
    return y
