"""SparseHead for PyTorch: the L2,1 penalty (Eq. 13), its proximal step, and beyond.

Two ways to regularize the last layer of a projection head, `nn.Linear.weight` of shape
`(out, in)` whose groups are its columns (`group_axis=-1`):

- a penalty added to the loss, `loss + l21_regularization(model, 1e-4, ["head.2"])`, whose
  gradient is the minimum-norm subgradient (0 on zero groups, never NaN);
- a proximal step after `optimizer.step()`, `ProximalL21(optimizer, 1e-4, [model.head[2]])`,
  which sets weak groups to exactly 0.

Beyond the paper: the group Hoyer-square penalty, an exact L2,0 budget on a cubic schedule
(`GroupBudget`) and `λ` driven towards a sparsity target (`AdaptiveL21`).

This package imports torch only; this file only re-exports (one concept per module:
`_ops`, `_targets`, `_penalty`, `_hoyer`, `_prox`, `_budget`, `_adaptive`, `_dist`).
"""

from ._adaptive import AdaptiveL21
from ._budget import GroupBudget, l20_project, l20_project_
from ._hoyer import group_hoyer, group_hoyer_penalty, hoyer_regularization
from ._ops import group_norms, l21_norm, l21_penalty, l21_prox, l21_prox_
from ._penalty import l21_regularization
from ._prox import ProximalL21
from ._targets import Target, layout_group_axis, select_parameters

__all__ = [
    "AdaptiveL21",
    "GroupBudget",
    "ProximalL21",
    "Target",
    "group_hoyer",
    "group_hoyer_penalty",
    "group_norms",
    "hoyer_regularization",
    "l20_project",
    "l20_project_",
    "l21_norm",
    "l21_penalty",
    "l21_prox",
    "l21_prox_",
    "l21_regularization",
    "layout_group_axis",
    "select_parameters",
]
