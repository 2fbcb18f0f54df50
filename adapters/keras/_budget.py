"""`GroupBudget`: an exact budget of non-zero groups (the L2,0 constraint of Theorem 5.6),
reached along the cubic schedule of gradual magnitude pruning (Zhu and Gupta, 2017).

After each optimizer step the target kernels are projected onto "at most k(t) non-zero
groups": the k(t) groups of largest norm are kept, the others set to exactly 0 (ties to the
lower index), with

    k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,  rounded up,

G before `begin_step` t0 and `k_f` from `end_step` t1 on. The step number t is the optimizer's
(`iterations + 1` during the step). The schedule is evaluated inside the compiled step from
the steps at which it drops (`sparsehead.budget.budget_steps`, exact integer arithmetic), and
the top-k with a budget that is a traced scalar by thresholding at the k-th largest norm.
"""

from __future__ import annotations

import numbers

import keras
from keras import ops

from sparsehead.budget import budget_steps, resolve_keep

from ._ops import group_norms, normalize_axis
from ._penalty import validate_group_axis
from ._prox import _unwrap
from ._step import install_step, kernel_variables, remove_step, target_list

__all__ = ["BudgetSchedule", "GroupBudget", "l20_project"]


def l20_project(w, keep, group_axis: int = -2):
    """Keep the `keep` groups of largest L2 norm, zero the rest (ties to the lower index).

    `keep` may be a Python int or a traced integer scalar in `[0, G]` (a data-dependent k under
    jit): the norms are sorted, the k-th largest `v` is the threshold, groups above it are kept
    and groups equal to it are kept in index order until k are kept. Matches
    `sparsehead.l20_project` where the float32 norms order the groups as the float64 ones do.

    Returns:
        `w` with the dropped groups set to exactly 0 (kept groups unchanged), in `w`'s dtype.
    """
    w = ops.convert_to_tensor(w)  # constraints get the variable itself
    g = group_norms(w, group_axis)  # (G,), float32 for half precision
    n_groups = g.shape[0]
    k = ops.cast(keep, "int32")
    v = ops.take(ops.flip(ops.sort(g), axis=0), ops.clip(k - 1, 0, n_groups - 1))
    above = g > v
    tie = g == v
    room = k - ops.sum(ops.cast(above, "int32"))  # places left for groups equal to v (0 if k=0)
    rank = ops.cumsum(ops.cast(tie, "int32"))  # 1, 2, ... among the ties, in index order
    kept = ops.logical_or(above, ops.logical_and(tie, rank <= room))
    shape = [1] * len(w.shape)
    shape[normalize_axis(group_axis, len(w.shape))] = n_groups
    return ops.where(ops.reshape(kept, shape), w, ops.zeros_like(w))


class BudgetSchedule:
    """The cubic budget `k(step)` for a (traced) integer `step`, as an int32 tensor.

    Equal to `sparsehead.budget_schedule(step, groups, keep, begin_step, end_step)`: the
    steps `T` at which it drops (`sparsehead.budget.budget_steps`, exact integer arithmetic)
    are a constant made here, eagerly, and `k(step) = groups - count(step >= T)`.
    """

    def __init__(self, groups: int, keep: int, begin_step: int, end_step: int):
        self.groups, self.keep = groups, resolve_keep(keep, groups)
        self.begin_step, self.end_step = begin_step, end_step
        drops = budget_steps(groups, keep, begin_step, end_step).astype("int32")
        self.drops = ops.convert_to_tensor(drops) if drops.size else None

    def __call__(self, step):
        if self.drops is None:
            return ops.convert_to_tensor(self.groups, "int32")
        passed = ops.sum(ops.cast(ops.cast(step, "int32") >= self.drops, "int32"))
        return self.groups - passed


