"""SparseHead for JAX and optax: the L2,1 penalty (Eq. 13) and its proximal step.

Two ways to regularize the last kernel of a projection head, a Flax/Keras-style `(in, out)`
kernel whose groups are its rows (`group_axis=-2`, the default here):

- a penalty in the loss, `loss + l21 * l21_penalty(params["head"]["kernel"])`, whose
  gradient is the minimum-norm subgradient (0 on zero groups, never NaN);
- `adamw_proximal_l21(learning_rate, l21, targets=...)` (Adam-aware threshold), or
  `proximal_l21(learning_rate, l21, targets=...)` (textbook `lr * l21`) as the last link of an
  `optax.chain`: group soft-thresholding of the chosen leaves after the update, which sets weak
  groups to exactly 0.

Numerics: float16/bfloat16 leaves are accumulated in float32 (float64 stays float64); each
group is divided by its largest magnitude before squaring, so no finite weight overflows or
underflows. NaN and inf propagate as in `sqrt(sum(w**2))`: a group holding NaN has norm NaN
(and so has the penalty), one holding inf and no NaN has norm inf, never 0. Everything is
`jax.numpy`: it works under `jax.jit`, `jax.grad` and with sharded arrays (XLA adds the
cross-device sums).

This module imports jax and optax only.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from sparsehead._validation import check_group_axis

from ._deprecation import MISSING, renamed
from ._optax_beyond import GroupBudgetState, group_budget, group_hoyer_penalty

__all__ = [
    "GroupBudgetState",
    "ProximalL21State",
    "adamw_proximal_l21",
    "group_budget",
    "group_hoyer_penalty",
    "group_norms",
    "l21_penalty",
    "l21_prox",
    "proximal_l21",
]


def _check_leaf(x: Any, group_axis: int, name: str = "params_leaf") -> jax.Array:
    """`x` as a floating jax array of at least 2 dimensions; `group_axis` validated."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array; got {type(x).__name__}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype; got {x.dtype}")
    if x.ndim < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions; got shape {tuple(x.shape)} "
            "(use `targets` to leave biases and scales out)"
        )
    if x.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {tuple(x.shape)}")
    check_group_axis(group_axis, x.ndim)
    return jnp.asarray(x)


def _norms_keepdim(x: jax.Array, group_axis: int) -> jax.Array:
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


def group_norms(params_leaf: jax.Array, group_axis: int = -2) -> jax.Array:
    """L2 norm of each group, `g_j = ||W_j||_2`, differentiable.

    Returns shape `(params_leaf.shape[group_axis],)`, float32 for float16/bfloat16/float32
    leaves, float64 for float64.
    """
    x = _check_leaf(params_leaf, group_axis)
    return _norms_keepdim(x, group_axis).reshape(x.shape[group_axis])


def l21_penalty(params_leaf: jax.Array, group_axis: int = -2) -> jax.Array:
    """The L2,1 norm (Eq. 13), `||W||_{2,1} = sum_j ||W_j||_2`, as a 0-d array.

    Its gradient is the minimum-norm subgradient `W_j / ||W_j||_2`, and 0 on zero groups.
    float32 for float16/bfloat16/float32 leaves (float64 for float64).
    """
    x = _check_leaf(params_leaf, group_axis)
    return jnp.sum(_norms_keepdim(x, group_axis))


def l21_prox(params_leaf: jax.Array, threshold: Any, group_axis: int = -2) -> jax.Array:
    """Proximal operator of `t * ||.||_{2,1}`: `prox(W)_j = max(0, 1 - t / ||W_j||_2) * W_j`.

    A group whose norm is at most `t` becomes exactly 0; `t = 0` is the identity.

    Args:
        params_leaf: array of at least 2 dimensions.
        threshold: `t >= 0`: a number, a 0-d array, or one value per group (a traced value
            under `jit` is not checked).
        group_axis: the axis whose index names a group.

    Returns:
        An array of `params_leaf`'s shape and dtype.
    """
    x = _check_leaf(params_leaf, group_axis)
    if isinstance(threshold, numbers.Real) and not (0 <= float(threshold) < float("inf")):
        raise ValueError(f"threshold must be finite and >= 0; got {threshold}")
    g = _norms_keepdim(x, group_axis)
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


