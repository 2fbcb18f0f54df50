"""`GroupBudget`: an exact budget of non-zero groups (the L2,0 constraint of Theorem 5.6),
reached along the cubic schedule of gradual magnitude pruning (Zhu and Gupta, 2017).

After each optimizer step the target kernels are projected onto "at most k(t) non-zero
groups": the k(t) groups of largest norm are kept, the others set to exactly 0 (ties to the
lower index), with

    k(t) = k_f + (G - k_f) * (1 - (t - t0) / (t1 - t0))^3,  rounded up,

G up to `begin_step` t0 and `k_f` from `end_step` t1 on (`end_step=None`: t1 = t0, no ramp).
The rule is the core's `sparsehead.schedule.BudgetSchedule`: after optimizer step t (counted
from 1 over the whole training, so a second `fit` continues the count; `iterations + 1`
during the step), project when `t` is a multiple of `every`. The schedule is evaluated inside
the compiled step from the steps at which it drops (`drop_steps`, exact integer arithmetic),
and the top-k with a budget that is a traced scalar by thresholding at the k-th largest norm.
"""

from __future__ import annotations

import functools
import numbers

import keras
from keras import ops

from sparsehead import schedule
from sparsehead._validation import check_int
from sparsehead.budget import resolve_keep

from .._deprecation import legacy
from ._ops import group_norms, normalize_axis
from ._prox import _unwrap
from ._step import install_step, kernel_variables, remove_step, target_list

__all__ = ["BudgetSchedule", "GroupBudget", "l20_project"]


def l20_project(w, keep, group_axis: int = -2):
    """Keep the `keep` groups of largest L2 norm, zero the rest (ties to the lower index).

    `keep` may be a Python int in `[1, G]` or fraction in `(0, 1]` (checked as the core's
    `resolve_keep`: 0 is refused), or a traced integer scalar in `[1, G]` (a data-dependent k
    under jit, not checked): the norms are sorted, the k-th largest `v` is the threshold,
    groups above it are kept and groups equal to it are kept in index order until k are kept.
    Matches `sparsehead.l20_project` where float32 norms order the groups as float64 ones do,
    with its ranking of non-finite groups: NaN first, then +inf, then finite norms.

    Returns:
        `w` with the dropped groups set to exactly 0 (kept groups unchanged), in `w`'s dtype.
    """
    w = ops.convert_to_tensor(w)  # constraints get the variable itself
    g = group_norms(w, group_axis)  # (G,), float32 for half precision
    n_groups = g.shape[0]
    if isinstance(keep, numbers.Real):  # a Python number: the core's check (0 is refused)
        keep = resolve_keep(keep, n_groups)
    k = ops.cast(keep, "int32")
    # The core's ranking: NaN groups first, then +inf, then finite norms descending; ties (NaN
    # with NaN included) to the lower index. A NaN is never dropped before a finite group.
    nan = ops.isnan(g)
    inf = ops.isinf(g)
    fin = ops.logical_not(ops.logical_or(nan, inf))
    n_nan = ops.sum(ops.cast(nan, "int32"))
    n_inf = ops.sum(ops.cast(inf, "int32"))
    keep_nan = ops.logical_and(nan, ops.cumsum(ops.cast(nan, "int32")) <= k)
    keep_inf = ops.logical_and(inf, ops.cumsum(ops.cast(inf, "int32")) <= k - n_nan)
    k_fin = k - n_nan - n_inf  # places left for finite groups (<= 0: none)
    gf = ops.where(fin, g, -ops.ones_like(g))  # non-finite below every finite norm (>= 0)
    v = ops.take(ops.flip(ops.sort(gf), axis=0), ops.clip(k_fin - 1, 0, n_groups - 1))
    above = ops.logical_and(fin, gf > v)
    tie = ops.logical_and(fin, gf == v)
    room = k_fin - ops.sum(ops.cast(above, "int32"))  # places left for groups equal to v
    rank = ops.cumsum(ops.cast(tie, "int32"))  # 1, 2, ... among the ties, in index order
    keep_fin = ops.logical_or(above, ops.logical_and(tie, rank <= room))
    kept = ops.logical_or(ops.logical_or(keep_nan, keep_inf), keep_fin)
    shape = [1] * len(w.shape)
    shape[normalize_axis(group_axis, len(w.shape))] = n_groups
    return ops.where(ops.reshape(kept, shape), w, ops.zeros_like(w))