def _check_int(value, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int; got {value!r} of type {type(value).__name__}")
    if value < low:
        raise ValueError(f"{name} must be >= {low}; got {value}")
    return int(value)


class GroupBudget(keras.callbacks.Callback):
    """Exact group budget: at most `k(t)` non-zero groups in each target kernel during `fit`.

    After every optimizer step (inside the compiled step, on every backend) each kernel is
    projected onto its budget: the `k(t)` groups (input features) of largest L2 norm are kept
    and the others set to exactly 0, ties to the lower index. `k(t)` follows the cubic schedule
    of gradual pruning (Zhu and Gupta, 2017) from all `G` groups at `begin_step` to `keep` at
    `end_step`, and stays there: from `end_step` on, exactly `keep` groups are non-zero (when
    at least `keep` groups are). Steps are counted by the optimizer's `iterations` (the first
    step of a fresh optimizer is step 1), so a second `fit` continues the schedule.

    The end-of-epoch logs (and so the `History`) get `budget`: the schedule's value after the
    epoch's last step, summed over the targets.

    Args:
        targets: a layer with a `kernel`, a `keras.Variable`, or a list of them. The kernels
            must not have another constraint (this installs one during `fit`).
        keep: the final budget per kernel: an int in `[0, G]`, or a float fraction in
            `(0, 1]` of the groups (rounded up), as `sparsehead.l20_project`.
        begin_step: `t0 >= 0`; before it the kernels are not touched (`k = G`).
        end_step: `t1 >= t0`; `None` for the last step of this `fit` (needs a known number
            of steps per epoch).
        every: project every `every` steps (and at every step from `end_step` on).
        group_axis: the axis whose index names a group (-2 for Keras kernels).

    Example:
        >>> model.fit(x, epochs=20, callbacks=[GroupBudget(head.dense2, keep=0.25)])
    """

    def __init__(
        self,
        targets,
        keep,
        begin_step: int = 0,
        end_step: int | None = None,
        every: int = 1,
        group_axis: int = -2,
    ):
        super().__init__()
        self.targets = target_list(targets)
        if isinstance(keep, numbers.Integral) and not isinstance(keep, bool):
            _check_int(keep, "keep", 0)
        else:
            resolve_keep(keep, 1)  # a fraction in (0, 1]; TypeError or ValueError otherwise
        self.keep = keep
        self.begin_step = _check_int(begin_step, "begin_step", 0)
        self.end_step = None if end_step is None else _check_int(end_step, "end_step", begin_step)
        self.every = _check_int(every, "every", 1)
        self.group_axis = validate_group_axis(group_axis)
        self._installed: list = []
        self._plans: dict = {}

    def variables(self) -> list:
        """The kernels this callback projects."""
        return kernel_variables(self.targets, "GroupBudget")

    def _plan(self, variable, end_step: int) -> BudgetSchedule:
        groups = int(variable.shape[normalize_axis(self.group_axis, len(variable.shape))])
        return BudgetSchedule(groups, self.keep, self.begin_step, end_step)

    def budget(self, step, variable):
        """`k(step)` for `variable` (an int32 tensor; `step` may be traced)."""
        return self._plans[id(variable)](step)

    def project_step(self, w, variable):
        """Project `w` onto the budget of the step being taken (inside the optimizer step)."""
        # Not `self.model`: on JAX that property syncs the training state mid-trace.
        w = ops.convert_to_tensor(w)  # constraints get the variable itself
        opt = _unwrap(self._model.optimizer)
        step = ops.cast(opt.iterations, "int32") + 1  # constraints run before the increment
        projected = l20_project(w, self.budget(step, variable), self.group_axis)
        if self.every == 1:
            return projected
        end = self._plans[id(variable)].end_step
        due = ops.logical_or(step % self.every == 0, step >= end)
        return ops.where(due, projected, w)

    def on_train_begin(self, logs=None):
        variables = self.variables()
        end = self.end_step
        if end is None:
            epochs, steps = self.params.get("epochs"), self.params.get("steps")
            if not steps:
                raise ValueError(
                    "GroupBudget(end_step=None) needs the number of steps per epoch; "
                    "pass end_step or steps_per_epoch"
                )
            start = int(ops.convert_to_numpy(self.model.optimizer.iterations))
            end = max(self.begin_step, start + epochs * steps)
        self._plans = {id(v): self._plan(v, end) for v in variables}
        self._installed = install_step(self, variables, self.project_step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        logs["budget"] = int(
            sum(ops.convert_to_numpy(self.budget(step, v)) for v in self._installed)
        )

    def on_train_end(self, logs=None):
        remove_step(self, self._installed)
        self._installed = []
