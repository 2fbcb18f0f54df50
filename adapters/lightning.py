"""SparseHead for PyTorch Lightning: one `Callback` for the penalty or the prox, and its logs.

`SparseHead(l21, targets)` regularizes chosen weights of a `LightningModule`'s projection head
with `l21 * ||W||_{2,1}` (Eq. 13), the groups being the input features of each weight (inferred
from its module: the columns of `nn.Linear.weight`, the input channels of `nn.Conv*d`):

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

`RankMonitor(x, backbone, head)` logs label-free quality at the end of training epochs:
RankMe and effective rank (`sparsehead.rankme`, `sparsehead.effective_rank`) of the
representation `r = backbone(x)` and the embedding `z = head(r)` of a fixed held-out batch.

This module imports torch and lightning only.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable
from typing import Any, Literal

import lightning.pytorch as pl
import torch

from sparsehead._ranks import check_monitor, check_output, rank_measures
from sparsehead._validation import check_choice, check_int, check_nonnegative
from sparsehead.groups import sparsity_summary
from sparsehead.schedule import is_due

from ._deprecation import legacy
from .torch import ProximalL21, Target, group_norms, l21_regularization
from .torch._targets import Chosen, resolve

__all__ = ["RankMonitor", "SparseHead"]

_MODES = ("penalty", "prox")
_PRECONDITIONS = ("auto", "adam", "lr")
_LOGGED = ("groups_95_energy", "frac_below_1pct", "zero_groups")


class SparseHead(pl.Callback):
    """L2,1 group sparsity on chosen weights of a `LightningModule` (penalty or prox).

    Args:
        l21: `lambda >= 0`, the strength of `lambda * ||W||_{2,1}` (paper: 1e-4).
        targets: the weights, as for `sparsehead.adapters.torch.select_parameters`: parameter
            or module names of the `LightningModule` (`"head.3"`, `"head.*.weight"`), modules
            or parameters.
        mode: `"penalty"` (added to the loss `training_step` returns) or `"prox"` (group
            soft-thresholding after each optimizer step).
        precondition: for `mode="prox"`: `"auto"` (Adam-aware threshold when the optimizer is
            `Adam`/`AdamW`, also under `ZeroRedundancyOptimizer`; `lr * l21` otherwise),
            `"adam"` or `"lr"`; see `ProximalL21`.
        group_axis: the axis naming a group in every chosen weight; `None` (default) infers it
            per weight from the module that owns it (`-1` for `nn.Linear`, `1` for `nn.Conv*d`).
        log_every_n_steps: log every this many optimizer steps; `0` turns logging off.

    Example: `Trainer(callbacks=[SparseHead(1e-4, "head.3")])`. The old order
    `SparseHead(targets, l21)` still works for one release, with a `DeprecationWarning`.
    """

    @legacy("SparseHead", lead=1, order=("l21", "targets"))
    def __init__(
        self,
        l21: float,
        targets: Target | Iterable[Target],
        *,
        mode: Literal["penalty", "prox"] = "penalty",
        precondition: Literal["auto", "adam", "lr"] = "auto",
        group_axis: int | None = None,
        log_every_n_steps: int = 50,
    ) -> None:
        l21 = check_nonnegative(l21, "l21")
        check_choice(mode, "mode", _MODES)
        check_choice(precondition, "precondition", _PRECONDITIONS)
        check_int(log_every_n_steps, "log_every_n_steps", low=0)
        self.targets = targets
        self.l21 = l21
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

    def chosen(self, pl_module: pl.LightningModule) -> list[Chosen]:
        """The chosen weights of `pl_module`: `(name, parameter, group axis)` each."""
        return resolve(self.targets, self.group_axis, model=pl_module)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.chosen(pl_module)  # fail before the first step on a wrong name

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._wrapped is not None and stage == "fit":
            module, _ = self._wrapped
            del module.training_step  # back to the class's method
            self._wrapped = None

    # -- prox mode: a post-step hook on the optimizer --------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.mode != "prox":
            return
        for _, p, axis in self.chosen(pl_module):
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
                optimizer, self.l21, p, group_axis=axis, precondition=self.precondition
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
        for name, p, axis in self.chosen(pl_module):
            # the summary needs only the group norms: a (1, G) row of them has the same ones
            g = group_norms(p, axis).double().cpu().numpy()[None, :]
            summary = sparsity_summary(g, group_axis=-1)
            out[f"sparsehead/{name}/l21"] = summary["l21"]
            out.update({f"sparsehead/{name}/{k}": float(summary[k]) for k in _LOGGED})
        return out


Part = torch.nn.Module | Callable | str


def _host(x: Any) -> Any:
    """A tensor as a CPU NumPy array for the argument checks (half precision as float32);
    anything else unchanged."""
    if not isinstance(x, torch.Tensor):
        return x
    x = x.detach().cpu()
    return (x.float() if x.is_floating_point() else x).numpy()


class RankMonitor(pl.Callback):
    """Logs RankMe and effective rank of the representation and the embedding of a fixed batch.

    At the end of training epochs `every, 2 * every, ...` (Lightning's epoch count, so a run
    resumed from a checkpoint keeps it) it runs the held-out batch `x` through the backbone,
    `r = f(x)`, and the head, `z = h(r)`, with the module in eval mode and no gradients (the
    modes are restored afterwards), and logs through `pl_module.log_dict` (`on_epoch=True`):
    `{prefix}rankme_representation`, `{prefix}effective_rank_representation`,
    `{prefix}rankme_embedding`, `{prefix}effective_rank_embedding`, from `sparsehead.rankme`
    (uncentred) and `sparsehead.effective_rank` (centred). No labels are needed; an output
    holding NaN or inf gets NaN, never a rank. Every rank computes the same values (under
    FSDP2 every rank must take part in the forward pass).

    Cost per measured epoch: one forward pass over `x` and two SVDs of `(len(x), d)`.

    Args:
        x: the fixed held-out inputs, `(n, ...)` with `n >= 2`, as the backbone takes them (a
            tensor or an array; moved to the module's device in chunks).
        backbone: the feature extractor `f`: a module, any callable `x -> r`, or the name of
            the `LightningModule`'s attribute that holds it (`"backbone"`, dotted names too).
            Must return `(n, d)`.
        head: the projection head `h`, applied to `r`, given the same ways; `None` logs the
            representation's measures only.
        every: measure after every `every`-th training epoch (`>= 1`).
        batch_size: the rows of `x` per forward call.
        prefix: key prefix in the logs.

    Attributes: `records`, one dict per measured epoch: `{"epoch": n, key: value, ...}`.
    """

    def __init__(
        self,
        x: Any,
        backbone: Part,
        head: Part | None = None,
        *,
        every: int = 1,
        batch_size: int = 256,
        prefix: str = "sparsehead/",
    ) -> None:
        check_monitor(_host(x), backbone, head, every, batch_size, prefix)
        self.x = x.detach() if isinstance(x, torch.Tensor) else torch.as_tensor(x)
        self.backbone = backbone
        self.head = head
        self.every = int(every)
        self.batch_size = int(batch_size)
        self.prefix = prefix
        self.records: list[dict[str, float]] = []

    def _resolve(self, part: Part, name: str, pl_module: pl.LightningModule) -> Callable:
        if not isinstance(part, str):
            return part
        try:
            found = operator.attrgetter(part)(pl_module)
        except AttributeError:
            found = None
        if not callable(found):
            raise ValueError(
                f"{name}={part!r}: the {type(pl_module).__name__} has no module or callable "
                f"attribute {part!r}"
            )
        return found

    def _apply(self, f: Callable, x: torch.Tensor, device: torch.device) -> torch.Tensor:
        return torch.cat(
            [
                torch.as_tensor(f(x[i : i + self.batch_size].to(device)))
                for i in range(0, len(x), self.batch_size)
            ]
        )

    @torch.no_grad()
    def outputs(self, pl_module: pl.LightningModule) -> tuple[Any, Any]:
        """`(r, z)` of the fixed batch now, as float64 NumPy (`z` is `None` without a head)."""
        backbone = self._resolve(self.backbone, "backbone", pl_module)
        head = None if self.head is None else self._resolve(self.head, "head", pl_module)
        modules = [pl_module, *(p for p in (backbone, head) if isinstance(p, torch.nn.Module))]
        modes = {m: m.training for root in modules for m in root.modules()}
        for root in modules:
            root.eval()
        try:
            r = self._apply(backbone, self.x, pl_module.device)
            z = None if head is None else self._apply(head, r, pl_module.device)
        finally:
            for m, mode in modes.items():
                m.train(mode)
        n = len(self.x)
        r_np = check_output(r.detach().to(torch.float64).cpu().numpy(), n, "backbone")
        if z is None:
            return r_np, None
        return r_np, check_output(z.detach().to(torch.float64).cpu().numpy(), n, "head")

    def measure(self, pl_module: pl.LightningModule) -> dict[str, float]:
        """The measures now (keys without the prefix), from `sparsehead.rankme` and
        `sparsehead.effective_rank`."""
        return rank_measures(*self.outputs(pl_module))

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._resolve(self.backbone, "backbone", pl_module)  # fail before the first step
        if self.head is not None:
            self._resolve(self.head, "head", pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1  # epochs completed, this one included
        if not is_due(epoch, self.every):
            return
        values = self.measure(pl_module)
        self.records.append({"epoch": epoch, **values})
        logged = {self.prefix + key: value for key, value in values.items()}
        pl_module.log_dict(logged, on_step=False, on_epoch=True)
