"""`AdaptiveL21`: the L2,1 strength from a sparsity target instead of a sweep.

"Controlled Sparsity via Constrained Optimization" (Gallego-Posada et al., NeurIPS 2022) treats
"the sparsity measure `s(W)` reaches `s*`" as a constraint and updates its Lagrange multiplier
by dual ascent; the multiplier is the penalty's strength `λ`. `s` is scale-free (fraction of
groups holding 95 % of the energy, or fraction below 1 % of the largest), so uniform shrinkage
of `W` cannot fake it. The step is multiplicative, dual ascent on `log λ`,

    λ <- λ * exp(dual_lr * (s - s*))      (with the sign turned for "higher is sparser"),

rather than the additive `λ <- max(0, λ + η (s - s*))`: `λ` is not known within decades (the
paper's 1e-4 and the 1e-2 at which the head collapses are two decades apart), an additive step
small enough to settle near a small `λ` needs hundreds of updates to come from a large one, and
the multiplicative step keeps `λ > 0` without a projection. It covers a factor 100 in about
`ln(100) / (dual_lr * |s - s*|)` updates.
"""

from __future__ import annotations

import math
import numbers

import keras
import numpy as np
from keras import ops

from sparsehead.groups import sparsity_summary

from ._ops import group_norms
from ._penalty import L21, validate_factor, validate_group_axis
from ._prox import ProximalL21
from ._step import kernel_variables, target_list

__all__ = ["MEASURES", "AdaptiveL21"]

# measure -> (how it is read from sparsity_summary, +1 if higher means denser)
MEASURES = {
    "groups_95_energy": (lambda s: s["groups_95_energy"] / s["groups"], 1.0),
    "frac_below_1pct": (lambda s: s["frac_below_1pct"], -1.0),
}


class _VariableL21(keras.regularizers.Regularizer):
    """`lam * ||W||_{2,1}` with `lam` a variable, installed on the kernels during `fit`."""

    def __init__(self, lam, group_axis: int):
        self.lam = lam
        self.group_axis = group_axis

    def __call__(self, x):
        norms = group_norms(x, self.group_axis)
        return ops.cast(self.lam, norms.dtype) * ops.sum(norms)


def _track(owner, variable) -> None:
    """Add `variable` to `owner`'s (a model's or an optimizer's) state for this `fit`.

    On JAX the train step is a pure function of the model's and the optimizer's variables: a
    variable outside them would be read once, at tracing, as a constant.
    """
    locked = owner._tracker.locked
    owner._tracker.unlock()
    owner._track_variable(variable)
    if locked:
        owner._tracker.lock()


def _hide_from_saving(owner, variable) -> None:
    """Keep `variable` out of what `owner` saves (a checkpoint taken during `fit` must load
    into the model without the callback): untracked while `owner.save_own_variables` runs."""
    save = type(owner).save_own_variables

    def save_own_variables(store):
        owner._untrack_variable(variable)
        try:
            save(owner, store)
        finally:
            _track(owner, variable)

    owner.save_own_variables = save_own_variables


