"""The NumPy core against the machine's limits (read pass, copy, GEMM) and against peers."""

from __future__ import annotations

import contextlib
import os

import numpy as np

import sparsehead as sh
from sparsehead._parallel import map_spans, spans

from ._harness import Row, peak_extra_bytes, ratio_row, value_row

__all__ = [
    "bench_info_nce",
    "bench_info_nce_memory",
    "bench_l21_norm",
    "bench_l21_prox",
    "bench_min_max",
    "bench_peers",
]

_RNG = np.random.default_rng(0)
_MIB = 1 << 20


def _weights(shape, dtype=np.float32) -> np.ndarray:
    return _RNG.standard_normal(shape, dtype=np.float32).astype(dtype)


def bench_l21_norm(quick: bool) -> list[Row]:
    n = 256 if quick else 4096
    reps = 5 if quick else 41
    w = _weights((n, n))
    rows = []
    for axis, limit in ((-2, 1.4), (-1, 1.8)):
        kind = "row" if axis == -2 else "column"
        rows.append(
            ratio_row(
                "l21_norm",
                f"l21_norm {n}x{n} f32, {kind} groups (group_axis={axis})",
                "W.sum()",
                lambda axis=axis: sh.l21_norm(w, group_axis=axis),
                w.sum,
                reps=reps,
                limit=limit,
            )
        )
    return rows


def bench_l21_prox(quick: bool) -> list[Row]:
    n = 256 if quick else 4096
    reps = 5 if quick else 41
    w = _weights((n, n))
    dst = np.empty_like(w)
    t = 1e-3  # keeps every group: repeated in-place steps barely change w
    # The reference is np.copyto, on one core. The prox splits its passes across the
    # cores (sparsehead._parallel), so each row is also timed against a copy split alike.
    parts = spans(n, w.size)

    def threaded_copy():
        map_spans(lambda a, b: np.copyto(dst[a:b], w[a:b]), parts)

    threads = f"{len(parts)} thread" + "s" * (len(parts) > 1)
    references = (
        ("np.copyto", lambda: np.copyto(dst, w)),
        (f"np.copyto split over {threads}", threaded_copy),
    )
    rows = []
    for axis in (-2, -1):
        kind = "row" if axis == -2 else "column"
        for what, limit, out in (("in place (out=w)", 1.5, w), ("new array", 2.2, None)):
            for baseline, copy in references:
                rows.append(
                    ratio_row(
                        "l21_prox",
                        f"l21_prox {n}x{n} f32 {what}, {kind} groups",
                        baseline,
                        lambda axis=axis, out=out: sh.l21_prox(w, t, group_axis=axis, out=out),
                        copy,
                        reps=reps,
                        limit=limit,
                    )
                )
    rows += _prox_threads(quick)
    return rows


def _prox_threads(quick: bool) -> list[Row]:
    """The prox with the core's choice of threads against one thread: in place, 1024x1024
    float32 (4 MiB, where a split lost: issue 20) and 2048x2048 (16 MiB, where it wins)."""
    rows = []
    for n, sense, limit in ((1024, "<=", 1.0), (2048, "<=", 0.8)):
        n = n // 4 if quick else n
        w = _weights((n, n))

        def prox(w=w):
            sh.l21_prox(w, 1e-3, group_axis=-2, out=w)

        def one_thread(w=w):
            with _env(SPARSEHEAD_NUM_THREADS="1"):
                sh.l21_prox(w, 1e-3, group_axis=-2, out=w)

        threads = len(spans(n, w.size))
        rows.append(ratio_row("l21_prox", f"l21_prox {n}x{n} f32 in place, {threads} thread"
                              + "s" * (threads > 1) + " (the core's choice)", "one thread",
                              prox, one_thread, reps=11 if quick else 101, sense=sense,
                              limit=limit))  # fmt: skip
    return rows


