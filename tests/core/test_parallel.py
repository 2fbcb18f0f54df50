"""The threaded paths of the core: same results as brute force, for any number of threads.

Small inputs run inline, so `forced_threads` lowers the size thresholds (and the block sizes
that decide how many spans there can be) until the Hypothesis-sized arrays are split too.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from concurrent.futures import ThreadPoolExecutor
from unittest import mock

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import sparsehead as sh
from sparsehead import _parallel, groups

from .strategies import grouped_weights
from .test_groups import brute_group_norms, brute_prox


@contextlib.contextmanager
def forced_threads(n: int):
    with (
        mock.patch.dict(os.environ, {"SPARSEHEAD_NUM_THREADS": str(n)}),
        mock.patch.object(_parallel, "MIN_PARALLEL_ELEMENTS", 0),
        mock.patch.object(groups, "_COL_ROWS", 1),
    ):
        yield


# ---------------------------------------------------------------- spans


@given(
    n=st.integers(1, 500),
    threads=st.integers(1, 9),
    align=st.integers(1, 40),
)
def test_spans_tile_the_range_on_aligned_boundaries(n, threads, align):
    with mock.patch.dict(os.environ, {"SPARSEHEAD_NUM_THREADS": str(threads)}):
        parts = _parallel.spans(n, _parallel.MIN_PARALLEL_ELEMENTS, align=align)
    assert parts[0][0] == 0 and parts[-1][1] == n
    assert all(a < b for a, b in parts)
    assert all(parts[i][1] == parts[i + 1][0] for i in range(len(parts) - 1))
    assert all(b % align == 0 for _, b in parts[:-1])
    assert len(parts) <= threads
    if align == 1 and n >= threads:  # equal lengths, to within one
        lengths = [b - a for a, b in parts]
        assert len(parts) == threads and max(lengths) - min(lengths) <= 1


def test_small_work_runs_inline():
    with mock.patch.dict(os.environ, {"SPARSEHEAD_NUM_THREADS": "4"}):
        assert _parallel.spans(1000, _parallel.MIN_PARALLEL_ELEMENTS - 1) == [(0, 1000)]
        assert len(_parallel.spans(1000, _parallel.MIN_PARALLEL_ELEMENTS)) == 4


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_thread_count_names_the_variable(value):
    with mock.patch.dict(os.environ, {"SPARSEHEAD_NUM_THREADS": value}):
        with pytest.raises(ValueError, match="SPARSEHEAD_NUM_THREADS"):
            _parallel.num_threads()


def test_thread_count_from_environment():
    with mock.patch.dict(os.environ, {"SPARSEHEAD_NUM_THREADS": "3"}):
        assert _parallel.num_threads() == 3


def test_map_spans_keeps_order_and_runs_every_span_once():
    seen = []
    parts = [(0, 3), (3, 5), (5, 9)]
    assert _parallel.map_spans(lambda a, b: seen.append(a) or (a, b), parts) == parts
    assert sorted(seen) == [0, 3, 5]


def test_map_spans_waits_for_the_others_when_one_fails():
    import threading

    done = threading.Event()

    def work(a, b):
        if a == 0:
            raise ZeroDivisionError("first span")
        time.sleep(0.05)
        done.set()

    with pytest.raises(ZeroDivisionError):
        _parallel.map_spans(work, [(0, 1), (1, 2)])
    assert done.is_set()  # no thread was left writing after the call returned


def test_map_spans_runs_inline_when_no_thread_can_start():
    # After interpreter shutdown has begun, a pool refuses work with RuntimeError.
    refusing = ThreadPoolExecutor(1)
    refusing.shutdown()
    with mock.patch.object(_parallel, "_executor", lambda workers: refusing):
        assert _parallel.map_spans(lambda a, b: b - a, [(0, 2), (2, 7)]) == [2, 5]


# ---------------------------------------------------------------- results


@given(grouped_weights(), st.integers(2, 5))
def test_threaded_norms_and_prox_match_brute_force(case, threads):
    w, ax = case
    t = float(np.median(brute_group_norms(w, ax)))
    with forced_threads(threads):
        norms = sh.group_norms(w, ax)
        prox = sh.l21_prox(w, t, ax)
        in_place = w.copy()
        sh.l21_prox(in_place, t, ax, out=in_place)
    np.testing.assert_allclose(norms, brute_group_norms(w, ax), rtol=1e-12)
    expected = brute_prox(w, t, ax)
    scale = np.abs(w).max()
    np.testing.assert_allclose(prox, expected, rtol=1e-12, atol=1e-12 * scale)
    np.testing.assert_array_equal(in_place, prox)


@given(grouped_weights(dtype=np.float32), st.integers(2, 5))
def test_threaded_float32_norms_within_1e6(case, threads):
    w, ax = case
    with forced_threads(threads):
        got = sh.group_norms(w, ax)
    np.testing.assert_allclose(
        got, brute_group_norms(w, ax), rtol=1e-6, atol=np.finfo(np.float32).smallest_subnormal
    )


@pytest.mark.parametrize("group_axis", [-2, -1])
def test_default_threading_on_a_large_matrix(group_axis):
    # 1024 x 1024 is the smallest size split across threads by default: compared with one
    # thread, row groups give bitwise the same result; column groups only add the float64
    # partial sums in another order.
    w = np.random.default_rng(1).standard_normal((1024, 1024)).astype(np.float32)
    t = float(np.median(sh.group_norms(w, group_axis)))  # zeroes about half the groups
    with mock.patch.dict(os.environ, {"SPARSEHEAD_NUM_THREADS": "1"}):
        one = sh.l21_prox(w, t, group_axis)
    with mock.patch.dict(os.environ, {"SPARSEHEAD_NUM_THREADS": "2"}):
        two = sh.l21_prox(w, t, group_axis)
    if group_axis == -2:
        np.testing.assert_array_equal(two, one)
    else:
        np.testing.assert_allclose(two, one, rtol=2 * np.finfo(np.float32).eps)
    assert 0 < sh.group_sparsity(one, group_axis) < 1


def _prox_in_child(queue):
    with forced_threads(2):
        queue.put(float(sh.l21_norm(sh.l21_prox(np.ones((8, 8)), 1.0))))


@pytest.mark.skipif(
    "fork" not in multiprocessing.get_all_start_methods(), reason="needs os.fork (POSIX)"
)
def test_forked_child_gets_its_own_threads():
    # A thread pool does not survive fork(); a child that reused the parent's would hang.
    with forced_threads(2):
        sh.l21_prox(np.ones((8, 8)), 1.0)  # the parent's pool now exists
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_prox_in_child, args=(queue,))
    child.start()
    child.join(timeout=60)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung on the parent's thread pool")
    assert queue.get(timeout=5) == pytest.approx(8 * (np.sqrt(8) - 1))
