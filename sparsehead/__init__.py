"""SparseHead: L2,1 group sparsity on the projection head of self-supervised learners.

The core (this package) is NumPy only: the L2,1 norm, its subgradient and prox, InfoNCE, the
BYOL and Barlow Twins losses, the min-max distance ratio and spectrum diagnostics, and
beyond the paper the group Hoyer measure and the L2,0 budget projection. The Keras
names (`sparsehead.L21`, ...) load `sparsehead.adapters.keras`, and so Keras, on first use.
"""

from __future__ import annotations

from .budget import budget_schedule, l20_project
from .geometry import min_max_distance_ratio
from .groups import (
    group_norms,
    group_sparsity,
    l21_norm,
    l21_prox,
    l21_subgradient,
    sparsity_summary,
)
from .hoyer import group_hoyer, group_hoyer_gradient
from .losses import barlow_twins_loss, byol_loss, cosine_similarity, info_nce
from .spectrum import effective_rank, eigenvalue_spectrum, rankme

__version__ = "0.1.0"

# Keras names, resolved lazily so that `import sparsehead` never imports a framework.
_KERAS_NAMES = (
    "AdaptiveL21",
    "GroupBudget",
    "GroupHoyer",
    "L21",
    "ProjectionHead",
    "ProximalL21",
    "SparsityMonitor",
)

__all__ = [
    "barlow_twins_loss",
    "budget_schedule",
    "byol_loss",
    "cosine_similarity",
    "effective_rank",
    "eigenvalue_spectrum",
    "group_hoyer",
    "group_hoyer_gradient",
    "group_norms",
    "group_sparsity",
    "info_nce",
    "l20_project",
    "l21_norm",
    "l21_prox",
    "l21_subgradient",
    "min_max_distance_ratio",
    "rankme",
    "sparsity_summary",
    *_KERAS_NAMES,
]


def __getattr__(name: str):
    if name in _KERAS_NAMES:
        from .adapters import keras as keras_adapter

        return getattr(keras_adapter, name)
    raise AttributeError(f"module 'sparsehead' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_KERAS_NAMES))
