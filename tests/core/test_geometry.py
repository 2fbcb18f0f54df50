"""The min-max distance ratio (Eq. 9) against a plain loop, and its invariances."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

import sparsehead as sh
import sparsehead.geometry as geometry

from .strategies import embeddings


def ratio_loop(z):
    """Eq. 9: (max_i ||z - z_i|| - min_i ||z - z_i||) / min_i ||z - z_i||, for each row."""
    z = np.asarray(z, dtype=np.float64)
    out = []
    for i in range(len(z)):
        d = [math.dist(z[i], z[j]) for j in range(len(z)) if j != i]
        out.append(math.inf if min(d) == 0 else (max(d) - min(d)) / min(d))
    return np.array(out)


def assert_ratio_close(actual, expected, rtol):
    # max - min cancels when the two are close: each distance carries a few ulps of error,
    # an absolute error of ~1e-16 * (1 + ratio) in the ratio, whatever the ratio's size.
    np.testing.assert_array_equal(np.isinf(actual), np.isinf(expected))
    f = np.isfinite(expected)
    err = np.abs(actual[f] - expected[f])
    assert np.all(err <= rtol * expected[f] + 1e-13 * (1 + expected[f])), (actual, expected)


@given(embeddings(n_min=2, n_max=12))
def test_matches_eq9_loop(z):
    assert_ratio_close(sh.min_max_distance_ratio(z), ratio_loop(z), rtol=1e-9)


@given(embeddings(n_min=2, n_max=12), st.floats(1e-3, 1e3), st.floats(-100, 100))
def test_scale_and_translation_invariant(z, c, shift):
    # Scaling and shifting round each coordinate once (relative 1.1e-16 of |c z| + |shift|):
    # the property holds where every distance is well above that rounding.
    d = [math.dist(a, b) for i, a in enumerate(z) for b in z[i + 1 :]]
    assume(min(d) > 1e-6 * (1 + np.abs(z).max()))
    assert_ratio_close(
        sh.min_max_distance_ratio(c * z + shift), sh.min_max_distance_ratio(z), rtol=1e-6
    )


def test_duplicate_row_gives_inf():
    z = np.array([[0.0, 1.0], [0.0, 1.0], [3.0, 4.0]], dtype=np.float32)
    r = sh.min_max_distance_ratio(z)
    assert r[0] == math.inf and r[1] == math.inf
    np.testing.assert_allclose(r[2], ratio_loop(z)[2], rtol=1e-12)


def test_float32_blocks_and_near_ties_are_exact(monkeypatch):
    # Small blocks force many chunks; near-duplicate points stress the GEMM's cancellation,
    # which the exact float64 recomputation of the candidates must undo.
    monkeypatch.setattr(geometry, "_CHUNK_BYTES", 4 * 300 * 7)
    monkeypatch.setattr(geometry, "_PAIRS_PER_BATCH", 5)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((100, 16)).astype(np.float32) * 100
    z = np.concatenate([base, base + np.float32(1e-3), base[:50] * np.float32(1.5)])
    z = z.astype(np.float32)
    np.testing.assert_allclose(sh.min_max_distance_ratio(z), ratio_loop(z), rtol=1e-12)


def test_uniform_grid_closed_form():
    # Points 0, 1, ..., n-1 on a line: for point k, min distance 1, max distance max(k, n-1-k).
    n = 9
    z = np.arange(n, dtype=np.float64)[:, None]
    expected = [max(k, n - 1 - k) - 1 for k in range(n)]
    np.testing.assert_allclose(sh.min_max_distance_ratio(z), expected, rtol=1e-12)


def test_all_rows_equal_are_inf():
    assert np.all(np.isinf(sh.min_max_distance_ratio(np.ones((5, 3)))))
