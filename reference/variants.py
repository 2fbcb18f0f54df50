"""Beyond the paper in the reference runs: group Hoyer, an exact L2,0 budget, λ from a target.

Each acts on the head's last kernel `W` (the one SparseHead regularizes; docs/beyond.md):

- `--hoyer λ`: `GroupHoyer(λ)` as `W`'s regularizer, `λ · HS(W)` with
  `HS = (Σ_j ‖W_j‖)² / Σ_j ‖W_j‖²` (DeepHoyer, Yang et al. 2020), instead of the L2,1 penalty;
- `--budget k`: `GroupBudget` projects `W` onto "at most k non-zero groups" after each step,
  with the cubic schedule of Zhu & Gupta (2017) from all groups at `--budget-steps` begin to
  `k` at end (default: from step 0 to two thirds of the training steps, so the last third
  trains at the final budget);
- `--target-sparsity f`: `AdaptiveL21` adapts the L2,1 strength (starting from `--l21`) until
  a fraction `f` of the groups holds 95 % of the energy; with `--proximal` it drives the prox
  step's strength (recommended: with the penalty a too-large λ leaves groups jittering near 0,
  which a scale-free measure reads as dense); `--dual-lr` is its step on `log λ` (default 1)
  and `--adaptive-every` how often it steps (default: 4 times per epoch; 0: once, at the end
  of each epoch).
"""

from __future__ import annotations

import keras
from sparsehead.adapters.keras import AdaptiveL21, GroupBudget, GroupHoyer, ProximalL21

# Their values and combinations are checked, framework-free, before a run touches anything.
from .checks import check_variants, default_l21

__all__ = ["check_variants", "default_l21", "head_callbacks", "install_hoyer"]


def install_hoyer(cfg: dict, kernel) -> None:
    """`GroupHoyer(cfg['hoyer'])` as the regularizer of `kernel` (a built keras.Variable)."""
    if cfg.get("hoyer"):
        kernel.regularizer = GroupHoyer(cfg["hoyer"])


def _adaptive_every(every: int | None, steps_per_epoch: int) -> int | None:
    """`AdaptiveL21`'s `every`: None (a quarter epoch) by default, None for 0 (per epoch)."""
    if every is None:
        return max(1, steps_per_epoch // 4)
    return every or None


def head_callbacks(cfg: dict, kernel, steps_per_epoch: int) -> list[keras.callbacks.Callback]:
    """The callbacks that act on `kernel` after optimizer steps: the prox step, the budget and
    the adaptive λ, as configured."""
    out: list[keras.callbacks.Callback] = []
    prox = ProximalL21(cfg["l21"], kernel) if cfg["proximal"] else None
    if prox is not None:
        out.append(prox)
    if cfg.get("budget") is not None:
        total = cfg["epochs"] * steps_per_epoch
        begin, end = cfg.get("budget_steps") or (0, (2 * total) // 3)
        out.append(GroupBudget(cfg["budget"], kernel, begin_step=begin, end_step=end))
    if cfg.get("target_sparsity") is not None:
        out.append(
            AdaptiveL21(
                cfg["target_sparsity"],
                None if prox else kernel,
                l21=cfg["l21"],
                dual_lr=cfg.get("dual_lr", 1.0),
                controller=cfg.get("controller", "dual"),
                every=(  # None (per epoch) is the steps per epoch
                    _adaptive_every(cfg.get("adaptive_every"), steps_per_epoch) or steps_per_epoch
                ),
                prox=prox,
            )
        )
    return out