class BudgetSchedule(schedule.BudgetSchedule):
    """The core's `sparsehead.schedule.BudgetSchedule`, also callable on a (traced) step.

    `schedule(step)` is `k(step)` as an int32 tensor, equal to `keep_at(step)`: the steps `T`
    at which it drops (`drop_steps()`, exact integer arithmetic) are a constant of the traced
    function, and `k(step) = groups - count(step >= T)`.
    """

    @functools.wraps(schedule.BudgetSchedule.__init__)  # the core's signature, not a copy
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Built here, eagerly, as a constant the traced `__call__` closes over: torch.compile
        # can trace neither a NumPy array's attributes nor a tensor built from varying ints.
        drops = self.drop_steps().astype("int32")
        self._drops = ops.convert_to_tensor(drops) if drops.size else None

    def __call__(self, step):
        if self._drops is None:
            return ops.convert_to_tensor(self.groups, "int32")
        passed = ops.sum(ops.cast(ops.cast(step, "int32") >= self._drops, "int32"))
        return self.groups - passed


class GroupBudget(keras.callbacks.Callback):
    """Exact group budget: at most `k(t)` non-zero groups in each target kernel during `fit`.

    After every `every`-th optimizer step (inside the compiled step, on every backend) each
    kernel is projected onto its budget: the `k(t)` groups (input features) of largest L2 norm
    are kept and the others set to exactly 0, ties to the lower index. `k(t)` follows the cubic
    schedule of gradual pruning (Zhu and Gupta, 2017) from all `G` groups at `begin_step` to
    `keep` at `end_step`, and stays there. Steps are the optimizer's (`iterations`: the first
    step of a fresh optimizer is step 1), counted over the whole training: a second `fit` with
    this callback continues the schedule (the rule is `sparsehead.schedule.BudgetSchedule`).

    The end-of-epoch logs (and so the `History`) get `budget`: the schedule's value after the
    epoch's last step, summed over the targets.

    Args:
        keep: the final budget per kernel: an int `>= 1` (at most `G`), or a float fraction in
            `(0, 1]` of the groups (rounded up), as `sparsehead.l20_project`. `0` is refused.
        targets: a layer with a `kernel`, a `keras.Variable`, or a list of them. The kernels
            must not have another constraint (this installs one during `fit`).
        begin_step: `t0 >= 0`; up to it the kernels are not touched (`k = G`).
        end_step: `t1 >= t0`; `None` means `t1 = t0`: the budget `keep` holds from
            `begin_step` on, with no ramp.
        every: project after optimizer steps `every, 2 * every, ...`.
        group_axis: the axis whose index names a group (-2 for Keras kernels).

    The old order `GroupBudget(targets, keep, begin_step, end_step, every, group_axis)` keeps
    working for one release, with a `DeprecationWarning`.

    Example:
        >>> model.fit(x, epochs=20, callbacks=[GroupBudget(0.25, head.dense2, end_step=1000)])
    """

    @legacy(
        "GroupBudget",
        lead=1,
        order=("keep", "targets"),
        old_positional=("begin_step", "end_step", "every", "group_axis"),
    )
    def __init__(
        self,
        keep: int | float,
        targets,
        *,
        begin_step: int = 0,
        end_step: int | None = None,
        every: int = 1,
        group_axis: int = -2,
    ):
        super().__init__()
        self.targets = target_list(targets)
        whole = isinstance(keep, numbers.Integral) and not isinstance(keep, bool)
        resolve_keep(keep, int(keep) if whole and keep >= 1 else 1)  # the core's check; G later
        self.keep = keep
        # Validates begin_step, end_step and every with the core's messages.
        schedule.BudgetSchedule(1, 1, begin_step=begin_step, end_step=end_step, every=every)
        self.begin_step, self.end_step, self.every = begin_step, end_step, every
        self.group_axis = check_int(group_axis, "group_axis")
        self._installed: list = []
        self._plans: dict = {}

    def variables(self) -> list:
        """The kernels this callback projects."""
        return kernel_variables(self.targets, "GroupBudget", self.group_axis)

    def _plan(self, variable) -> BudgetSchedule:
        groups = int(variable.shape[normalize_axis(self.group_axis, len(variable.shape))])
        return BudgetSchedule(
            groups,
            self.keep,
            begin_step=self.begin_step,
            end_step=self.end_step,
            every=self.every,
        )

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
        return ops.where(step % self.every == 0, projected, w)  # schedule.is_due

    def on_train_begin(self, logs=None):
        variables = self.variables()
        self._plans = {id(v): self._plan(v) for v in variables}
        self._installed = install_step(self, variables, self.project_step)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        step = int(ops.convert_to_numpy(self.model.optimizer.iterations))
        logs["budget"] = int(sum(self._plans[id(v)].keep_at(step) for v in self._installed))

    def on_train_end(self, logs=None):
        remove_step(self, self._installed)
        self._installed = []