class AdaptiveL21(keras.callbacks.Callback):
    """Adapts the L2,1 strength `λ` during `fit` until a scale-free sparsity target is met.

    Every `every` batches (or at each epoch's end) the sparsity measure `s` of the target
    kernels is computed with the NumPy core (`sparsehead.sparsity_summary`, averaged over the
    kernels) and `λ` takes a multiplicative dual-ascent step, `λ <- λ exp(dual_lr (s - s*))`
    for a measure where higher means denser (the sign is turned for the other kind): `λ` rises
    while the kernels are denser than the target and falls while they are sparser.

    `λ` is held in a `keras.Variable` (`.l21`) that the compiled train step reads, so no
    recompilation happens. Two ways to apply it:

    - penalty: `targets` are layers (or kernels) whose regularizer is an `L21`; during `fit`
      their penalty is `λ ||W||_{2,1}` with the adapted `λ`, and at the end the `L21`'s `l21`
      is set to the final `λ` (so the saved model carries it);
    - proximal: `targets` is a `ProximalL21` callback (pass it to `fit` too, before or after
      this one); its `l21` follows `λ` during `fit` and is the final `λ` afterwards.

    The end-of-epoch logs (and so the `History`) get `adaptive_l21` (the current `λ`) and
    `adaptive_measure` (the last measured `s`).

    Args:
        targets: layers / kernels with an `L21` regularizer, or one `ProximalL21`.
        target: `s*`, a fraction in (0, 1).
        measure: `"groups_95_energy"` (the fewest groups holding 95 % of `||W||_F^2`, as a
            fraction of the groups: lower is sparser) or `"frac_below_1pct"` (fraction of
            groups below 1 % of the largest group norm: higher is sparser).
        l21: the starting `λ > 0`.
        dual_lr: the step `η > 0` on `log λ`.
        every: update every `every` training batches; `None` at each epoch's end.
        group_axis: the axis whose index names a group, for the measure (-2 for Keras
            kernels; a `ProximalL21`'s own `group_axis` is used for it).

    Example:
        >>> layer = keras.layers.Dense(128, kernel_regularizer=L21(1e-4))
        >>> model.fit(x, epochs=50, callbacks=[AdaptiveL21(layer, target=0.25)])
    """

    def __init__(
        self,
        targets,
        target: float,
        measure: str = "groups_95_energy",
        l21: float = 1e-4,
        dual_lr: float = 1.0,
        every: int | None = None,
        group_axis: int = -2,
    ):
        super().__init__()
        self.prox = targets if isinstance(targets, ProximalL21) else None
        self.targets = self.prox.targets if self.prox else target_list(targets)
        if isinstance(target, bool) or not isinstance(target, numbers.Real):
            raise TypeError(f"target must be a float in (0, 1); got {type(target).__name__}")
        if not 0 < float(target) < 1:
            raise ValueError(f"target must be a fraction in (0, 1); got {target}")
        self.target = float(target)
        if measure not in MEASURES:
            raise ValueError(f"measure must be one of {tuple(MEASURES)}; got {measure!r}")
        self.measure = measure
        l21 = validate_factor(l21, "l21")
        if l21 == 0:
            raise ValueError("l21 must be > 0: a multiplicative step cannot leave 0")
        self.dual_lr = validate_factor(dual_lr, "dual_lr")
        if self.dual_lr == 0:
            raise ValueError("dual_lr must be > 0")
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, numbers.Integral) or every < 1
        ):
            raise ValueError(f"every must be None or an int >= 1; got {every!r}")
        self.every = every
        self.group_axis = self.prox.group_axis if self.prox else validate_group_axis(group_axis)
        self.l21 = keras.Variable(l21, dtype="float32", trainable=False, name="adaptive_l21")
        self.last_measure = float("nan")
        self._home = None
        self._restore: list = []
        self._batches = 0

    def value(self) -> float:
        """The current `λ` (on JAX, call after the state has been synced, e.g. via `.model`)."""
        return float(ops.convert_to_numpy(self.l21))

    def sparsity(self) -> float:
        """The measure `s`, averaged over the target kernels (NumPy core)."""
        read, _ = MEASURES[self.measure]
        values = [
            read(sparsity_summary(ops.convert_to_numpy(v), self.group_axis)) for v in self._kernels
        ]
        return float(np.mean(values))

    def on_train_begin(self, logs=None):
        model = self.model
        self._kernels = kernel_variables(self.targets, "AdaptiveL21")
        if self.prox is not None:
            # The prox reads l21 inside the optimizer's step: an optimizer variable.
            self._home = model.optimizer
            self.prox.l21 = self.l21
        else:
            regs = [v.regularizer for v in self._kernels]
            for v, reg in zip(self._kernels, regs, strict=True):
                if not isinstance(reg, L21):
                    raise ValueError(
                        f"AdaptiveL21 targets must have an L21 regularizer (or pass a "
                        f"ProximalL21); {v.path} has {reg!r}"
                    )
            for v, reg in zip(self._kernels, regs, strict=True):
                v.regularizer = _VariableL21(self.l21, reg.group_axis)
            self._restore = list(zip(self._kernels, regs, strict=True))
            self._home = model  # the penalty is read in the forward pass: a model variable
        _track(self._home, self.l21)
        _hide_from_saving(self._home, self.l21)
        self._batches = 0
        model.make_train_function(force=True)

    def _update(self) -> None:
        _ = self.model  # on JAX: sync the training state into the variables first
        s = self.sparsity()
        _, sign = MEASURES[self.measure]
        lam = self.value() * math.exp(self.dual_lr * sign * (s - self.target))
        self.l21.assign(min(max(lam, 1e-30), 1e30))
        self.last_measure = s

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        if self.every is not None and self._batches % self.every == 0:
            self._update()

    def on_epoch_end(self, epoch, logs=None):
        if self.every is None:
            self._update()
        if logs is not None:
            _ = self.model
            logs["adaptive_l21"] = self.value()
            logs["adaptive_measure"] = self.last_measure

    def on_train_end(self, logs=None):
        _ = self.model
        final = self.value()
        self._home._untrack_variable(self.l21)
        del self._home.save_own_variables  # back to the class's method
        if self.prox is not None:
            self.prox.l21 = final
        for v, reg in self._restore:
            reg.l21 = final
            v.regularizer = reg
        self._restore = []
        self.model.train_function = None
