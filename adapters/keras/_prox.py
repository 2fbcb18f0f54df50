"""Exact group sparsity: a proximal step (group soft-thresholding) after each optimizer step.

A loss penalty `lambda ||W||_{2,1}` pulls groups towards zero but, with a (sub)gradient step,
never lands on exactly zero. Proximal gradient descent applies the prox of the penalty after
the optimizer's step instead:

    W_j <- max(0, 1 - t_j / ||W_j||_2) * W_j        (zero where ||W_j||_2 <= t_j)

For plain gradient descent with step size `lr` the matching threshold is `t = lr * lambda`.
Adaptive optimizers rescale every coordinate of a gradient by a preconditioner: Adam's step is
`lr * m_hat / (sqrt(v_hat) + eps)`, so the penalty's gradient `lambda * W_j / ||W_j||` would
move group `j` by about `lr * lambda / d_j` with `d_j` its preconditioner. The textbook
`lr * lambda` is then orders of magnitude too small (`sqrt(v_hat)` is the gradient's RMS,
often 1e-3 or less) and nothing ever reaches zero. `ProximalL21` therefore uses, per group,

    t_j = lr_t * lambda / mean_{i in group j}(D_i)

with `D_i` the optimizer's current diagonal preconditioner:

- SGD (any momentum): `D_i = 1`, so `t = lr_t * lambda`;
- Adam and AdamW: Keras' step is `lr * sqrt(1 - b2^k) / (1 - b1^k) * m / (sqrt(v) + eps)`,
  i.e. `D_i = (sqrt(v_i) + eps) / sqrt(1 - b2^k)` (k the step number; the running maximum
  of `v` with AMSGrad); Nadam: `D_i = sqrt(v_i / (1 - b2^k)) + eps`;
- RMSprop: `D_i = sqrt(v_i) + eps`.

This is the proximal step in the optimizer's metric with the metric averaged over each group
(the exact prox of a group norm under a non-uniform diagonal metric has no closed form). With
`precondition="lr"` the textbook `lr_t * lambda` is used for any optimizer; `"adam"` insists
on an Adam-like optimizer (Adam, AdamW, Nadam).
"""

from __future__ import annotations

import keras
from keras import ops

from sparsehead._validation import check_choice, check_int, check_nonnegative

from .._deprecation import MISSING, legacy, renamed
from ._ops import compute_dtype, group_norms
from ._step import install_step, kernel_variables, remove_step, target_list

__all__ = ["ProximalL21", "group_preconditioner", "l21_prox"]

_PRECONDITIONS = ("auto", "adam", "lr")


def l21_prox(w, threshold, group_axis: int = -2):
    """Proximal operator of `threshold * ||.||_{2,1}` (group soft-thresholding), in keras.ops.

    `prox(W)_j = max(0, 1 - t_j / ||W_j||_2) * W_j`: a group whose norm is at most `t_j`
    becomes exactly 0. Matches `sparsehead.l21_prox`.

    Args:
        w: weight of at least 2 dimensions.
        threshold: `t >= 0`: a scalar, one value per group (shape `(G,)`), or a tensor that
            broadcasts against `group_norms(w, group_axis, keepdims=True)`.
        group_axis: the axis whose index names a group (-2 for Keras kernels).

    Returns:
        The thresholded weight, in `w`'s dtype (computed in float32 for half precision).
    """
    g = group_norms(w, group_axis, keepdims=True)
    if isinstance(threshold, (int, float)):  # not via float32, as ops.cast(float) would do
        t = ops.convert_to_tensor(threshold, dtype=g.dtype)
    else:
        t = ops.cast(threshold, g.dtype)
    if len(t.shape) == 1:
        t = ops.reshape(t, g.shape)
    keep = g > t
    factor = ops.where(keep, 1.0 - t / ops.where(keep, g, ops.ones_like(g)), ops.zeros_like(g))
    return ops.cast(ops.cast(w, g.dtype) * factor, w.dtype)


def _unwrap(optimizer):
    """The optimizer that owns the slots (LossScaleOptimizer wraps one)."""
    return getattr(optimizer, "inner_optimizer", optimizer)


def _kind(opt) -> str:
    """Which preconditioner `opt` has: "sgd", "adam", "nadam", "rmsprop"; else ValueError."""
    if isinstance(opt, keras.optimizers.SGD):
        return "sgd"
    if isinstance(opt, keras.optimizers.Nadam):
        return "nadam"
    if isinstance(opt, keras.optimizers.Adam):  # AdamW subclasses Adam
        return "adam"
    if isinstance(opt, keras.optimizers.RMSprop) and not opt.centered:
        return "rmsprop"
    raise ValueError(
        f"ProximalL21 does not know the preconditioner of {type(opt).__name__}; "
        "supported: SGD, Adam, AdamW, Nadam, RMSprop (centered=False). "
        'Pass precondition="lr" for the textbook threshold lr * l21.'
    )