def _check_scalar(value: Any, name: str) -> float | jax.Array:
    """A finite number >= 0 (returned as float), or a 0-d float array, e.g. from
    `optax.inject_hyperparams` (returned as is: a traced value cannot be checked)."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        if not 0 <= float(value) < float("inf"):
            raise ValueError(f"{name} must be finite and >= 0; got {value}")
        return float(value)
    if getattr(value, "shape", None) == () and jnp.issubdtype(value.dtype, jnp.floating):
        return value
    raise TypeError(f"{name} must be a real number or a 0-d float array; got {value!r}")


class ProximalL21State(NamedTuple):
    """The step count, to read a learning-rate schedule at the right step."""

    count: jax.Array


ScalarOrSchedule = float | jax.Array | Callable[[jax.Array], jax.Array]


def proximal_l21(
    learning_rate: ScalarOrSchedule,
    l21: float | jax.Array = MISSING,
    *,
    targets: Any | Callable[[Any], Any] | None = None,
    group_axis: int = -2,
    lam: float | jax.Array = MISSING,
    mask: Any | Callable[[Any], Any] | None = MISSING,
) -> optax.GradientTransformation:
    """Group soft-thresholding of the chosen leaves after the update: a proximal gradient step.

    For a leaf `p` and the incoming (final) update `u`, the new update is
    `prox_{t ||.||_{2,1}}(p + u) - p` with `t = learning_rate * l21` (the textbook threshold),
    so that `optax.apply_updates` lands on the prox of the plain step, `p + u`. Put it LAST in
    `optax.chain`, after the learning-rate scaling, e.g.
    `optax.chain(optax.sgd(lr), proximal_l21(lr, 1e-4, targets=head_kernel_mask))`.

    Args:
        learning_rate: the optimizer's learning rate, a float or an optax schedule (read at
            the same step count as the optimizer's own schedule).
        l21: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}` (paper: 1e-4). `lam=` is
            its deprecated name.
        targets: a pytree of bools like the params (or a function of the params returning one)
            choosing the leaves to threshold, as `mask` in `optax.add_decayed_weights`; `None`
            thresholds every leaf, which must then all be at least 2-dimensional. `mask=` is its
            deprecated name.
        group_axis: the axis that names a group in every chosen leaf (`-2` for `(in, out)`
            kernels).

    `learning_rate` and `l21` may be changed during training with
    `optax.inject_hyperparams(proximal_l21, static_args=("group_axis",))`.

    Under Adam, `learning_rate * l21` is a weak threshold (Adam's step per unit gradient is
    `lr / sqrt(v)`, much larger than `lr`), and a link of `optax.chain` cannot read another
    link's state: use `adamw_proximal_l21`, the Adam-aware form (see the optax page).
    """
    l21 = renamed("proximal_l21", "l21", l21, "lam", lam)
    mask = (
        renamed("proximal_l21", "targets", MISSING if targets is None else targets, "mask", mask)
        if mask is not MISSING
        else targets
    )
    lam = _check_scalar(l21, "l21")
    if not callable(learning_rate):
        learning_rate = _check_scalar(learning_rate, "learning_rate")
    if isinstance(group_axis, bool) or not isinstance(group_axis, numbers.Integral):
        raise TypeError(
            f"group_axis must be an int; got {type(group_axis).__name__} (with "
            "optax.inject_hyperparams, pass static_args=('group_axis',))"
        )

    def init_fn(params):
        del params
        return ProximalL21State(count=jnp.zeros([], jnp.int32))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("proximal_l21 needs the params: call update(updates, state, params)")
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        t = lr * lam  # a Python float stays exact; l21_prox casts it to the leaf's precision

        def one(u, p):
            _check_leaf(p, group_axis, "a chosen params leaf")
            step = jnp.asarray(p + u).astype(p.dtype)  # what optax.apply_updates would give
            dtype = jnp.result_type(p, u)
            return l21_prox(step, t, group_axis).astype(dtype) - p.astype(dtype)

        new = jax.tree.map(one, updates, params)
        return new, ProximalL21State(count=optax.safe_increment(state.count))

    tx = optax.GradientTransformation(init_fn, update_fn)
    return tx if mask is None else optax.masked(tx, mask)


def _resolve_mask(mask: Any, params: Any) -> Any:
    if mask is None:
        return jax.tree.map(lambda _: True, params)
    return mask(params) if callable(mask) else mask


def adamw_proximal_l21(
    learning_rate: ScalarOrSchedule,
    l21: float | jax.Array = MISSING,
    *,
    targets: Any | Callable[[Any], Any] | None = None,
    group_axis: int = -2,
    b1: float = 0.9,
    b2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 1e-4,
    weight_decay_mask: Any | Callable[[Any], Any] | None = None,
    lam: float | jax.Array = MISSING,
    mask: Any | Callable[[Any], Any] | None = MISSING,
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
        l21: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}`. `lam=` is its deprecated
            name.
        targets: the leaves to threshold, as in `proximal_l21` (`None`: every leaf). `mask=`
            is its deprecated name.
        group_axis: the axis that names a group in every chosen leaf.
        b1: passed to `optax.adamw` (the defaults are `optax.adamw`'s).
        b2: passed to `optax.adamw`.
        eps: passed to `optax.adamw`.
        weight_decay: passed to `optax.adamw`.
        weight_decay_mask: passed to `optax.adamw` as its `mask=`.
    """
    l21 = renamed("adamw_proximal_l21", "l21", l21, "lam", lam)
    mask = (
        renamed(
            "adamw_proximal_l21", "targets", MISSING if targets is None else targets, "mask", mask
        )
        if mask is not MISSING
        else targets
    )
    lam = _check_scalar(l21, "l21")
    if not callable(learning_rate):
        learning_rate = _check_scalar(learning_rate, "learning_rate")
    if isinstance(group_axis, bool) or not isinstance(group_axis, numbers.Integral):
        raise TypeError(f"group_axis must be an int; got {type(group_axis).__name__}")
    adamw = optax.adamw(
        learning_rate, b1=b1, b2=b2, eps=eps, weight_decay=weight_decay, mask=weight_decay_mask
    )

    def init_fn(params):
        return adamw.init(params)

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError(
                "adamw_proximal_l21 needs the params: call update(updates, state, params)"
            )
        lr = learning_rate(state[0].count) if callable(learning_rate) else learning_rate
        updates, state = adamw.update(updates, state, params)
        adam = state[0]  # optax.adamw's chain starts with scale_by_adam
        if not isinstance(adam, optax.ScaleByAdamState):
            raise TypeError(f"expected optax.adamw to start with ScaleByAdamState; got {adam}")
        correction = 1 - jnp.asarray(b2, jnp.float32) ** adam.count  # count: steps taken

        def one(u, p, nu, chosen):
            if not chosen:
                return u
            _check_leaf(p, group_axis, "a chosen params leaf")
            acc = jnp.float64 if p.dtype == jnp.float64 else jnp.float32
            d = jnp.sqrt(nu.astype(acc) / correction) + eps
            dims = tuple(i for i in range(p.ndim) if i != group_axis % p.ndim)
            t = lr * lam / jnp.mean(d, axis=dims)
            step = jnp.asarray(p + u).astype(p.dtype)
            dtype = jnp.result_type(p, u)
            return l21_prox(step, t, group_axis).astype(dtype) - p.astype(dtype)

        chosen = _resolve_mask(mask, params)
        new = jax.tree.map(one, updates, params, adam.nu, chosen)
        return new, state

    return optax.GradientTransformation(init_fn, update_fn)
