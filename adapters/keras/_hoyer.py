"""`GroupHoyer`: the scale-invariant group Hoyer-square penalty of DeepHoyer as a Keras 3
regularizer (Yang, Wen and Li, ICLR 2020), beside the paper's L2,1 (Eq. 12-13)."""

from __future__ import annotations

import keras
from keras import ops

from sparsehead._validation import check_int, check_nonnegative

from .._deprecation import legacy
from ._ops import group_norms

__all__ = ["GroupHoyer", "group_hoyer"]


def group_hoyer(w, group_axis: int = -2):
    """`HS(W) = (sum_j g_j)^2 / sum_j g_j^2` in keras.ops, with `g_j = ||W_j||_2`; 0 for `W = 0`.

    The norms are divided by the largest, held constant under differentiation: `HS` is
    unchanged by it and, being homogeneous of degree 0, so is its gradient (the derivative
    with respect to the constant is exactly 0), while nothing overflows (weights up to 1e30 in
    float32). The gradient is `2 S/Q * W_j/g_j - 2 S^2/Q^2 * W_j` (`S = sum g`, `Q = sum g^2`),
    0 on zero groups and for `W = 0`. Matches `sparsehead.group_hoyer`.

    Returns:
        A scalar, float32 for half or float32 weights, float64 for float64 weights.
    """
    g = group_norms(w, group_axis)  # finite gradient at zero groups, float32 for half input
    top = ops.stop_gradient(ops.amax(g))
    r = g / ops.where(top > 0, top, ops.ones_like(top))
    s = ops.sum(r)
    q = ops.sum(r * r)
    positive = q > 0
    return ops.where(positive, s * s / ops.where(positive, q, ops.ones_like(q)), 0.0)


@keras.saving.register_keras_serializable(package="sparsehead")
class GroupHoyer(keras.regularizers.Regularizer):
    """Group Hoyer-square regularizer: `hoyer * (sum_j ||W_j||_2)^2 / sum_j ||W_j||_2^2`.

    The measure lies in `[1, G]` (G groups) and does not change when the kernel is scaled, so
    the penalty can only be lowered by concentrating the weight in fewer groups (input
    features): the uniform shrinkage by which BatchNorm after the layer or the cosine of
    InfoNCE/BYOL let `L21` be paid does not lower it. Its gradient is orthogonal to the kernel.

    Groups as for `L21` (`group_axis=-2`: rows of a Dense kernel `(in, out)`, input channels of
    a Conv2D kernel). Value and gradient are finite everywhere, 0 on zero groups and 0 for an
    all-zero kernel; float16/bfloat16 weights are accumulated in float32; no overflow up to
    1e30 in float32. Like any penalty it does not produce exact zeros: combine it with
    `GroupBudget` (or read the scale-free measures of `SparsityMonitor`).

    Args:
        hoyer: the factor `>= 0`. Note the scale: `HS` is of order `G`, its gradient of order
            `1 / ||W||`, unlike `||W||_{2,1}`.
        group_axis: the axis whose index names a group (-2 for Keras kernels).

    Example:
        >>> layer = keras.layers.Dense(128, kernel_regularizer=GroupHoyer(1e-3))
    """

    @legacy("GroupHoyer", lead=1, positional=("group_axis",))
    def __init__(self, hoyer: float = 1e-3, *, group_axis: int = -2):
        self.hoyer = check_nonnegative(hoyer, "hoyer")
        self.group_axis = check_int(group_axis, "group_axis")

    def __call__(self, x):
        return self.hoyer * group_hoyer(x, self.group_axis)

    def get_config(self) -> dict:
        return {"hoyer": self.hoyer, "group_axis": self.group_axis}

    def __repr__(self) -> str:
        return f"GroupHoyer(hoyer={self.hoyer!r}, group_axis={self.group_axis})"
