"""Running a function on kernels right after each optimizer step, inside the compiled step.

Keras applies a variable's `constraint` right after the optimizer updates it, inside the
compiled train step, on every backend (JAX's stateless step included). A callback that must
act on weights after each step (`ProximalL21`'s prox, `GroupBudget`'s projection) installs a
`StepConstraint` on its kernels for the duration of `fit` and removes it at the end.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

from ._ops import check_weight

__all__ = ["StepConstraint", "install_step", "kernel_variables", "remove_step", "target_list"]


class StepConstraint(keras.constraints.Constraint):
    """`fn(w, variable)` as a Keras constraint on `variable`."""

    def __init__(self, fn: Callable, variable):
        self.fn = fn
        self.variable = variable

    def __call__(self, w):
        return self.fn(w, self.variable)


def target_list(targets) -> list:
    """`targets` as a non-empty list (a single layer or variable becomes a list of one)."""
    out = list(targets) if isinstance(targets, (list, tuple)) else [targets]
    if not out:
        raise ValueError("targets must name at least one layer or variable")
    return out


def kernel_variables(targets: list, owner: str, group_axis: int) -> list:
    """The `keras.Variable`s named by `targets`: variables, or layers with a built `kernel`.

    Each is checked as a weight (`check_weight`: floating point, not empty, `group_axis` in
    range), with the error naming `targets`."""
    out = []
    for t in targets:
        v = t if isinstance(t, keras.Variable) else getattr(t, "kernel", None)
        if not isinstance(v, keras.Variable):
            raise ValueError(
                f"{owner} targets must be keras.Variables or layers with a built "
                f"`kernel`; got {t!r}"
            )
        check_weight(v, group_axis, "targets")
        out.append(v)
    return out


def install_step(callback: keras.callbacks.Callback, variables: list, fn: Callable) -> list:
    """Install `fn(w, variable)` as the constraint of each of `variables`; returns them.

    Call from `on_train_begin`. Refuses gradient accumulation (the step would run on every
    micro-batch) and variables that already have a constraint; forces a new train function
    (one compiled by an earlier `fit` knows nothing of the constraint).
    """
    model = callback.model
    opt = getattr(model.optimizer, "inner_optimizer", model.optimizer)
    name = type(callback).__name__
    if getattr(opt, "gradient_accumulation_steps", None):
        raise ValueError(f"{name} does not support gradient_accumulation_steps")
    for v in variables:
        if v.constraint is not None:
            raise ValueError(f"{v.path} already has a constraint ({v.constraint!r})")
    for v in variables:
        v.constraint = StepConstraint(fn, v)
    model.make_train_function(force=True)
    return list(variables)


def remove_step(callback: keras.callbacks.Callback, installed: list) -> None:
    """Undo `install_step`; call from `on_train_end`."""
    for v in installed:
        v.constraint = None
    # Do not let a later fit() reuse the function compiled with the step inside.
    callback.model.train_function = None
