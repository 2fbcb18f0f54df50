"""Beyond the paper for JAX / optax: the group Hoyer penalty and an exact group budget.

- `group_hoyer_penalty`: `HS(W) = (sum_j g_j)^2 / sum_j g_j^2` (DeepHoyer, ICLR 2020), scale
  invariant, so it can only be lowered by concentrating the weight in fewer groups.
- `group_budget`: the projection onto `||W||_{2,0} <= k` (Theorem 5.6's constraint) as the last
  link of an `optax.chain`, with `k` lowered on the cubic schedule of gradual pruning (Zhu and
  Gupta, 2017).

References: `sparsehead.group_hoyer`, `l20_project` and `budget_schedule` (the NumPy core).
Everything is `jax.numpy` and static shapes: it runs under `jax.jit`, and with sharded arrays
XLA adds the cross-device sums the group norms need.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from sparsehead.budget import budget_steps, resolve_keep

__all__ = ["GroupBudgetState", "group_budget", "group_hoyer_penalty"]


def _ops():
    """The shared leaf checks and safe norms of `sparsehead.adapters.optax` (imported here,
    not at the top: that module imports this one)."""
    from . import optax as ops

    return ops


def group_hoyer_penalty(params_leaf: jax.Array, group_axis: int = -2) -> jax.Array:
    """Group Hoyer-square `HS(W) = (sum_j ||W_j||_2)^2 / sum_j ||W_j||_2^2`, a 0-d array.

    `1 <= HS <= G` for `W != 0`, `0` for `W = 0`. The gradient
    `2 S/Q * W_j/||W_j||_2 - 2 S^2/Q^2 * W_j` (`S = sum g`, `Q = sum g^2`) is 0 on a zero group
    and for `W = 0`, never NaN. The norms are divided by the largest (a constant for autodiff,
    `HS` being scale invariant), so nothing overflows, even for float32 weights near 1e30.
    float32 for float16/bfloat16/float32 leaves (float64 for float64). Multiply by the strength
    yourself: `loss + hoyer * group_hoyer_penalty(params["head"]["kernel"])`.
    """
    ops = _ops()
    x = ops._check_leaf(params_leaf, group_axis)
    g = ops._norms_keepdim(x, group_axis)
    top = jax.lax.stop_gradient(jnp.max(g))
    r = g / jnp.where(top > 0, top, 1)  # in [0, 1]
    s, q = jnp.sum(r), jnp.sum(jnp.square(r))
    nonzero = q > 0
    return jnp.where(nonzero, jnp.square(s) / jnp.where(nonzero, q, 1), 0)


def _replicated(v: jax.Array) -> jax.Array:
    """`v` gathered on every device when its type says it is sharded (explicit sharding):
    a sort needs the whole vector, and `G` norms are small."""
    sharding = getattr(jax.typeof(v), "sharding", None)
    if isinstance(sharding, NamedSharding) and any(a is not None for a in sharding.spec):
        v = jax.sharding.reshard(v, NamedSharding(sharding.mesh, PartitionSpec()))
    return v


def _kept_groups(x: jax.Array, group_axis: int, k: jax.Array) -> jax.Array:
    """Bool mask broadcastable against `x`: the `k` groups of largest norm, ties to the lower
    index (a sort on the keys `(-norm, index)`, as the core's stable sort)."""
    g = _ops()._norms_keepdim(x, group_axis)
    dims = tuple(d for d in range(x.ndim) if d != group_axis % x.ndim)
    # a group holding NaN ranks first (as +inf): it is kept, so the NaN stays visible
    g = jnp.where(jnp.any(jnp.isnan(x), axis=dims, keepdims=True), jnp.inf, g)
    flat = _replicated(g.reshape(-1))
    index = jnp.arange(flat.size, dtype=jnp.int32)
    _, order = jax.lax.sort((-flat, index), num_keys=2)
    rank = jnp.zeros_like(index).at[order].set(index)
    return (rank < k).reshape(g.shape)


class GroupBudgetState(NamedTuple):
    """The number of updates taken so far, which sets the budget."""

    count: jax.Array


def group_budget(
    keep,
    targets: Any | Callable[[Any], Any] | None = None,
    group_axis: int = -2,
    begin_step: int = 0,
    end_step: int | None = None,
) -> optax.GradientTransformation:
    """Projection of the chosen leaves onto `||W||_{2,0} <= k(t)` after each update.

    For a leaf `p` and the incoming (final) update `u`, the new update is `P_k(p + u) - p`,
    where `P_k` keeps the `k` groups of largest norm (ties to the lower index) and sets the
    others to exactly 0, so `optax.apply_updates` lands on the projection of the plain step.
    A group holding NaN counts as the largest and is kept (the NaN is not hidden).
    Put it LAST in `optax.chain`. For the `t`-th update (`t = 1, 2, ...`; `count + 1`)

        k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,   rounded up,

    `G` (no change) for `t <= t0` and `k_f = resolve_keep(keep, G)` for `t >= t1`: the core's
    `sparsehead.budget_schedule(t, G, keep, t0, t1)`, read under `jit` from the table
    `sparsehead.budget.budget_steps` (`k(t) = G - count(t >= T)`). From `t1` on exactly `k_f`
    groups are non-zero after every update (when the leaf has that many non-zero groups).

    Args:
        keep: the final budget `k_f`: an int (at most every chosen leaf's `G`) or a fraction of
            each leaf's groups in `(0, 1]`.
        targets: a pytree of bools like the params (or a function of the params returning
            one) choosing the leaves, as `optax.masked` takes; `None` chooses every leaf, which
            must then all be at least 2-dimensional.
        group_axis: the axis that names a group in every chosen leaf (`-2` for `(in, out)`).
        begin_step: `t0 >= 0`.
        end_step: `t1 >= t0`; `None` means `t0` (the whole budget after update `t0`).
    """
    if isinstance(group_axis, bool) or not isinstance(group_axis, numbers.Integral):
        raise TypeError(f"group_axis must be an int; got {type(group_axis).__name__}")
    for value, name in ((begin_step, "begin_step"), (end_step, "end_step")):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int; got {type(value).__name__}")
    if begin_step < 0:
        raise ValueError(f"begin_step must be >= 0; got {begin_step}")
    end_step = begin_step if end_step is None else end_step
    if end_step < begin_step:
        raise ValueError(f"end_step must be >= begin_step ({begin_step}); got {end_step}")
    resolve_keep(keep, 2**62)  # type, sign and fraction range of `keep` now; `<= G` per leaf

    def init_fn(params):
        del params
        return GroupBudgetState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("group_budget needs the params: call update(updates, state, params)")
        t = optax.safe_increment(state.count)

        def one(u, p):
            _ops()._check_leaf(p, group_axis, "a chosen params leaf")
            size = p.shape[group_axis]
            steps = budget_steps(size, keep, begin_step, end_step)  # static table, (G - k_f,)
            k = size - jnp.sum(t >= jnp.asarray(steps.astype(np.int32)))
            step = jnp.asarray(p + u).astype(p.dtype)  # what optax.apply_updates would give
            dtype = jnp.result_type(p, u)
            new = jnp.where(_kept_groups(step, group_axis, k), step, 0)
            return new.astype(dtype) - p.astype(dtype)

        new = jax.tree.map(one, updates, params)
        return new, GroupBudgetState(count=t)

    tx = optax.GradientTransformation(init_fn, update_fn)
    return tx if targets is None else optax.masked(tx, targets)
