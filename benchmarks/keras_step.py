"""Placeholder (filled in below)."""

from ._harness import Row


def bench_keras_l21(quick: bool) -> list[Row]:
    return []


def bench_keras_prox(quick: bool) -> list[Row]:
    return []
