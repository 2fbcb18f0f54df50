"""The paper's self-supervised objectives in `keras.ops`: InfoNCE (Eq. 2), BYOL, Barlow Twins.

They match `sparsehead.info_nce`, `sparsehead.byol_loss` and `sparsehead.barlow_twins_loss`
(the NumPy reference) and run under jit on every backend with finite gradients, zero rows
included. Embeddings are rows: `z1[i]` and `z2[i]` are the two views of sample `i`, shape
`(N, m)`. float16/bfloat16 inputs are computed in float32 (so is float32); float64 in float64.
"""

from __future__ import annotations

from keras import ops

from sparsehead._validation import check_choice, check_nonnegative, check_positive

from ._ops import compute_dtype, l2_normalize

__all__ = ["barlow_twins_loss", "byol_loss", "cosine_similarity", "info_nce"]

_REDUCTIONS = ("mean", "sum", "none")


def _check_reduction(reduction) -> str:
    return check_choice(reduction, "reduction", _REDUCTIONS)


def _pair(a, b, names: tuple[str, str], min_rows: int = 1):
    """Check two `(N, m)` batches (static shapes, where known); cast to the compute dtype."""
    a = ops.convert_to_tensor(a)
    b = ops.convert_to_tensor(b)
    for x, name in ((a, names[0]), (b, names[1])):
        if len(x.shape) != 2:
            raise ValueError(f"{name} must be 2-D (batch, features); got shape {tuple(x.shape)}")
    if tuple(a.shape) != tuple(b.shape) and None not in (*a.shape, *b.shape):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )
    rows, cols = a.shape
    if (rows is not None and rows < min_rows) or cols == 0:
        raise ValueError(
            f"{names[0]} must hold at least {min_rows} rows and 1 feature; "
            f"got shape {tuple(a.shape)}"
        )
    dtypes = (compute_dtype(a.dtype), compute_dtype(b.dtype))
    dtype = "float64" if "float64" in dtypes else "float32"
    return ops.cast(a, dtype), ops.cast(b, dtype)


def _mean(x, axis=None, keepdims: bool = False):
    """`sum / count`: Keras' torch `ops.mean` rounds float64 input through float32."""
    count = ops.size(x) if axis is None else ops.shape(x)[axis]
    return ops.sum(x, axis=axis, keepdims=keepdims) / ops.cast(count, x.dtype)


def _reduce(per_item, reduction: str):
    if reduction == "mean":
        return _mean(per_item)
    if reduction == "sum":
        return ops.sum(per_item)
    return per_item


def cosine_similarity(a, b):
    """Row-wise `cos(a_i, b_i) = <a_i, b_i> / (||a_i|| ||b_i||)`, 0 where a row is zero."""
    a, b = _pair(a, b, ("a", "b"))
    return ops.sum(l2_normalize(a) * l2_normalize(b), axis=-1)


def info_nce(z1, z2, temperature: float = 0.5, reduction: str = "mean"):
    """InfoNCE / NT-Xent (Eq. 2) over the 2N embeddings of a batch of N pairs.

    With `Z = [z1; z2]` (2N rows), `s_ab = cos(Z_a, Z_b) / temperature` and `p(a)` the other
    view of anchor `a`:

        loss_a = -log( exp(s_{a,p(a)}) / sum_{b != a} exp(s_ab) )

    The denominator runs over all 2N - 1 other embeddings, the positive included. Eq. 2 is
    `reduction="sum"`; `"mean"` (default) divides by 2N; `"none"` returns the 2N per-anchor
    losses (rows of `z1` first, then `z2`).

    Args:
        z1: `(N, m)` embeddings of the first views; zero rows are allowed (cosine 0).
        z2: `(N, m)` embeddings of the second views.
        temperature: `tau > 0`; the paper uses 0.5.
        reduction: `"mean"`, `"sum"` or `"none"`.
    """
    tau = check_positive(temperature, "temperature")
    _check_reduction(reduction)
    a, b = _pair(z1, z2, ("z1", "z2"))
    n = ops.shape(a)[0]
    u = l2_normalize(ops.concatenate([a, b], axis=0))
    # einsum, not matmul: Keras' torch `ops.matmul` returns float32 for float64 input.
    s = ops.einsum("ik,jk->ij", u, u) / tau
    positive = ops.sum(u * ops.roll(u, shift=n, axis=0), axis=-1) / tau
    eye = ops.eye(ops.shape(s)[0], dtype="bool")
    s = ops.where(eye, ops.full_like(s, float("-inf")), s)
    return _reduce(ops.logsumexp(s, axis=-1) - positive, reduction)


def byol_loss(p, z, reduction: str = "mean"):
    """BYOL's regression loss: `2 - 2 cos(p_i, z_i)` per row.

    Args:
        p: `(N, m)` predictions of the online network for one view.
        z: `(N, m)` target projections of the other view. Wrap it in `keras.ops.stop_gradient`
            yourself when it comes from the target network inside the same graph.
        reduction: `"mean"` (default), `"sum"` or `"none"`.
    """
    _check_reduction(reduction)
    p, z = _pair(p, z, ("p", "z"))
    return _reduce(2.0 - 2.0 * ops.sum(l2_normalize(p) * l2_normalize(z), axis=-1), reduction)


def barlow_twins_loss(z1, z2, lambda_offdiag: float = 5e-3, eps: float = 1e-5):
    """Barlow Twins: `sum_i (1 - C_ii)^2 + lambda_offdiag * sum_{i != j} C_ij^2`.

    `C = zn1^T zn2 / N` is the `(m, m)` cross-correlation of the embeddings, each normalised
    along the batch as BatchNorm without affine does: `zn = (z - mean) / sqrt(var + eps)`,
    `var` the biased batch variance.

    Args:
        z1: `(N, m)` embeddings of the first views, `N >= 2`.
        z2: `(N, m)` embeddings of the second views.
        lambda_offdiag: weight of the redundancy-reduction term (5e-3 in Barlow Twins).
        eps: added to the variance, as in BatchNorm (keeps constant features finite).
    """
    lam = check_nonnegative(lambda_offdiag, "lambda_offdiag")
    eps = check_nonnegative(eps, "eps")
    a, b = _pair(z1, z2, ("z1", "z2"), min_rows=2)
    n = ops.cast(ops.shape(a)[0], a.dtype)

    def standardize(z):
        zc = z - _mean(z, axis=0, keepdims=True)
        return zc / ops.sqrt(_mean(zc * zc, axis=0, keepdims=True) + eps)

    c = ops.einsum("ni,nj->ij", standardize(a), standardize(b)) / n
    off_diagonal = 1.0 - ops.eye(ops.shape(c)[0], dtype=c.dtype)
    on = ops.sum(ops.square(1.0 - ops.diagonal(c)))
    return on + lam * ops.sum(c * c * off_diagonal)
