"""Placeholder."""

from ._harness import Row


def bench_simclr(quick: bool) -> list[Row]:
    return []
