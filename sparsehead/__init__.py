"""SparseHead: L2,1 group sparsity on the projection head of self-supervised learners.

The core (this package) is NumPy only: the L2,1 norm, its subgradient and prox, InfoNCE, the
BYOL and Barlow Twins losses, the min-max distance ratio and spectrum diagnostics, and
beyond the paper the group Hoyer measure and the L2,0 budget projection. The Keras
names (`sparsehead.L21`, ...) load `sparsehead.adapters.keras`, and so Keras, on first use.
"""

from __future__ import annotations

import sys as _sys

from ._hints import install_adapters_hint as _install_adapters_hint
from .budget import budget_schedule, l20_project
from .controller import DualAscent
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
from .schedule import BudgetSchedule
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
    "BudgetSchedule",
    "DualAscent",
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


_install_adapters_hint()  # a missing sparsehead.adapters says how to install it


def __getattr__(name: str):
    if name in _KERAS_NAMES:
        try:
            from .adapters import keras as keras_adapter
        except ModuleNotFoundError as exc:
            from ._hints import keras_missing

            raise (keras_missing(name, exc) or exc) from exc
        return getattr(keras_adapter, name)
    raise AttributeError(f"module 'sparsehead' has no attribute {name!r}")


def __dir__():
    # The public names and submodules only (not `annotations` from __future__, nor helpers).
    modules = {n for n, v in globals().items() if not n.startswith("_") and type(v) is type(_sys)}
    return sorted({*__all__, "__version__", *modules})


def _register_keras_classes() -> None:
    """Register `L21` and `ProjectionHead` with Keras' serialization if Keras is imported.

    `keras.saving.load_model` finds `"sparsehead>L21"` only in Keras' registry, which the
    adapter's decorators fill when `sparsehead.adapters.keras` is imported. Importing the
    adapter here, only when the user has already imported Keras, makes `import keras,
    sparsehead` enough to load a `.keras` file, and never imports a framework otherwise.
    (With `import sparsehead` *before* `import keras`, import `sparsehead.adapters.keras`, or
    touch `sparsehead.L21`, before loading.)
    """
    if "keras" not in _sys.modules:
        return
    try:
        from .adapters import keras as _  # noqa: F401
    except ImportError:  # e.g. a non-editable install run from the repository root
        pass


_register_keras_classes()
