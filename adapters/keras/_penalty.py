"""`L21`: the SparseHead penalty `lambda * ||W||_{2,1}` (Eq. 12-13) as a Keras 3 regularizer."""

from __future__ import annotations

import keras
from keras import ops

from sparsehead._validation import check_int, check_nonnegative

from .._deprecation import legacy
from ._ops import group_norms

__all__ = ["L21"]


@keras.saving.register_keras_serializable(package="sparsehead")
class L21(keras.regularizers.Regularizer):
    """The SparseHead regularizer: `l21 * ||W||_{2,1} = l21 * sum_j ||W_j||_2` (Eq. 12-13).

    A group `W_j` is one input feature of the layer: the weights that read feature `j`.
    `group_axis` names the axis whose index is the group; the L2 norm runs over all the other
    axes. The default `-2` is right for Keras kernels: rows of a Dense kernel `(in, out)` and
    input channels of a Conv2D kernel `(kh, kw, in, out)`.

    The gradient is `l21 * W_j / ||W_j||_2`, and exactly 0 on a group that is exactly 0 (the
    minimum-norm subgradient): never NaN. float16/bfloat16 weights are accumulated in float32,
    and each group is scaled by its largest entry first, so large weights do not overflow. The
    value is float32 (float64 for a float64 kernel).

    Two caveats decide what the penalty can do (see docs/keras.md):

    - a BatchNorm *after* the regularized layer makes the penalty meaningless:
      `BN(c W x) = BN(W x)`, so the optimizer pays it by shrinking `W` as a whole;
    - InfoNCE and BYOL compare cosine similarities, which are also unchanged when the last
      layer is scaled as a whole. A falling L2,1 value is then mostly uniform shrinkage; watch
      the scale-free measures of `SparsityMonitor`, and use `ProximalL21` for exact zeros.

    Args:
        l21: the factor `lambda >= 0` (the paper: 1e-4). Stored as a Python float.
        group_axis: the axis whose index names a group (-2 for Keras kernels).

    Example:
        >>> layer = keras.layers.Dense(128, kernel_regularizer=L21(1e-4))
    """

    @legacy("L21", lead=1, positional=("group_axis",))
    def __init__(self, l21: float = 1e-4, *, group_axis: int = -2):
        self.l21 = check_nonnegative(l21, "l21")
        self.group_axis = check_int(group_axis, "group_axis")

    def __call__(self, x):
        return self.l21 * ops.sum(group_norms(x, self.group_axis))

    def get_config(self) -> dict:
        return {"l21": self.l21, "group_axis": self.group_axis}

    def __repr__(self) -> str:
        return f"L21(l21={self.l21!r}, group_axis={self.group_axis})"
