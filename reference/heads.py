"""Projection heads `h_phi` for the Sec. 4 study: MLP (the paper's), linear, identity.

- `mlp`: `sparsehead.ProjectionHead`, Linear -> BN -> ReLU -> Linear with `L21(l21)` on the
  last kernel (Sec. 7.1).
- `linear`: `h_phi = W`, one bias-free Dense layer with `L21(l21)` on `W` (Sec. 6).
- `identity`: `h_phi = I` (Fig. 1a); it has no weights, so no SparseHead.
"""

from __future__ import annotations

import keras
from sparsehead.adapters.keras import L21, ProjectionHead

from .names import HEADS

__all__ = ["HEADS", "build_head", "regularized_kernel"]


def build_head(kind: str, hidden_dim: int, output_dim: int, l21: float) -> keras.layers.Layer:
    """The head `kind` (one of `HEADS`); `l21 = 0` leaves it unregularized."""
    if kind == "mlp":
        return ProjectionHead(hidden_dim, output_dim, l21=l21, name="head")
    if kind == "linear":
        return keras.layers.Dense(
            output_dim,
            use_bias=False,
            kernel_regularizer=L21(l21) if l21 > 0 else None,
            name="head",
        )
    if kind == "identity":
        if l21 > 0:
            raise ValueError("l21 must be 0 with head 'identity' (it has no weights to sparsify)")
        return keras.layers.Identity(name="head")
    raise ValueError(f"head must be one of {HEADS}; got {kind!r}")


def regularized_kernel(head: keras.layers.Layer):
    """The head's last kernel (the one SparseHead regularizes), or None for the identity."""
    if isinstance(head, ProjectionHead):
        return head.kernel
    if isinstance(head, keras.layers.Dense):
        return head.kernel
    return None
