"""Projection heads `h_phi`: the paper's MLP, and the field's alternatives on the same harness.

`z = h_phi(r)` maps the representation `r` of shape `(N, d)` to the embedding `z` on which the
method's loss is computed (Sec. 3):

- `mlp`: `sparsehead.ProjectionHead`, Linear -> BN -> ReLU -> Linear with `L21(l21)` on the
  last kernel (Sec. 7.1). The default.
- `linear`: `z = r W`, one bias-free Dense layer without activation, `L21(l21)` on `W`
  (Sec. 4, Fig. 1b; Sec. 6).
- `identity`: `z = r`, no projector (Sec. 4, Fig. 1a; SimCLR's "none", Chen et al. 2020,
  Sec. 4.2): the loss on the representation. No weights, so no SparseHead.
- `directclr`: `z = r[:, :d0]` (DirectCLR, Jing et al., ICLR 2022, Sec. 6): the loss on a
  fixed leading sub-vector of size `d0` of the representation, no trainable projector. No
  weights, so no SparseHead.
- `topk`: the MLP with a top-k activation-sparse hidden layer (Ouyang et al., ICLR 2025,
  "Projection Head is Secretly an Information Bottleneck"): `z = W2 (m ⊙ a)` with
  `a = ReLU(BN(W1 r))` and `m` the 0/1 mask of the `k` largest entries of each row of `a`;
  `L21(l21)` on `W2`.

With BYOL the head is the projector `g` of the online network and of its momentum target
(both built by `build_head`); the predictor `q` is not a projector and stays an MLP (without
it BYOL collapses): "no projector" there means `p = q(r)` regressing the target's `r'`, and
DirectCLR `p = q(r[:, :d0])` regressing `r'[:, :d0]`.
"""

from __future__ import annotations

import keras
from keras import ops
from sparsehead.adapters.keras import L21, ProjectionHead

from .names import HEADS

__all__ = [
    "HEADS",
    "DirectCLR",
    "TopKHead",
    "build_head",
    "regularized_kernel",
    "top_k_mask",
    "top_k_sparse",
]


class DirectCLR(keras.layers.Layer):
    """DirectCLR's head (Jing et al., ICLR 2022, Sec. 6): `z = r[:, :d0]`, no weights.

    Input shape `(N, d)` with `d >= d0`; output shape `(N, d0)`. The loss sees exactly the
    first `d0` features of the representation; the others get no gradient from it.
    """

    def __init__(self, d0: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(d0, bool) or not isinstance(d0, int):
            raise TypeError(f"d0 must be an int; got {d0!r}")
        if d0 < 1:
            raise ValueError(f"d0 must be >= 1; got {d0}")
        self.d0 = d0

    def build(self, input_shape):
        d = input_shape[-1]
        if d is not None and self.d0 > d:
            raise ValueError(f"d0 ({self.d0}) must not exceed the representation dimension d ({d})")
        self.built = True

    def call(self, inputs, training=None):
        return inputs[:, : self.d0]

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.d0)

    def get_config(self) -> dict:
        return {**super().get_config(), "d0": self.d0}


def top_k_mask(a, k: int):
    """The 0/1 mask of the `k` largest entries of each row of `a` (shape `(N, n)`), as `a`'s
    dtype: exactly `k` ones per row, ties broken by the backend's `top_k` (lower index first
    on JAX and TensorFlow). Built by scattering ones at `top_k`'s indices, so that tied
    values never keep more than `k` units (a threshold at the k-th value would)."""
    n_rows = ops.shape(a)[0]
    _, idx = ops.top_k(a, k, sorted=False)  # (N, k), along the last axis: per sample
    idx = ops.cast(idx, "int32")
    rows = ops.repeat(ops.arange(n_rows, dtype="int32"), k)
    where = ops.stack([rows, ops.reshape(idx, (-1,))], axis=1)
    ones = ops.ones((n_rows * k,), dtype=a.dtype)
    return ops.stop_gradient(ops.scatter(where, ones, ops.shape(a)))


def top_k_sparse(a, k: int):
    """`m ⊙ a` with `m = top_k_mask(a, k)`: each row keeps its `k` largest entries.

    Plain masking: `m` is a constant, so `d(m ⊙ a)/da = m`: the gradient flows through the
    kept entries only (straight-through would pass it to all of them)."""
    return a * top_k_mask(a, k)


class TopKHead(ProjectionHead):
    """The MLP head with a top-k activation-sparse hidden layer (Ouyang et al., ICLR 2025).

    `z = W2 (m ⊙ a) (+ b2)`, `a = ReLU(BN(W1 r))` of shape `(N, hidden_dim)`, `m` =
    `top_k_mask(a, k)`: each sample keeps its `k` largest hidden activations (at most `k`
    non-zero: a kept unit may be 0 after the ReLU) and the others are set to 0.

    Plain masking, not straight-through: `m` is a constant in the backward pass, so the
    gradient reaches `W1` (and BN) only through the `k` kept units of each sample; a dropped
    unit gets none. `L21(l21)` on `W2` (`kernel`), whose rows are the hidden units, as in
    `ProjectionHead`.
    """

    def __init__(self, hidden_dim: int, output_dim: int, k: int, l21: float = 0.0, **kwargs):
        super().__init__(hidden_dim, output_dim, l21=l21, **kwargs)
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"k must be an int; got {k!r}")
        if not 1 <= k <= self.hidden_dim:
            raise ValueError(f"k must be in [1, hidden_dim = {self.hidden_dim}]; got {k}")
        self.k = k

    def hidden_activations(self, inputs, training=None):
        """`m ⊙ a`: the hidden layer after the top-k mask, shape `(N, hidden_dim)`."""
        a = self.relu(self.batchnorm(self.hidden(inputs), training=training))
        return top_k_sparse(a, self.k)

    def call(self, inputs, training=None):
        return self.output_layer(self.hidden_activations(inputs, training=training))

    def get_config(self) -> dict:
        return {**super().get_config(), "k": self.k}


def build_head(
    kind: str, hidden_dim: int, output_dim: int, l21: float, k: int | None = None
) -> keras.layers.Layer:
    """The head `kind` (one of `HEADS`); `l21 = 0` leaves it unregularized. `output_dim` is
    `m` (`d0` for `directclr`); `k` the kept hidden units of `topk` (None for the others)."""
    if kind != "topk" and k is not None:
        raise ValueError(f"k is the top-k head's; got k={k!r} with head {kind!r}")
    if kind == "mlp":
        return ProjectionHead(hidden_dim, output_dim, l21=l21, name="head")
    if kind == "linear":
        return keras.layers.Dense(
            output_dim,
            use_bias=False,
            kernel_regularizer=L21(l21) if l21 > 0 else None,
            name="head",
        )
    if kind == "topk":
        if k is None:
            raise ValueError("head 'topk' needs k, the hidden units each sample keeps")
        return TopKHead(hidden_dim, output_dim, k, l21=l21, name="head")
    if kind in ("identity", "directclr"):
        if l21 > 0:
            raise ValueError(f"l21 must be 0 with head {kind!r} (it has no weights to sparsify)")
        if kind == "identity":
            return keras.layers.Identity(name="head")
        return DirectCLR(output_dim, name="head")
    raise ValueError(f"head must be one of {HEADS}; got {kind!r}")


def regularized_kernel(head: keras.layers.Layer):
    """The head's last kernel (the one SparseHead regularizes), or None for a head without
    weights (identity, DirectCLR)."""
    if isinstance(head, ProjectionHead):  # the MLP and the top-k head
        return head.kernel
    if isinstance(head, keras.layers.Dense):
        return head.kernel
    return None
