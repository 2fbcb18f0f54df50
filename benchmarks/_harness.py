"""Interleaved A/B timing and peak-memory measurement, reported as ratios.

Every target is a ratio of two things timed in the same process: the subject (A) and a
reference point (B), run alternately A B A B ... so that load from other processes hits both
alike. Each pair gives one ratio `t_A / t_B`; a row reports the median, min and max of those
ratios (and the median absolute times, for orientation).
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field, replace

__all__ = [
    "Row",
    "interleaved",
    "peak_extra_bytes",
    "ratio_row",
    "rotated",
    "timed_row",
    "value_row",
]


@dataclass
class Row:
    """One line of the table.

    `ratio` is what the target compares against `limit`: with `sense="<="` the row passes when
    the median ratio is at most `limit`, with `">="` when it is at least `limit`.
    """

    group: str
    name: str
    baseline: str
    ratio: float
    ratio_min: float
    ratio_max: float
    sense: str
    limit: float
    reps: int
    a_ms: float = float("nan")
    b_ms: float = float("nan")
    unit: str = "x"
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def target(self) -> str:
        return f"{self.sense} {self.limit:g}{self.unit}"

    @property
    def ok(self) -> bool:
        if self.ratio != self.ratio:  # NaN: not measured
            return False
        return self.ratio <= self.limit if self.sense == "<=" else self.ratio >= self.limit


def _time_once(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def interleaved(
    a: Callable[[], object],
    b: Callable[[], object],
    reps: int,
    warmup: int = 2,
) -> tuple[list[float], list[float]]:
    """Time `a` and `b` alternately (the order flips every pair); seconds per call each."""
    for _ in range(warmup):
        a()
        b()
    ta, tb = [], []
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(reps):
            if i % 2 == 0:
                ta.append(_time_once(a))
                tb.append(_time_once(b))
            else:
                tb.append(_time_once(b))
                ta.append(_time_once(a))
    finally:
        if gc_was_enabled:
            gc.enable()
    return ta, tb


def ratio_row(
    group: str,
    name: str,
    baseline: str,
    a: Callable[[], object],
    b: Callable[[], object],
    *,
    reps: int,
    sense: str = "<=",
    limit: float,
    invert: bool = False,
    warmup: int = 2,
    note: str = "",
) -> Row:
    """Row for the ratio `t_a / t_b` (or `t_b / t_a` with `invert`, i.e. a speed-up of a)."""
    ta, tb = interleaved(a, b, reps, warmup)
    ratios = [(y / x) if invert else (x / y) for x, y in zip(ta, tb, strict=True)]
    return timed_row(group, name, baseline, ratios, ta, tb, sense=sense, limit=limit, note=note)


def timed_row(
    group: str,
    name: str,
    baseline: str,
    ratios: list[float],
    ta: list[float],
    tb: list[float],
    *,
    sense: str = "<=",
    limit: float,
    note: str = "",
) -> Row:
    """Row for per-pair `ratios`, with the median times of A and B (`ta`, `tb` in seconds)."""
    row = value_row(group, name, baseline, ratios, sense=sense, limit=limit, note=note)
    return replace(row, a_ms=1e3 * statistics.median(ta), b_ms=1e3 * statistics.median(tb))


def peak_extra_bytes(fn: Callable[[], object], reps: int = 1) -> list[int]:
    """Peak memory that `fn` allocates beyond what is live before it, via tracemalloc.

    NumPy reports its data buffers to tracemalloc, so this counts array memory (the result
    included, as long as `fn` returns it).
    """
    peaks = []
    for _ in range(reps):
        gc.collect()
        tracemalloc.start()
        try:
            base, _ = tracemalloc.get_traced_memory()
            tracemalloc.reset_peak()
            result = fn()
            _, peak = tracemalloc.get_traced_memory()
            del result
        finally:
            tracemalloc.stop()
        peaks.append(peak - base)
    return peaks


def value_row(
    group: str,
    name: str,
    baseline: str,
    values: list[float],
    *,
    sense: str = "<=",
    limit: float,
    unit: str = "x",
    note: str = "",
) -> Row:
    """Row from measured values (e.g. memory ratios or throughput ratios) already in hand."""
    return Row(
        group=group,
        name=name,
        baseline=baseline,
        ratio=statistics.median(values),
        ratio_min=min(values),
        ratio_max=max(values),
        sense=sense,
        limit=limit,
        reps=len(values),
        unit=unit,
        note=note,
    )


def rotated(runs: list[Callable[[], object]], reps: int, warmup: int = 1) -> list[list[float]]:
    """Seconds of each of `runs` per round, `reps` rounds after `warmup` untimed ones; the
    order rotates every round (A B C, B C A, C A B, ...), so that load from other processes
    and the position in the round hit every run alike. `times[r][i]` is run `i` in round `r`.
    The garbage collector runs between rounds, not during them.
    """
    k = len(runs)
    for _ in range(warmup):
        for run in runs:
            run()
    times = [[0.0] * k for _ in range(reps)]
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for r in range(reps):
            gc.collect()
            for j in range(k):
                i = (r + j) % k
                times[r][i] = _time_once(runs[i])
    finally:
        if gc_was_enabled:
            gc.enable()
    return times
