"""An exact group budget in JAX: the L2,0 projection and the optax transformation that
lowers the budget on the cubic schedule of gradual pruning (Zhu and Gupta, 2017).

References: `sparsehead.l20_project` and `sparsehead.BudgetSchedule` (the NumPy core).
Everything is `jax.numpy` on static shapes: it runs under `jax.jit`, with no host callback,
and with sharded arrays XLA adds the cross-device sums the group norms need.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from sparsehead._validation import check_int
from sparsehead.budget import resolve_keep
from sparsehead.schedule import BudgetSchedule

from .._deprecation import legacy
from ._ops import check_leaf, norms_keepdim
from ._targets import masked, tree_map_chosen

__all__ = ["GroupBudgetState", "group_budget", "l20_project"]


def _replicated(v: jax.Array) -> jax.Array:
    """`v` gathered on every device when its type says it is sharded (explicit sharding):
    a sort needs the whole vector, and `G` norms are small."""
    typeof = getattr(jax, "typeof", None)
    sharding = getattr(typeof(v), "sharding", None) if typeof is not None else None
    if isinstance(sharding, NamedSharding) and any(a is not None for a in sharding.spec):
        v = jax.sharding.reshard(v, NamedSharding(sharding.mesh, PartitionSpec()))
    return v


def _kept_groups(x: jax.Array, group_axis: int, k: Any) -> jax.Array:
    """Bool mask broadcastable against `x`: the `k` first groups in the core's ranking
    (`sparsehead.budget.rank_groups`): groups holding NaN first, then +inf, then finite norms
    descending, ties to the lower index. A sort on the keys `(not NaN, -norm, index)`: the
    index as the last key makes the order total, so it is the same for any number of ties."""
    g = norms_keepdim(x, group_axis)  # NaN for a group holding NaN, inf for one holding inf
    flat = _replicated(g.reshape(-1))
    nan = jnp.isnan(flat)
    index = jnp.arange(flat.size, dtype=jnp.int32)
    keys = (jnp.where(nan, 0, 1).astype(jnp.int32), -jnp.where(nan, 0, flat), index)
    *_, order = jax.lax.sort(keys, num_keys=3)
    rank = jnp.zeros_like(index).at[order].set(index)
    return (rank < k).reshape(g.shape)


def l20_project(w: jax.Array, keep: int | float, group_axis: int = -2) -> jax.Array:
    """Projection onto `{W : at most k groups non-zero}`: keep the k groups of largest norm.

    The `k = resolve_keep(keep, G)` groups first in the ranking are copied, all others set to
    exactly 0. The ranking is the core's: a group holding NaN first (the NaN is never hidden),
    then one holding +-inf, then finite norms descending; ties go to the lower index, for any
    number of tied groups.

    Args:
        w: array of at least 2 dimensions.
        keep: an int in `[1, G]` or a float fraction in `(0, 1]` (`ceil(keep * G)` groups);
            a Python number (static under `jit`).
        group_axis: the axis whose index names a group.

    Returns:
        An array of `w`'s shape and dtype.
    """
    x = check_leaf(w, group_axis)
    k = resolve_keep(keep, x.shape[group_axis])
    return jnp.where(_kept_groups(x, group_axis, k), x, jnp.zeros((), x.dtype))


class GroupBudgetState(NamedTuple):
    """The number of updates taken so far, which sets the budget."""

    count: jax.Array


@legacy("group_budget", positional=("group_axis", "begin_step", "end_step"))
def group_budget(
    keep: int | float,
    targets: Any | Callable[[Any], Any] | None = None,
    *,
    begin_step: int = 0,
    end_step: int | None = None,
    every: int = 1,
    group_axis: int = -2,
) -> optax.GradientTransformation:
    """Projection of the chosen leaves onto `||W||_{2,0} <= k(t)` after every `every`-th update.

    For a leaf `p` and the incoming (final) update `u`, the new update after the `t`-th
    update (`t = 1, 2, ...`) is `P_k(p + u) - p` when `t` is a multiple of `every`, else `u`;
    `P_k` is `l20_project` with `k = k(t)`, so `optax.apply_updates` lands on the projection
    of the plain step. Put it LAST in `optax.chain`. The budget is the core's
    `sparsehead.BudgetSchedule(G, keep, begin_step=, end_step=, every=)`:

        k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,   rounded up,

    `G` (no change) for `t <= t0` and `k_f` for `t >= t1`, read under `jit` from its
    `drop_steps()` table (`k(t) = G - count(t >= T)`).

    Args:
        keep: the final budget `k_f`: an int `>= 1` (at most every chosen leaf's `G`) or a
            fraction of each leaf's groups in `(0, 1]`.
        targets: a pytree of bools like the params (or a function of the params returning
            one) choosing the leaves, as `optax.masked` takes; `None` chooses every leaf with
            at least 2 dimensions. A chosen leaf that is refused is named by its path.
        begin_step: `t0 >= 0`.
        end_step: `t1 >= t0`; `None` means `t0` (the budget holds from `t0` on, no ramp).
        every: project after updates `every, 2 * every, ...` (`>= 1`).
        group_axis: the axis that names a group in every chosen leaf (`-2` for `(in, out)`).

    Passing `group_axis`, `begin_step`, `end_step` by position (the old order) still works,
    with a `DeprecationWarning`.
    """
    group_axis = check_int(group_axis, "group_axis")
    # the arguments' types and ranges now (G is per leaf: `keep <= G` is checked at `init`)
    BudgetSchedule(2**62, keep, begin_step=begin_step, end_step=end_step, every=every)

    def schedule(name: str, p: jax.Array) -> BudgetSchedule:
        groups = p.shape[group_axis]
        try:
            return BudgetSchedule(
                groups, keep, begin_step=begin_step, end_step=end_step, every=every
            )
        except ValueError as exc:
            raise ValueError(f"{exc} (the groups of {name})") from None

    def init_fn(params):
        tree_map_chosen(schedule, group_axis, params, targets=targets)
        return GroupBudgetState(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("group_budget needs the params: call update(updates, state, params)")
        t = optax.safe_increment(state.count)

        def one(name, p, u):
            sched = schedule(name, p)
            drops = jnp.asarray(sched.drop_steps().astype(np.int32))  # static table
            k = sched.groups - jnp.sum(t >= drops)
            step = jnp.asarray(p + u).astype(p.dtype)  # what optax.apply_updates would give
            dtype = jnp.result_type(p, u)
            projected = jnp.where(_kept_groups(step, group_axis, k), step, 0)
            new = projected.astype(dtype) - p.astype(dtype)
            return jnp.where(t % sched.every == 0, new, jnp.asarray(u, dtype))

        new = tree_map_chosen(one, group_axis, params, updates, targets=targets)
        return new, GroupBudgetState(count=t)

    return masked(optax.GradientTransformation(init_fn, update_fn), targets)
