"""SparseHead for PyTorch Lightning: one `Callback` for the penalty or the prox, and its logs.

`SparseHead(targets, l21)` regularizes chosen weights of a `LightningModule`'s projection head
with `l21 * ||W||_{2,1}` (Eq. 13), the groups being the columns of `nn.Linear.weight`
(`group_axis=-1`):

- `mode="penalty"` (the paper's method): the callback wraps the module's `training_step` at
  `setup` and adds `l21 * sum_W ||W||_{2,1}` to the loss it returns (a tensor, or the `"loss"`
  entry of a dict). Lightning's own scaling then applies: with `accumulate_grad_batches=k`
  each micro-batch adds `penalty / k`, so each optimizer step sees the penalty once.
- `mode="prox"`: group soft-thresholding (`ProximalL21`) from a post-step hook on the
  optimizer that holds the weights, so it runs once per real optimizer step (after the last
  micro-batch of an accumulation, never in between), on every rank alike under DDP.

Every `log_every_n_steps` optimizer steps it logs, through the module's logger, for each
chosen weight: `sparsehead/<name>/l21`, and the scale-free measures of
`sparsehead.sparsity_summary` (`groups_95_energy`, `frac_below_1pct`, `zero_groups`), which
tell switching features off from shrinking them all alike.

Sharded training: under DDP every rank holds the whole weight; under FSDP2 (Lightning's
`ModelParallelStrategy`, `fully_shard` applied in `configure_model`) each chosen weight is a
`DTensor` shard, and the penalty, the prox and the logged measures reduce the per-group sums
over the mesh (only `G` values travel; the weight is never gathered). The targets are resolved
at `on_fit_start`, after `configure_model`, so the module may build its layers there.

This module imports torch and lightning only.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from sparsehead.groups import sparsity_summary

from .torch import ProximalL21, Target, group_norms, l21_regularization, select_parameters

__all__ = ["SparseHead"]

_MODES = ("penalty", "prox")
_PRECONDITIONS = ("auto", "adam", "lr")
_LOGGED = ("groups_95_energy", "frac_below_1pct", "zero_groups")


class SparseHead(pl.Callback):
    """L2,1 group sparsity on chosen weights of a `LightningModule` (penalty or prox).

    Args:
        targets: the weights, as for `sparsehead.adapters.torch.select_parameters`: parameter
            or module names of the `LightningModule` (`"head.3"`, `"head.*.weight"`), modules
            or parameters.
        l21: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}` (paper: 1e-4).
        mode: `"penalty"` (added to the loss `training_step` returns) or `"prox"` (group
            soft-thresholding after each optimizer step).
        precondition: for `mode="prox"`: `"auto"` (Adam-aware threshold when the optimizer is
            `Adam`/`AdamW`, also under `ZeroRedundancyOptimizer`; `lr * l21` otherwise),
            `"adam"` or `"lr"`; see `ProximalL21`.
        group_axis: the axis naming a group in every chosen weight (`-1` for `nn.Linear`).
        log_every_n_steps: log every this many optimizer steps; `0` turns logging off.

    Example: `Trainer(callbacks=[SparseHead("head.3", 1e-4)])`.
    """

    def __init__(
        self,
        targets: Target | Iterable[Target],
        l21: float,
        *,
        mode: Literal["penalty", "prox"] = "penalty",
        precondition: Literal["auto", "adam", "lr"] = "auto",
        group_axis: int = -1,
        log_every_n_steps: int = 50,
    ) -> None:
        if isinstance(l21, bool) or not isinstance(l21, numbers.Real):
            raise TypeError(f"l21 must be a real number; got {type(l21).__name__}")
        if not 0 <= float(l21) < float("inf"):
            raise ValueError(f"l21 must be finite and >= 0; got {l21}")
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}; got {mode!r}")
        if precondition not in _PRECONDITIONS:
            raise ValueError(f"precondition must be one of {_PRECONDITIONS}; got {precondition!r}")
        if isinstance(log_every_n_steps, bool) or not isinstance(log_every_n_steps, int):
            raise TypeError(
                f"log_every_n_steps must be an int; got {type(log_every_n_steps).__name__}"
            )
        if log_every_n_steps < 0:
            raise ValueError(f"log_every_n_steps must be >= 0; got {log_every_n_steps}")
        self.targets = targets
        self.l21 = float(l21)
        self.mode = mode
        self.precondition = precondition
        self.group_axis = group_axis
        self.log_every_n_steps = log_every_n_steps
        self.proxes: list[ProximalL21] = []
        self._handles: list[Any] = []
        self._wrapped = None
        self._last_logged = -1

    def penalty(self, pl_module: pl.LightningModule) -> torch.Tensor:
        """`l21 * sum_W ||W||_{2,1}` over the chosen weights (what penalty mode adds)."""
        return l21_regularization(pl_module, self.l21, self.targets, group_axis=self.group_axis)

    # -- penalty mode: wrap training_step -------------------------------------------------
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        # The names are checked in on_fit_start: a module may build its layers (and FSDP2
        # shard them) in configure_model, which Lightning calls after this hook.
        if self.mode != "penalty" or stage != "fit" or self._wrapped is not None:
            return
        original = pl_module.training_step

        def training_step(*args: Any, **kwargs: Any) -> Any:
            out = original(*args, **kwargs)
            if out is None:  # the module skips this batch
                return out
            if isinstance(out, torch.Tensor):
                return out + self.penalty(pl_module)
            if isinstance(out, dict) and isinstance(out.get("loss"), torch.Tensor):
                return {**out, "loss": out["loss"] + self.penalty(pl_module)}
            raise TypeError(
                "SparseHead(mode='penalty') needs training_step to return a loss tensor or a "
                f"dict with a 'loss' tensor; got {type(out).__name__}"
            )

        pl_module.training_step = training_step  # instance attribute: DDP's wrapper calls it
        self._wrapped = (pl_module, original)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        select_parameters(pl_module, self.targets)  # fail before the first step on a wrong name

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._wrapped is not None and stage == "fit":
            module, _ = self._wrapped
            del module.training_step  # back to the class's method
            self._wrapped = None

    # -- prox mode: a post-step hook on the optimizer --------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.mode != "prox":
            return
        for _, p in select_parameters(pl_module, self.targets):
            optimizer = next(
                (
                    o
                    for o in trainer.optimizers
                    if any(q is p for g in o.param_groups for q in g["params"])
                ),
                None,
            )
            if optimizer is None:
                raise ValueError(
                    f"targets: a parameter of shape {tuple(p.shape)} is in no optimizer of "
                    "configure_optimizers"
                )
            prox = ProximalL21(
                optimizer, self.l21, p, group_axis=self.group_axis, precondition=self.precondition
            )
            self.proxes.append(prox)
            self._handles.append(prox.attach())

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    # -- logging ------------------------------------------------------------------------------
    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: Any
    ) -> None:
        step = trainer.global_step  # optimizer steps so far
        every = self.log_every_n_steps
        if every == 0 or step == self._last_logged or step % every != 0:
            return
        self._last_logged = step
        pl_module.log_dict(self.measures(pl_module), on_step=True, on_epoch=False)

    @torch.no_grad()
    def measures(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """`sparsehead/<name>/<measure>` for each chosen weight: `l21` and scale-free ones."""
        out = {}
        for name, p in select_parameters(pl_module, self.targets):
            # the summary needs only the group norms: a (1, G) row of them has the same ones
            g = group_norms(p, self.group_axis).double().cpu().numpy()[None, :]
            summary = sparsity_summary(g, group_axis=-1)
            out[f"sparsehead/{name}/l21"] = summary["l21"]
            out.update({f"sparsehead/{name}/{k}": float(summary[k]) for k in _LOGGED})
        return out
