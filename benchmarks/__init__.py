"""Ratio benchmarks for sparsehead: `python -m benchmarks --help`."""
