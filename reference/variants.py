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

__all__ = ["check_variants", "default_l21", "head_callbacks", "install_hoyer"]


def check_variants(cfg: dict) -> None:
    """Bad combinations and values of `--hoyer`, `--budget`, `--target-sparsity`."""
    hoyer, budget, target = cfg.get("hoyer") or 0.0, cfg.get("budget"), cfg.get("target_sparsity")
    if not hoyer >= 0:
        raise ValueError(f"hoyer must be >= 0; got {hoyer!r}")
    if budget is not None and not (
        (isinstance(budget, int) and budget >= 0) or (isinstance(budget, float) and 0 < budget <= 1)
    ):
        raise ValueError(f"budget must be an int >= 0 or a fraction in (0, 1]; got {budget!r}")
    if target is not None and not 0 < target < 1:
        raise ValueError(f"target_sparsity must be a fraction in (0, 1); got {target!r}")
    dual_lr, every = cfg.get("dual_lr", 1.0), cfg.get("adaptive_every")
    # dual_lr's range is AdaptiveL21's own check (it names dual_lr)
    if every is not None and (isinstance(every, bool) or not isinstance(every, int) or every < 0):
        raise ValueError(f"adaptive_every must be an int >= 0 (0: per epoch); got {every!r}")
    if target is None and (dual_lr != 1.0 or every is not None):
        raise ValueError("dual_lr and adaptive_every need target_sparsity")
    steps = cfg.get("budget_steps")
    if steps is not None:
        if budget is None:
            raise ValueError("budget_steps needs budget")
        if len(steps) != 2 or not 0 <= steps[0] <= steps[1]:
            raise ValueError(
                f"budget_steps must be [begin, end] with 0 <= begin <= end; got {steps}"
            )
    chosen = [name for name, on in (("hoyer", hoyer > 0), ("budget", budget is not None),
                                     ("target_sparsity", target is not None)) if on]  # fmt: skip
    if len(chosen) > 1:
        raise ValueError(f"choose one of hoyer, budget and target_sparsity; got {chosen}")
    if chosen and cfg["head"] == "identity":
        raise ValueError(f"{chosen[0]} needs a head with weights; head 'identity' has none")
    if hoyer > 0 and cfg.get("l21"):
        raise ValueError("hoyer replaces the L2,1 penalty: leave l21 at 0 (or unset)")
    if (hoyer > 0 or budget is not None) and cfg.get("proximal"):
        raise ValueError("proximal is the L2,1 prox step; it does not combine with hoyer/budget")


def default_l21(cfg: dict) -> float:
    """The L2,1 factor when `--l21` is not given: the paper's 1e-4 (also `--target-sparsity`'s
    starting value), 0 for the identity head and where Hoyer or the budget replaces it."""
    if cfg["head"] == "identity" or cfg.get("hoyer") or cfg.get("budget") is not None:
        return 0.0
    return 1e-4


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
                every=(  # None (per epoch) is the steps per epoch
                    _adaptive_every(cfg.get("adaptive_every"), steps_per_epoch) or steps_per_epoch
                ),
                prox=prox,
            )
        )
    return out
