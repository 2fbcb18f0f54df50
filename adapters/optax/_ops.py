"""The tensor operations of the optax adapter: leaf checks, group norms, L2,1 norm and prox.

Group norms are accumulated in float32 for float16/bfloat16/float32 leaves (float64 stays
float64); each group is divided by its largest magnitude before squaring, so no finite weight
overflows or underflows. NaN and inf propagate as in `sqrt(sum(w**2))`: a group holding NaN
has norm NaN, one holding inf and no NaN has norm inf, never 0. Everything is `jax.numpy` on
static shapes: it works under `jax.jit`, `jax.grad` and with sharded arrays.
"""

from __future__ import annotations

import numbers
from typing import Any

import jax
import jax.numpy as jnp

from sparsehead._validation import check_real, check_weight

from .._deprecation import deprecated_alias

__all__ = ["group_norms", "l21_norm", "l21_penalty", "l21_prox"]


def check_leaf(x: Any, group_axis: int, name: str = "w") -> jax.Array:
    """`x` as a floating jax array of at least 2 dimensions with at least one element;
    `group_axis` validated. The errors are the core's (`sparsehead._validation`)."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array; got {type(x).__name__}")
    check_weight(str(x.dtype), x.shape, group_axis, name)
    return jnp.asarray(x)


def norms_keepdim(x: jax.Array, group_axis: int) -> jax.Array:
    """Group norms in the accumulation dtype, shaped to broadcast against `x`."""
    acc = jnp.float64 if x.dtype == jnp.float64 else jnp.float32
    x = x.astype(acc)
    ax = group_axis % x.ndim
    dims = tuple(d for d in range(x.ndim) if d != ax)
    # ||x|| = s * ||x / s|| for any s > 0: the scale is a constant for autodiff.
    peak = jax.lax.stop_gradient(jnp.max(jnp.abs(x), axis=dims, keepdims=True))
    # Scale by 1 where the peak is 0, inf or NaN: inf / inf would turn an inf group into NaN.
    scale = jnp.where((peak > 0) & (peak < jnp.inf), peak, 1)
    ss = jnp.sum(jnp.square(x / scale), axis=dims, keepdims=True)
    nonzero = ss != 0  # NaN != 0: a NaN group's norm is NaN (an inf group's inf), never 0
    # double `where`: sqrt never sees 0, so the gradient on a zero group is 0, not NaN
    return jnp.where(nonzero, scale * jnp.sqrt(jnp.where(nonzero, ss, 1)), 0)


def group_norms(w: jax.Array, group_axis: int = -2) -> jax.Array:
    """L2 norm of each group, `g_j = ||W_j||_2`, differentiable.

    Returns shape `(w.shape[group_axis],)`, float32 for float16/bfloat16/float32 leaves,
    float64 for float64.
    """
    x = check_leaf(w, group_axis)
    return norms_keepdim(x, group_axis).reshape(x.shape[group_axis])


def l21_norm(w: jax.Array, group_axis: int = -2) -> jax.Array:
    """The L2,1 norm (Eq. 13), `||W||_{2,1} = sum_j ||W_j||_2`, as a 0-d array.

    Its gradient is the minimum-norm subgradient `W_j / ||W_j||_2`, and 0 on zero groups.
    float32 for float16/bfloat16/float32 leaves (float64 for float64). Add it to the loss
    times the strength: `loss + l21 * l21_norm(params["head"]["kernel"])`.
    """
    x = check_leaf(w, group_axis)
    return jnp.sum(norms_keepdim(x, group_axis))


def l21_penalty(params_leaf: jax.Array, group_axis: int = -2) -> jax.Array:
    """Deprecated name of `l21_norm` (removed in the next release)."""
    deprecated_alias("l21_penalty", "l21_norm")
    return l21_norm(params_leaf, group_axis)


def l21_prox(w: jax.Array, threshold: Any, group_axis: int = -2) -> jax.Array:
    """Proximal operator of `t * ||.||_{2,1}`: `prox(W)_j = max(0, 1 - t / ||W_j||_2) * W_j`.

    A group whose norm is at most `t` becomes exactly 0; `t = 0` is the identity.

    Args:
        w: array of at least 2 dimensions.
        threshold: `t >= 0`: a number, a 0-d array, or one value per group (a traced value
            under `jit` is not checked).
        group_axis: the axis whose index names a group.

    Returns:
        An array of `w`'s shape and dtype.
    """
    x = check_leaf(w, group_axis)
    if isinstance(threshold, numbers.Real):
        check_real(threshold, "threshold", low=0)
    g = norms_keepdim(x, group_axis)
    t = jnp.asarray(threshold, g.dtype)
    if t.ndim > 0:
        if t.shape != (x.shape[group_axis],):
            raise ValueError(
                f"threshold must be a scalar or have one entry per group "
                f"({x.shape[group_axis]},); got shape {t.shape}"
            )
        t = t.reshape(g.shape)
    keep = g > t
    factor = jnp.where(keep, 1 - t / jnp.where(keep, g, 1), 0)
    return (x.astype(g.dtype) * factor).astype(x.dtype)