@contextlib.contextmanager
def _env(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def bench_peers(quick: bool) -> list[Row]:
    n = 256 if quick else 4096
    reps = 5 if quick else 21
    w = _weights((n, n))
    t = 1e-3
    rows = []
    try:
        import pyproximal
    except ImportError:
        rows.append(_skipped("peers", "pyproximal L21.prox", "pyproximal not installed", 8))
    else:
        op = pyproximal.L21(ndim=n, sigma=1.0)
        flat = w.ravel()  # pyproximal's layout: (ndim, N), groups are the columns
        rows.append(
            ratio_row(
                "peers",
                f"speed-up over pyproximal L21.prox, {n}x{n} f32 column groups",
                "pyproximal.L21(ndim).prox",
                lambda: sh.l21_prox(w, t, group_axis=-1),
                lambda: op.prox(flat, t),
                reps=reps,
                sense=">=",
                limit=8.0,
                invert=True,
            )
        )
    try:
        import jax
        import jax.numpy as jnp
        from jaxopt.prox import prox_group_lasso
    except ImportError:
        rows.append(_skipped("peers", "jaxopt prox_group_lasso", "jax/jaxopt not installed", 3))
    else:
        prox = jax.jit(jax.vmap(prox_group_lasso, in_axes=(0, None)))
        wj = jnp.asarray(w)
        rows.append(
            ratio_row(
                "peers",
                f"speed-up over jaxopt prox_group_lasso, {n}x{n} f32 row groups",
                "jit(vmap(prox_group_lasso))",
                lambda: sh.l21_prox(w, t, group_axis=-2),
                lambda: prox(wj, t).block_until_ready(),
                reps=reps,
                sense=">=",
                limit=3.0,
                invert=True,
            )
        )
    return rows


def bench_info_nce(quick: bool) -> list[Row]:
    two_n = 128 if quick else 1024
    reps = 5 if quick else 41
    rows = []
    for d, limit in ((2048, 1.3), (128, 1.5)):
        d = d // 8 if quick else d
        z = _weights((two_n, d))
        z1, z2 = z[: two_n // 2], z[two_n // 2 :]
        rows.append(
            ratio_row(
                "info_nce",
                f"info_nce 2N={two_n}, d={d} f32",
                "Z @ Z.T",
                lambda z1=z1, z2=z2: sh.info_nce(z1, z2, 0.5),
                lambda z=z: z @ z.T,
                reps=reps,
                limit=limit,
            )
        )
    return rows


def bench_info_nce_memory(quick: bool) -> list[Row]:
    two_n, d = (512, 128) if quick else (8192, 128)
    z = _weights((two_n, d))
    z1, z2 = z[: two_n // 2], z[two_n // 2 :]
    sim_bytes = two_n * two_n * 4
    peaks = peak_extra_bytes(lambda: sh.info_nce(z1, z2, 0.5), reps=1 if not quick else 2)
    row = value_row(
        "memory",
        f"info_nce peak extra memory, 2N={two_n}, d={d} f32",
        f"2N x 2N f32 matrix ({sim_bytes / _MIB:.0f} MiB)",
        [p / sim_bytes for p in peaks],
        limit=4.0,
        note=f"peak {max(peaks) / _MIB:.0f} MiB",
    )
    return [row]


def bench_min_max(quick: bool) -> list[Row]:
    n, m = (2000, 32) if quick else (50_000, 128)
    reps = 3
    z = _weights((n, m))
    chunk = max(1, (32 << 20) // (4 * n))
    buf = np.empty((chunk, n), np.float32)

    def gemm():
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            np.matmul(z[start:stop], z.T, out=buf[: stop - start])

    rows = [
        ratio_row(
            "min_max",
            f"min_max_distance_ratio {n}x{m} f32",
            f"chunked Z @ Z.T ({chunk}-row blocks)",
            lambda: sh.min_max_distance_ratio(z),
            gemm,
            reps=reps,
            warmup=1,
            limit=2.0,
        )
    ]
    peaks = peak_extra_bytes(lambda: sh.min_max_distance_ratio(z), reps=1)
    rows.append(
        value_row(
            "memory",
            f"min_max_distance_ratio peak extra memory, {n}x{m} f32",
            "512 MiB",
            [p / _MIB for p in peaks],
            limit=512.0,
            unit=" MiB",
        )
    )
    return rows


def _skipped(group: str, name: str, why: str, limit: float) -> Row:
    nan = float("nan")
    return Row(group, name, "-", nan, nan, nan, ">=", limit, 0, note=f"SKIPPED: {why}")
