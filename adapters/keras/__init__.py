"""SparseHead for Keras 3 on the jax, torch and tensorflow backends.

- `L21(l21, group_axis)`: the regularizer `l21 * ||W||_{2,1}` (Eq. 12-13), NaN-free at zero
  groups, float32 accumulation for half precision, serializable across backends.
- `GroupHoyer(hoyer, group_axis)`: the scale-invariant group Hoyer-square penalty (DeepHoyer).
- `GroupBudget(targets, keep, begin_step, end_step)`: a callback that keeps at most `k(t)`
  non-zero groups after each step (the L2,0 budget), `k(t)` on the cubic schedule.
- `AdaptiveL21(targets, target, measure)`: adapts the L2,1 strength by dual ascent until a
  scale-free sparsity target is met (penalty or `ProximalL21`).
- `ProjectionHead`: the paper's Linear -> BN -> ReLU -> Linear head with `L21` on the last
  kernel.
- `ProximalL21`: a callback that group-soft-thresholds kernels after every optimizer step
  (exact zeros), with a threshold that follows the optimizer's preconditioner (Adam, SGD).
- `SparsityMonitor`: a callback that logs the L2,1 value and scale-free sparsity per epoch.
- `RankMonitor`: a callback that logs RankMe and effective rank of the representation and the
  embedding of a fixed held-out batch per epoch (label-free quality).
- `info_nce`, `byol_loss`, `barlow_twins_loss`, `cosine_similarity`: the objectives in
  `keras.ops`, matching the NumPy core.
- `group_norms`, `l2_normalize`, `l21_prox`: the building blocks in `keras.ops`.

The NumPy reference for all of it is `sparsehead` itself (`sparsehead.l21_norm`, ...).
"""

from __future__ import annotations

from ._adaptive import AdaptiveL21
from ._budget import BudgetSchedule, GroupBudget, l20_project
from ._head import ProjectionHead
from ._hoyer import GroupHoyer, group_hoyer
from ._losses import barlow_twins_loss, byol_loss, cosine_similarity, info_nce
from ._monitor import SparsityMonitor
from ._ops import group_norms, l2_normalize
from ._penalty import L21
from ._prox import ProximalL21, group_preconditioner, l21_prox
from ._rank import RankMonitor

__all__ = [
    "L21",
    "AdaptiveL21",
    "BudgetSchedule",
    "GroupBudget",
    "GroupHoyer",
    "ProjectionHead",
    "ProximalL21",
    "RankMonitor",
    "SparsityMonitor",
    "barlow_twins_loss",
    "byol_loss",
    "cosine_similarity",
    "group_hoyer",
    "group_norms",
    "group_preconditioner",
    "info_nce",
    "l2_normalize",
    "l20_project",
    "l21_prox",
]
