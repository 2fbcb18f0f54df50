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
`ln(100) / (dual_lr * |s - s*|)` updates. `controller="pi"` takes the damped PI step
instead (νPI in `log λ` on the averaged measure, `sparsehead.controller.DampedPI`). The rules,
their period and their measures are the core's (`sparsehead.controller.DualAscent`,
`DampedPI`, `measure_fraction`); this module holds `λ` in a variable that the compiled train
step reads, and calls the rule after optimizer steps.
"""

from __future__ import annotations

import warnings

import keras
import numpy as np
from keras import ops

from sparsehead._validation import check_int, check_real
from sparsehead.controller import MEASURES, adaptive_controller, measure_fraction

from .._deprecation import legacy
from ._ops import group_norms
from ._penalty import L21
from ._prox import ProximalL21
from ._step import kernel_variables, target_list

__all__ = ["MEASURES", "TRACKING_CHECKED_ON", "AdaptiveL21"]

#: Keras versions on which the private tracking API used by `_track` was checked.
TRACKING_CHECKED_ON = ("3.12.0", "3.15.1")  # 3.12.0: the floor (.ci/floors); 3.11 fails


class _VariableL21(keras.regularizers.Regularizer):
    """`lam * ||W||_{2,1}` with `lam` a variable, installed on the kernels during `fit`."""

    def __init__(self, lam, group_axis: int):
        self.lam = lam
        self.group_axis = group_axis

    def __call__(self, x):
        norms = group_norms(x, self.group_axis)
        return ops.cast(self.lam, norms.dtype) * ops.sum(norms)


def _private_tracking(owner):
    """`owner`'s private tracker (Keras has no public way to add a variable to a built model's
    or optimizer's state); a clear error where this Keras version lacks it."""
    tracker = getattr(owner, "_tracker", None)
    if tracker is None or not all(
        hasattr(owner, name) for name in ("_track_variable", "_untrack_variable")
    ):
        raise RuntimeError(
            f"AdaptiveL21 uses Keras' private variable tracking (_tracker, _track_variable, "
            f"_untrack_variable), checked on Keras {', '.join(TRACKING_CHECKED_ON)}; this "
            f"Keras {keras.__version__} {type(owner).__name__} lacks it"
        )
    return tracker


