"""Framework adapters, installed as `sparsehead.adapters`.

Each submodule imports its framework; this package itself imports none:
`sparsehead.adapters.keras` (Keras 3, any backend), `sparsehead.adapters.torch` (PyTorch),
`sparsehead.adapters.optax` (JAX with optax).
"""
