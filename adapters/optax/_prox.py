"""The proximal step as an optax transformation: group soft-thresholding after the update.

`proximal_l21` uses the textbook threshold `learning_rate * l21`; `adamw_proximal_l21` is
`optax.adamw` with the threshold at Adam's scale, per group (the Adam-aware prox).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sparsehead._validation import check_int, check_real

from .._deprecation import legacy
from ._ops import l21_prox
from ._targets import check_chosen, chosen_leaves, masked, tree_map_chosen

__all__ = ["ProximalL21State", "adamw_proximal_l21", "proximal_l21"]

ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


def _check_scalar(value: Any, name: str) -> float | jax.Array:
    """A finite number >= 0 (returned as float), or a 0-d float array, e.g. from
    `optax.inject_hyperparams` (returned as is: a traced value cannot be checked)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return check_real(value, name, low=0)
    if getattr(value, "shape", None) == () and jnp.issubdtype(value.dtype, jnp.floating):
        return value
    raise TypeError(f"{name} must be a real number or a 0-d float array; got {value!r}")


def _check_group_axis(group_axis: Any) -> int:
    try:
        return check_int(group_axis, "group_axis")
    except TypeError as exc:
        raise TypeError(
            f"{exc} (with optax.inject_hyperparams, pass static_args=('group_axis',))"
        ) from None


class ProximalL21State(NamedTuple):
    """The step count, to read a learning-rate schedule at the right step."""

    count: jax.Array


def _prox_update(p: jax.Array, u: jax.Array, t: Any, group_axis: int) -> jax.Array:
    """`prox(p + u) - p`: the update that makes `optax.apply_updates` land on the prox."""
    step = jnp.asarray(p + u).astype(p.dtype)  # what optax.apply_updates would give
    dtype = jnp.result_type(p, u)
    return l21_prox(step, t, group_axis).astype(dtype) - p.astype(dtype)


