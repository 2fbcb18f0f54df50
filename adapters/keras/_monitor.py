"""`SparsityMonitor`: per-epoch L2,1 value and scale-free sparsity of a head, in the history."""

from __future__ import annotations

import keras
import numpy as np

from sparsehead._validation import check_int
from sparsehead.groups import sparsity_summary

from .._deprecation import legacy
from ._ops import check_weight

__all__ = ["SparsityMonitor"]

_KEYS = (
    "l21",
    "groups_95_energy",
    "frac_below_1pct",
    "frac_below_0p1pct",
    "zero_groups",
)


def _nonfinite_summary(w: np.ndarray, group_axis: int) -> dict[str, float]:
    """The measures of a kernel holding NaN or inf: `sqrt(sum(w**2))` per group in float64,
    so NaN and inf propagate into `l21` and no non-finite group counts as zero."""
    x = np.moveaxis(w.astype(np.float64), group_axis, 0)
    with np.errstate(over="ignore", invalid="ignore"):
        g = np.sqrt(np.sum(x.reshape(x.shape[0], -1) ** 2, axis=1))
    out = dict.fromkeys(_KEYS, float("nan"))
    out["l21"] = float(g.sum())
    out["zero_groups"] = int(np.count_nonzero(g == 0))
    return out


class SparsityMonitor(keras.callbacks.Callback):
    """Logs, at the end of every epoch, whether SparseHead *selects* features or only *shrinks*.

    For the watched kernel `W` (groups along `group_axis`, -2 for Keras kernels) it adds to
    the epoch's logs, and so to `model.fit(...).history`, under `{prefix}{key}`:

    - `l21`: `||W||_{2,1} = sum_j ||W_j||_2` (Eq. 13), the raw value the penalty sees;
    - `groups_95_energy`: the fewest groups that hold 95 % of `||W||_F^2`;
    - `frac_below_1pct`, `frac_below_0p1pct`: fraction of groups whose norm is below 1 % and
      0.1 % of the largest group norm;
    - `zero_groups`: the number of groups that are exactly 0.

    Everything but `l21` is unchanged when `W` is scaled as a whole, which a BatchNorm after
    the layer or the cosine inside InfoNCE/BYOL make free for the optimizer: a falling `l21`
    with flat scale-free measures is shrinkage, not selection. Computed with
    `sparsehead.sparsity_summary` on the kernel as NumPy (float64 accuracy).

    A kernel holding NaN or inf (a diverged run) is never reported as sparse: `l21` is NaN
    (inf if it holds inf and no NaN), the scale-free measures are NaN, and `zero_groups`
    counts only the groups that are exactly 0.

    Args:
        targets: a layer with a `kernel` (Dense, Conv, `ProjectionHead`) or a `keras.Variable`
            (`target=` is its deprecated name).
        group_axis: the axis whose index names a group.
        prefix: key prefix in the logs (default `"head_"`, e.g. `head_zero_groups`).
    """

    @legacy("SparsityMonitor", target="targets")
    def __init__(self, targets, *, group_axis: int = -2, prefix: str = "head_"):
        super().__init__()
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str; got {type(prefix).__name__}")
        self.targets = targets
        self.group_axis = check_int(group_axis, "group_axis")
        self.prefix = prefix

    @property
    def target(self):
        """Deprecated name of `targets`."""
        return self.targets

    def _kernel(self):
        t = self.targets
        v = t if isinstance(t, keras.Variable) else getattr(t, "kernel", None)
        if not isinstance(v, keras.Variable):
            raise ValueError(
                f"SparsityMonitor targets must be a keras.Variable or a layer with a built "
                f"`kernel`; got {t!r}"
            )
        check_weight(v, self.group_axis, "targets")
        return v

    def summary(self) -> dict[str, float]:
        """The measures for the kernel's current value (keys without the prefix)."""
        if self._model is not None:
            _ = self.model  # on JAX this syncs the training state back into the variables
        w = np.asarray(keras.ops.convert_to_numpy(keras.ops.cast(self._kernel().value, "float32")))
        if not np.isfinite(w).all():
            return _nonfinite_summary(w, self.group_axis)
        stats = sparsity_summary(w, self.group_axis)
        return {key: stats[key] for key in _KEYS}

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for key, value in self.summary().items():
            logs[self.prefix + key] = value
