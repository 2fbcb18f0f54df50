"""SparseHead for JAX and optax: the L2,1 penalty (Eq. 13), its proximal step, and beyond.

Two ways to regularize the last kernel of a projection head, a Flax/Keras-style `(in, out)`
kernel whose groups are its rows (`group_axis=-2`, the default here):

- a penalty in the loss, `loss + l21 * l21_norm(params["head"]["kernel"])`, whose gradient is
  the minimum-norm subgradient (0 on zero groups, never NaN);
- `adamw_proximal_l21(learning_rate, l21, targets)` (Adam-aware threshold), or
  `proximal_l21(learning_rate, l21, targets)` (textbook `lr * l21`) as the last link of an
  `optax.chain`: group soft-thresholding of the chosen leaves after the update, which sets
  weak groups to exactly 0.

Beyond the paper: the group Hoyer-square `group_hoyer`, the L2,0 projection `l20_project` and
`group_budget`, an exact budget on a cubic schedule.

This package imports jax and optax only; this file only re-exports (one concept per module:
`_ops`, `_targets`, `_hoyer`, `_prox`, `_budget`).
"""

from ._budget import GroupBudgetState, group_budget, l20_project
from ._hoyer import group_hoyer, group_hoyer_penalty
from ._ops import group_norms, l21_norm, l21_penalty, l21_prox
from ._prox import ProximalL21State, adamw_proximal_l21, proximal_l21

__all__ = [
    "GroupBudgetState",
    "ProximalL21State",
    "adamw_proximal_l21",
    "group_budget",
    "group_hoyer",
    "group_hoyer_penalty",
    "group_norms",
    "l20_project",
    "l21_norm",
    "l21_penalty",
    "l21_prox",
    "proximal_l21",
]
