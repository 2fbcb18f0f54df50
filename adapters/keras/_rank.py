"""`RankMonitor`: label-free quality per epoch, RankMe and effective rank of the representation
and the embedding of a fixed held-out batch, in the history."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from sparsehead._ranks import check_monitor, check_output, rank_measures
from sparsehead.schedule import is_due

__all__ = ["RankMonitor"]

Part = keras.layers.Layer | Callable | str


class RankMonitor(keras.callbacks.Callback):
    """Logs RankMe and effective rank of the representation and the embedding of a fixed batch.

    At the end of epochs `every, 2 * every, ...` it runs the held-out batch `x` through the
    backbone, `r = f(x)`, and the head, `z = h(r)`, in inference mode (`training=False`), and
    adds to the epoch's logs, and so to `model.fit(...).history`, under `{prefix}{key}`:

    - `rankme_representation`, `rankme_embedding`: RankMe, `sparsehead.rankme` (uncentred);
    - `effective_rank_representation`, `effective_rank_embedding`: `sparsehead.effective_rank`
      (centred), the one-number summaries of the spectra of Fig. 1 and 3.

    No labels are needed. An output holding NaN or inf gets NaN, never a rank. Epochs count
    over the whole training: a second `fit` continues the count, and `fit(initial_epoch=k)`
    (a resumed run) starts it at `k + 1`. With `every > 1` the keys are in the logs of the
    measured epochs only, so their History lists are shorter than `history.epoch`;
    `records` pairs each value with its epoch.

    Cost per measured epoch: one forward pass over `x` (`predict` for a `keras.Model`, so
    compiled where the backend compiles; eager calls for a layer or a callable) and two SVDs
    of `(len(x), d)`.

    Args:
        x: the fixed held-out inputs, `(n, ...)` with `n >= 2` (e.g. the first 512 test
            images), given once.
        backbone: the feature extractor `f`: a layer or model, any callable `x -> r`, or the
            name of the model's attribute that holds it (`"backbone"`). Must return `(n, d)`.
        head: the projection head `h`, applied to `r`, given the same ways; `None` logs the
            representation's measures only.
        every: measure after every `every`-th epoch (`>= 1`).
        batch_size: the rows of `x` per forward call.
        prefix: key prefix in the logs (default none: `rankme_embedding`).

    Attributes: `records`, one dict per measured epoch: `{"epoch": n, key: value, ...}`.
    """

    def __init__(
        self,
        x,
        backbone: Part,
        head: Part | None = None,
        *,
        every: int = 1,
        batch_size: int = 256,
        prefix: str = "",
    ) -> None:
        super().__init__()
        self.x = check_monitor(x, backbone, head, every, batch_size, prefix)
        self.backbone = backbone
        self.head = head
        self.every = int(every)
        self.batch_size = int(batch_size)
        self.prefix = prefix
        self.records: list[dict[str, float]] = []
        self._done = 0  # epochs completed, over every fit so far
        self._start: int | None = None  # epoch number offset of the current fit

    def _resolve(self, part: Part, name: str):
        if not isinstance(part, str):
            return part
        if self._model is None:
            raise ValueError(
                f"{name}={part!r} names an attribute of the model: use the monitor in "
                "model.fit(callbacks=[...]), or pass the layer itself"
            )
        found = getattr(self._model, part, None)
        if not callable(found):
            raise ValueError(
                f"{name}={part!r}: the model {self._model.name!r} has no layer or callable "
                f"attribute {part!r}"
            )
        return found

    def _apply(self, part: Part, x: np.ndarray, name: str) -> np.ndarray:
        f = self._resolve(part, name)
        if isinstance(f, keras.Model):  # compiled inference (jit on JAX), in batches
            y = f.predict(x, batch_size=self.batch_size, verbose=0)
            return check_output(np.asarray(keras.ops.convert_to_numpy(y)), len(x), name)
        chunks = []
        for i in range(0, len(x), self.batch_size):
            chunk = x[i : i + self.batch_size]
            y = f(chunk, training=False) if isinstance(f, keras.layers.Layer) else f(chunk)
            chunks.append(np.asarray(keras.ops.convert_to_numpy(y)))
        return check_output(np.concatenate(chunks), len(x), name)

    def outputs(self) -> tuple[np.ndarray, np.ndarray | None]:
        """`(r, z)` of the fixed batch now, as NumPy (`z` is `None` without a head)."""
        if self._model is not None:
            _ = self.model  # on JAX this syncs the training state back into the variables
        r = self._apply(self.backbone, self.x, "backbone")
        z = None if self.head is None else self._apply(self.head, r, "head")
        return r, z

    def measure(self) -> dict[str, float]:
        """The measures now (keys without the prefix), from `sparsehead.rankme` and
        `sparsehead.effective_rank`."""
        return rank_measures(*self.outputs())

    def on_train_begin(self, logs=None):
        self._start = None
        self._resolve(self.backbone, "backbone")  # a wrong name fails before the first step
        if self.head is not None:
            self._resolve(self.head, "head")

    def on_epoch_begin(self, epoch, logs=None):
        if self._start is None:
            # a fit from epoch 0 continues the count; fit(initial_epoch=k) numbers from k + 1
            self._start = self._done if epoch == 0 else 0

    def on_epoch_end(self, epoch, logs=None):
        n = (self._start or 0) + epoch + 1
        self._done = n
        if not is_due(n, self.every):
            return
        values = self.measure()
        self.records.append({"epoch": n, **values})
        if logs is not None:
            for key, value in values.items():
                logs[self.prefix + key] = value