def _track(owner, variable) -> None:
    """Add `variable` to `owner`'s (a model's or an optimizer's) state for this `fit`.

    On JAX the train step is a pure function of the model's and the optimizer's variables: a
    variable outside them would be read once, at tracing, as a constant.
    """
    tracker = _private_tracking(owner)
    locked = tracker.locked
    tracker.unlock()
    owner._track_variable(variable)
    if locked:
        tracker.lock()


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

    After optimizer steps `every, 2 * every, ...` (counted over the whole training: a second
    `fit` continues the count) the measure `s` of the target kernels is read
    (`sparsehead.controller.measure_fraction`, a fraction of the groups, averaged over the
    kernels) and `λ` takes the core's dual step (`sparsehead.controller.DualAscent`),
    `λ <- clip(λ exp(sign * dual_lr (s - s*)), min_l21, max_l21)`: `λ` rises while the kernels
    are denser than the target and falls while they are sparser. `controller="pi"` takes the
    damped PI step of `sparsehead.controller.DampedPI` instead (νPI, Sohrabi et al. 2024):
    the same integral step on the averaged measure `s̄`, plus `kp` times the change of the
    error's average `ξ` (damping `nu`); its state `(ξ, s̄)` carries over to a second `fit`.

    `λ` is held in a `keras.Variable` (`.l21`) that the compiled train step reads, so no
    recompilation happens. Two ways to apply it:

    - penalty: `targets` are layers (or kernels) whose regularizer is an `L21`; during `fit`
      their penalty is `λ ||W||_{2,1}` with the adapted `λ`, and at the end the `L21`'s `l21`
      is set to the final `λ` (so the saved model carries it);
    - proximal: `prox=` a `ProximalL21` callback (pass it to `fit` too, before or after this
      one); its `l21` follows `λ` during `fit` and is the final `λ` afterwards. `targets=None`
      measures the prox's kernels.

    The end-of-epoch logs (and so the `History`) get `adaptive_l21` (the current `λ`) and
    `adaptive_measure` (the last measured `s`, NaN before the first update).

    Args:
        target: `s*`, a fraction in the open interval (0, 1).
        targets: layers / kernels (with an `L21` regularizer unless `prox` is given); `None`
            takes the kernels of `prox`.
        measure: one of `sparsehead.controller.MEASURES`: `"groups_95_energy"` (the fewest
            groups holding 95 % of `||W||_F^2`, lower is sparser), `"frac_below_1pct"`,
            `"frac_below_0p1pct"` (groups below 1 % / 0.1 % of the largest, higher is sparser),
            `"zero_groups"` (exact zeros, higher is sparser); all fractions of the groups.
        l21: the starting `λ > 0` (clipped into `[min_l21, max_l21]`).
        dual_lr: the step `η > 0` on `log λ`.
        every: update after every `every`-th optimizer step (per epoch: the steps per epoch).
        min_l21: the floor `λ_min > 0`.
        max_l21: the cap `λ_max >= min_l21`; reaching it warns (`RuntimeWarning`).
        group_axis: the axis whose index names a group, for the measure (-2 for Keras
            kernels; with `prox` and `targets=None`, the prox's own `group_axis`).
        prox: a `ProximalL21` whose strength follows `λ`, instead of the `L21` penalties.
        controller: `"dual"` (the dual step, `DualAscent`) or `"pi"` (`DampedPI`).
        kp: `DampedPI`'s proportional gain `K_P >= 0`. For `kp`, `nu` and `smoothing`,
            `None` takes `sparsehead.controller.PI_DEFAULTS`; a value with
            `controller="dual"` is a `ValueError`.
        nu: `DampedPI`'s damping `ν` in `[0, 1)` (the error's average `ξ`).
        smoothing: `DampedPI`'s averaging `β` in `[0, 1)` of the measure (`s̄`).

    Attributes: `l21` (the `λ` variable; `value()` reads it), `measure_value` (the last `s`,
    `None` before the first update), `controller` (the core's rule object; its state and `λ`
    are `state_dict()`, for a checkpoint: `load_state_dict` restores them). The old order
    `AdaptiveL21(targets, target, measure, l21, dual_lr, every, group_axis)` and a
    `ProximalL21` passed as `targets` keep working for one release, with a
    `DeprecationWarning` (`every=None`, "per epoch", is gone).

    Example:
        >>> layer = keras.layers.Dense(128, kernel_regularizer=L21(1e-4))
        >>> model.fit(x, epochs=50, callbacks=[AdaptiveL21(0.25, layer, every=100)])
    """

    @legacy(
        "AdaptiveL21",
        lead=1,
        order=("target", "targets"),
        old_positional=("measure", "l21", "dual_lr", "every", "group_axis"),
    )
    def __init__(
        self,
        target: float,
        targets=None,
        *,
        measure: str = "groups_95_energy",
        l21: float = 1e-4,
        dual_lr: float = 1.0,
        every: int = 50,
        min_l21: float = 1e-12,
        max_l21: float = 1000.0,
        group_axis: int = -2,
        prox: ProximalL21 | None = None,
        controller: str = "dual",
        kp: float | None = None,
        nu: float | None = None,
        smoothing: float | None = None,
    ):
        super().__init__()
        if isinstance(targets, ProximalL21):
            if prox is not None:
                raise TypeError("AdaptiveL21() got a ProximalL21 as targets and as prox")
            warnings.warn(
                "AdaptiveL21(targets=<ProximalL21>) is deprecated and will be removed in the "
                "next release; pass it as prox=",
                DeprecationWarning,
                stacklevel=3,
            )
            targets, prox = None, targets
        self.controller = adaptive_controller(
            ProximalL21,
            prox,
            targets,
            target,
            measure,
            dual_lr,
            every,
            min_l21,
            max_l21,
            controller=controller,
            kp=kp,
            nu=nu,
            smoothing=smoothing,
        )
        self.prox = prox
        self.targets = prox.targets if targets is None else target_list(targets)
        if targets is None:
            self.group_axis = prox.group_axis
        else:
            self.group_axis = check_int(group_axis, "group_axis")
        l21 = self.controller.clip(check_real(l21, "l21", low=0, low_open=True))
        self.l21 = keras.Variable(l21, dtype="float32", trainable=False, name="adaptive_l21")
        self.measure_value: float | None = None
        self._home = None
        self._restore: list = []
        self._step = 0
        self._warned = False

    target = property(lambda self: self.controller.target, doc="`s*`.")
    measure = property(lambda self: self.controller.measure, doc="The measure's name.")
    dual_lr = property(lambda self: self.controller.dual_lr, doc="`η`.")
    every = property(lambda self: self.controller.every, doc="The period in steps.")
    min_l21 = property(lambda self: self.controller.min_l21, doc="The floor of `λ`.")
    max_l21 = property(lambda self: self.controller.max_l21, doc="The cap of `λ`.")

    @property
    def last_measure(self) -> float:
        """Deprecated name of `measure_value` (NaN before the first update)."""
        warnings.warn(
            "AdaptiveL21.last_measure is deprecated and will be removed in the next release; "
            "use measure_value",
            DeprecationWarning,
            stacklevel=2,
        )
        return float("nan") if self.measure_value is None else self.measure_value

    def value(self) -> float:
        """The current `λ` (on JAX, call after the state has been synced, e.g. via `.model`)."""
        return float(ops.convert_to_numpy(self.l21))

    def state_dict(self) -> dict:
        """`{"l21": λ, "controller": the rule's state}` (the step count is the optimizer's)."""
        return {"l21": self.value(), "controller": self.controller.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Restore `state_dict()` (e.g. into a new `AdaptiveL21` after a restart)."""
        self.l21.assign(self.controller.clip(check_real(state["l21"], "l21", low=0, low_open=True)))
        self.controller.load_state_dict(state.get("controller", {}))

    def sparsity(self) -> float:
        """The measure `s`, averaged over the target kernels (`measure_fraction`)."""
        values = [
            measure_fraction(ops.convert_to_numpy(v), self.group_axis, self.measure)
            for v in self._kernels
        ]
        return float(np.mean(values))

    def on_train_begin(self, logs=None):
        model = self.model
        self._kernels = kernel_variables(self.targets, "AdaptiveL21", self.group_axis)
        if self.prox is not None:
            # The prox reads l21 inside the optimizer's step: an optimizer variable.
            self._home = model.optimizer
            self.prox.l21 = self.l21
        else:
            regs = [v.regularizer for v in self._kernels]
            for v, reg in zip(self._kernels, regs, strict=True):
                if not isinstance(reg, L21):
                    raise ValueError(
                        f"AdaptiveL21 targets must have an L21 regularizer (or pass prox=); "
                        f"{v.path} has {reg!r}"
                    )
            for v, reg in zip(self._kernels, regs, strict=True):
                v.regularizer = _VariableL21(self.l21, reg.group_axis)
            self._restore = list(zip(self._kernels, regs, strict=True))
            self._home = model  # the penalty is read in the forward pass: a model variable
        _track(self._home, self.l21)
        _hide_from_saving(self._home, self.l21)
        # Optimizer steps completed so far, over the whole training (a second fit continues).
        self._step = int(ops.convert_to_numpy(model.optimizer.iterations))
        model.make_train_function(force=True)

    def _update(self) -> None:
        _ = self.model  # on JAX: sync the training state into the variables first
        s = self.sparsity()
        lam = self.controller.update(self.value(), s)
        self.l21.assign(lam)
        self.measure_value = s
        if self.controller.at_cap(lam) and not self._warned:
            self._warned = True
            warnings.warn(
                f"AdaptiveL21: λ reached max_l21={self.max_l21} with the measure at {s:.3g} "
                f"(target {self.target}): the measure does not respond to λ",
                RuntimeWarning,
                stacklevel=2,
            )

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1  # one optimizer step per batch (steps_per_execution=1)
        if self.controller.due(self._step):
            self._update()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            _ = self.model
            logs["adaptive_l21"] = self.value()
            logs["adaptive_measure"] = (
                float("nan") if self.measure_value is None else self.measure_value
            )

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
