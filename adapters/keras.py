"""SparseHead for Keras 3 on the jax, torch and tensorflow backends.

- `L21(l21, group_axis)`: the regularizer `l21 * ||W||_{2,1}` (Eq. 12-13), NaN-free at zero
  groups, float32 accumulation for half precision, serializable across backends.
- `ProjectionHead`: the paper's Linear -> BN -> ReLU -> Linear head with `L21` on the last
  kernel.
- `info_nce`, `byol_loss`, `barlow_twins_loss`, `cosine_similarity`: the objectives in
  `keras.ops`, matching the NumPy core.
- `group_norms`, `l2_normalize`: the safe building blocks in `keras.ops`.

The NumPy reference for all of it is `sparsehead` itself (`sparsehead.l21_norm`, ...).
"""

from __future__ import annotations

from ._keras_head import ProjectionHead
from ._keras_losses import barlow_twins_loss, byol_loss, cosine_similarity, info_nce
from ._keras_ops import group_norms, l2_normalize
from ._keras_regularizer import L21

__all__ = [
    "L21",
    "ProjectionHead",
    "barlow_twins_loss",
    "byol_loss",
    "cosine_similarity",
    "group_norms",
    "info_nce",
    "l2_normalize",
]
