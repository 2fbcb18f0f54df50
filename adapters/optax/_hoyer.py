"""The group Hoyer-square measure of DeepHoyer (Yang, Wen and Li, ICLR 2020) in JAX.

`HS(W) = (sum_j g_j)^2 / sum_j g_j^2`, scale invariant, so a penalty `hoyer * HS` can only be
lowered by concentrating the weight in fewer groups. Reference: `sparsehead.group_hoyer`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .._deprecation import deprecated_alias
from ._ops import check_leaf, norms_keepdim

__all__ = ["group_hoyer", "group_hoyer_penalty"]


def group_hoyer(w: jax.Array, group_axis: int = -2) -> jax.Array:
    """Group Hoyer-square `HS(W) = (sum_j ||W_j||_2)^2 / sum_j ||W_j||_2^2`, a 0-d array.

    `1 <= HS <= G` for `W != 0`, `0` for `W = 0`. The gradient
    `2 S/Q * W_j/||W_j||_2 - 2 S^2/Q^2 * W_j` (`S = sum g`, `Q = sum g^2`) is 0 on a zero group
    and for `W = 0`, never NaN. The norms are divided by the largest (a constant for autodiff,
    `HS` being scale invariant), so nothing overflows, even for float32 weights near 1e30.
    float32 for float16/bfloat16/float32 leaves (float64 for float64). Multiply by the strength
    yourself: `loss + hoyer * group_hoyer(params["head"]["kernel"])`.
    """
    x = check_leaf(w, group_axis)
    g = norms_keepdim(x, group_axis)
    top = jax.lax.stop_gradient(jnp.max(g))
    r = g / jnp.where(top > 0, top, 1)  # in [0, 1]
    s, q = jnp.sum(r), jnp.sum(jnp.square(r))
    nonzero = q > 0
    return jnp.where(nonzero, jnp.square(s) / jnp.where(nonzero, q, 1), 0)


def group_hoyer_penalty(params_leaf: jax.Array, group_axis: int = -2) -> jax.Array:
    """Deprecated name of `group_hoyer` (removed in the next release)."""
    deprecated_alias("group_hoyer_penalty", "group_hoyer")
    return group_hoyer(params_leaf, group_axis)
