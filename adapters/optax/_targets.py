"""Which leaves a transformation acts on (`targets`), the checks that name a refused leaf by
its path, and the old argument spellings kept for one release."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import optax

from ._ops import check_leaf

__all__ = [
    "check_chosen",
    "chosen_leaves",
    "leaf_name",
    "masked",
    "tree_map_chosen",
]


def _at_least_2d(params: Any) -> Any:
    return jax.tree.map(lambda p: getattr(p, "ndim", 0) >= 2, params)


def chosen_leaves(targets: Any, params: Any) -> Any:
    """The pytree of bools `targets` stands for (see `masked`)."""
    if targets is None:
        return _at_least_2d(params)
    return targets(params) if callable(targets) else targets


def masked(tx: optax.GradientTransformation, targets: Any) -> optax.GradientTransformation:
    """`tx` on the leaves `targets` chooses: a pytree of bools like the params, or a function
    of the params returning one (`optax.masked`). `None` returns `tx` itself, whose functions
    skip the leaves of fewer than 2 dimensions (`tree_map_chosen(..., targets=None)`), so its
    state stays the transformation's own."""
    return tx if targets is None else optax.masked(tx, targets)


def leaf_name(path) -> str:
    """`params['head']['kernel']`: how an error names a leaf."""
    return f"params{jax.tree_util.keystr(path)}"


def check_chosen(path, leaf: Any, group_axis: int) -> str:
    """Check a leaf `targets` chose as a weight: a floating dtype, at least 2 dimensions, not
    empty, `group_axis` in range; the errors name it by its path. Returns that name."""
    name = leaf_name(path)
    if getattr(leaf, "ndim", 2) < 2:
        raise ValueError(
            f"{name} must have at least 2 dimensions; got shape {tuple(leaf.shape)} "
            "(targets chose it: leave biases and scales out)"
        )
    check_leaf(leaf, group_axis, name)
    return name


def tree_map_chosen(
    fn: Callable, group_axis: int, tree: Any, *rest: Any, targets: Any = None
) -> Any:
    """`fn(name, leaf, *others)` over the leaves of `tree` (the chosen ones, when `optax.masked`
    passed it), each checked first by `check_chosen` (`name`, e.g. `params['head']['kernel']`).

    With `targets=None` (what `masked` leaves to the transformation) a leaf of fewer than 2
    dimensions is not chosen: the result there is its first other (the incoming update)."""

    def one(path, leaf, *others):
        if targets is None and getattr(leaf, "ndim", 0) < 2:
            return others[0] if others else None
        return fn(check_chosen(path, leaf, group_axis), leaf, *others)

    return jax.tree_util.tree_map_with_path(one, tree, *rest)