def group_preconditioner(optimizer, variable, group_axis: int = -2):
    """Per-group mean of the optimizer's diagonal preconditioner `D` for `variable`, or None.

    None means `D = 1` (SGD). Must be called inside the optimizer's step, after the update of
    the slots and before the step counter is incremented (as Keras applies constraints).
    """
    opt = _unwrap(optimizer)
    kind = _kind(opt)
    if kind == "sgd":
        return None
    index = opt._get_variable_index(variable)
    if kind in ("adam", "nadam"):
        v = opt._velocity_hats[index] if getattr(opt, "amsgrad", False) else opt._velocities[index]
        dtype = compute_dtype(v.dtype)
        step = ops.cast(opt.iterations + 1, dtype)
        bias = ops.sqrt(1.0 - ops.power(ops.cast(opt.beta_2, dtype), step))
        v = ops.cast(v, dtype)
        if kind == "adam":  # lr * sqrt(1 - b2^k) / (1 - b1^k) * m / (sqrt(v) + eps)
            d = (ops.sqrt(v) + opt.epsilon) / bias
        else:  # lr * m_hat / (sqrt(v_hat) + eps)
            d = ops.sqrt(v) / bias + opt.epsilon
    else:
        v = opt._velocities[index]
        d = ops.sqrt(ops.cast(v, compute_dtype(v.dtype))) + opt.epsilon
    ax = group_axis % len(d.shape)
    axes = tuple(i for i in range(len(d.shape)) if i != ax)
    return ops.mean(d, axis=axes, keepdims=True)


class ProximalL21(keras.callbacks.Callback):
    """Proximal L2,1 step: exact group sparsity for the given kernels during `model.fit`.

    After every optimizer step the kernels are group-soft-thresholded,
    `W_j <- max(0, 1 - t_j / ||W_j||_2) * W_j`, so a group (input feature) whose norm falls
    below its threshold becomes exactly 0: this solves `min loss + l21 * ||W||_{2,1}` by
    proximal gradient instead of adding the penalty to the loss (do not do both).

    The threshold follows the optimizer (see the module docs): `t = lr_t * l21` for SGD and
    `t_j = lr_t * l21 / mean_j(D)` for Adam/AdamW/Nadam/RMSprop, with `D` the optimizer's
    per-coordinate preconditioner (`(sqrt(v) + eps) / sqrt(1 - beta_2^k)` for Adam), so a
    given `l21` shrinks a group by about as much per step as the penalty's gradient would
    under the same optimizer. `precondition="lr"` forces the textbook `lr_t * l21`.

    The step runs inside the compiled train step: during training the callback installs itself
    as the kernels' `constraint` (which Keras applies after each update on every backend) and
    removes itself at the end. The kernels must not have another constraint.

    Args:
        l21: the factor `lambda >= 0`.
        targets: a layer with a `kernel` (Dense, Conv, `ProjectionHead`), a `keras.Variable`,
            or a list of them.
        group_axis: the axis whose index names a group (-2 for Keras kernels).
        precondition: `"auto"` (default: the optimizer's preconditioner, as above; another
            optimizer is a ValueError when training starts), `"adam"` (the same, but the
            optimizer must be Adam, AdamW or Nadam) or `"lr"` (the textbook `lr_t * l21`).
        scaling: deprecated name of `precondition` (`"auto"` or `"lr"`).

    Example:
        >>> head = ProjectionHead(512, 128, l21=0.0)
        >>> model.fit(x, callbacks=[ProximalL21(1e-2, head)])

    The old order `ProximalL21(targets, l21, group_axis, precondition)` keeps working for one
    release, with a `DeprecationWarning`.
    """

    @legacy(
        "ProximalL21",
        lead=1,
        order=("l21", "targets"),
        old_positional=("group_axis", "precondition"),
    )
    def __init__(
        self,
        l21: float,
        targets,
        *,
        group_axis: int = -2,
        precondition: str = "auto",
        scaling: str = MISSING,
    ):
        super().__init__()
        if scaling is not MISSING:  # the deprecated name; "auto" is also the default
            given = MISSING if precondition == "auto" else precondition
            precondition = renamed("ProximalL21", "precondition", given, "scaling", scaling)
        self.targets = target_list(targets)
        self.l21 = check_nonnegative(l21, "l21")
        self.group_axis = check_int(group_axis, "group_axis")
        self.precondition = check_choice(precondition, "precondition", _PRECONDITIONS)
        self._installed: list = []

    def variables(self) -> list:
        """The kernels this step acts on."""
        return kernel_variables(self.targets, "ProximalL21", self.group_axis)

    def threshold(self, variable):
        """The per-step threshold for `variable`: a scalar, or per group for "auto"."""
        # Not `self.model`: on JAX that property syncs the training state, which must not
        # happen while the train step is being traced.
        opt = _unwrap(getattr(self._model, "optimizer", None))
        if opt is None:
            raise ValueError("ProximalL21 needs a compiled model with an optimizer")
        lr = ops.cast(opt.learning_rate, "float32")
        t = lr * ops.cast(self.l21, "float32")  # a float, or a keras.Variable (AdaptiveL21)
        if self.precondition != "lr":
            d = group_preconditioner(opt, variable, self.group_axis)
            if d is not None:
                t = t / ops.cast(d, "float32")
        return t

    def prox_step(self, w, variable):
        """`l21_prox(w, threshold(variable), group_axis)`."""
        return l21_prox(w, self.threshold(variable), self.group_axis)

    def on_train_begin(self, logs=None):
        opt = _unwrap(self.model.optimizer)
        if self.precondition != "lr":
            kind = _kind(opt)  # fail here, before anything is installed or traced
            if self.precondition == "adam" and kind not in ("adam", "nadam"):
                raise ValueError(
                    f'ProximalL21(precondition="adam") needs Adam, AdamW or Nadam; got '
                    f'{type(opt).__name__} (use precondition="auto" or "lr")'
                )
        self._installed = install_step(self, self.variables(), self.prox_step)

    def on_train_end(self, logs=None):
        remove_step(self, self._installed)
        self._installed = []

    @property
    def scaling(self) -> str:
        """Deprecated name of `precondition` (`"adam"` reads as `"auto"`)."""
        return "lr" if self.precondition == "lr" else "auto"