@legacy("proximal_l21", lam="l21", mask="targets")
def proximal_l21(
    learning_rate: ScalarOrSchedule,
    l21: float | jax.Array,
    targets: Any | Callable[[Any], Any] | None = None,
    *,
    group_axis: int = -2,
) -> optax.GradientTransformation:
    """Group soft-thresholding of the chosen leaves after the update: a proximal gradient step.

    For a leaf `p` and the incoming (final) update `u`, the new update is
    `prox_{t ||.||_{2,1}}(p + u) - p` with `t = learning_rate * l21` (the textbook threshold),
    so that `optax.apply_updates` lands on the prox of the plain step, `p + u`. Put it LAST in
    `optax.chain`, after the learning-rate scaling, e.g.
    `optax.chain(optax.sgd(lr), proximal_l21(lr, 1e-4, head_kernel_mask))`.

    Args:
        learning_rate: the optimizer's learning rate, a float or an optax schedule (read at
            the same step count as the optimizer's own schedule).
        l21: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}` (paper: 1e-4).
        targets: a pytree of bools like the params (or a function of the params returning one)
            choosing the leaves to threshold, as `mask` in `optax.add_decayed_weights`; `None`
            chooses every leaf with at least 2 dimensions. A chosen leaf that is not a
            floating, non-empty array of at least 2 dimensions is refused, named by its path.
        group_axis: the axis that names a group in every chosen leaf (`-2` for `(in, out)`
            kernels).

    `learning_rate` and `l21` may be changed during training with
    `optax.inject_hyperparams(proximal_l21, static_args=("group_axis",))`. The old names
    `lam=` (for `l21`) and `mask=` (for `targets`) still work, with a `DeprecationWarning`.

    Under Adam, `learning_rate * l21` is a weak threshold (Adam's step per unit gradient is
    `lr / sqrt(v)`, much larger than `lr`), and a link of `optax.chain` cannot read another
    link's state: use `adamw_proximal_l21`, the Adam-aware form (see the optax page).
    """
    lam = _check_scalar(l21, "l21")
    if not callable(learning_rate):
        learning_rate = _check_scalar(learning_rate, "learning_rate")
    group_axis = _check_group_axis(group_axis)

    def init_fn(params):
        tree_map_chosen(lambda *_: None, group_axis, params, targets=targets)
        return ProximalL21State(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("proximal_l21 needs the params: call update(updates, state, params)")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        t = lr * lam  # a Python float stays exact; l21_prox casts it to the leaf's precision
        new = tree_map_chosen(
            lambda _, p, u: _prox_update(p, u, t, group_axis),
            group_axis,
            params,
            updates,
            targets=targets,
        )
        return new, ProximalL21State(count=optax.safe_increment(state.count))

    return masked(optax.GradientTransformation(init_fn, update_fn), targets)


@legacy("adamw_proximal_l21", lam="l21", mask="targets")
def adamw_proximal_l21(
    learning_rate: ScalarOrSchedule,
    l21: float | jax.Array,
    targets: Any | Callable[[Any], Any] | None = None,
    *,
    group_axis: int = -2,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    weight_decay_mask: Any | Callable[[Any], Any] | None = None,
) -> optax.GradientTransformation:
    """`optax.adamw` followed by group soft-thresholding at Adam's scale, per group.

    Adam moves a weight by about `lr / d` per unit of gradient, with the preconditioner
    `d = sqrt(v_hat) + eps` (`v_hat = nu / (1 - b2^k)`), so the textbook threshold `lr * l21`
    of `proximal_l21` is `d` times weaker than the penalty `l21 * ||W||_{2,1}` would be. Here
    group `j` of a chosen leaf gets `t_j = lr * l21 / d_j`, with `d_j` the mean of `d` over
    the group, read from this optimizer's own Adam state (so `b2` and `eps` always match). It
    is the exact prox in the metric `diag(d) / lr` when `d` is constant within each group, an
    approximation otherwise. A group that has had no gradient at all has `d_j = eps` and is
    set to zero at once.

    Args:
        learning_rate: a float or an optax schedule.
        l21: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}`.
        targets: the leaves to threshold, as in `proximal_l21` (`None`: every leaf with at
            least 2 dimensions).
        group_axis: the axis that names a group in every chosen leaf.
        b1: passed to `optax.adamw` (the defaults are `optax.adamw`'s).
        b2: passed to `optax.adamw`.
        eps: passed to `optax.adamw`.
        weight_decay: passed to `optax.adamw`.
        weight_decay_mask: passed to `optax.adamw` as its `mask=`.

    The old names `lam=` and `mask=` still work, with a `DeprecationWarning`.
    """
    lam = _check_scalar(l21, "l21")
    if not callable(learning_rate):
        learning_rate = _check_scalar(learning_rate, "learning_rate")
    group_axis = _check_group_axis(group_axis)
    adamw = optax.adamw(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weight_decay_mask
    )

    def check(params):
        jax.tree_util.tree_map_with_path(
            lambda path, p, c: c and check_chosen(path, p, group_axis),
            params,
            chosen_leaves(targets, params),
        )

    def init_fn(params):
        check(params)
        return adamw.init(params)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "adamw_proximal_l21 needs the params: call update(updates, state, params)"
            )
        check(params)
        lr = learning_rate(state[0].count) if callable(learning_rate) else learning_rate
        updates, state = adamw.update(updates, state, params)
        adam = state[0]  # optax.adamw's chain starts with scale_by_adam
        if not isinstance(adam, optax.ScaleByAdamState):
            raise TypeError(f"expected optax.adamw to start with ScaleByAdamState; got {adam}")
        correction = 1 - jnp.asarray(b2, jnp.float32) ** adam.count  # count: steps taken

        def one(u, p, nu, chosen):
            if not chosen:
                return u
            acc = jnp.float64 if p.dtype == jnp.float64 else jnp.float32
            d = jnp.sqrt(nu.astype(acc) / correction) + eps
            dims = tuple(i for i in range(p.ndim) if i != group_axis % p.ndim)
            return _prox_update(p, u, lr * lam / jnp.mean(d, axis=dims), group_axis)

        chosen = chosen_leaves(targets, params)
        new = jax.tree.map(one, updates, params, adam.nu, chosen)
        return new, state

    return optax.GradientTransformation(init_fn, update_fn)
