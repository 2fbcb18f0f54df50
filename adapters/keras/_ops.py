"""Backend-free `keras.ops` building blocks: safe group norms and safe row normalisation.

Everything here is traceable under jit on the jax, torch and tensorflow backends and has a
finite gradient everywhere, including at exactly-zero groups and rows.

Numerics: float16 and bfloat16 inputs are computed in float32, float32 in float32, float64 in
float64. Each group (row) is first divided by its largest absolute entry, so the sum of
squares lies in `[1, n]` for a non-zero group: it can neither overflow (weights above 256 in
float16 square to infinity) nor underflow. The scale is held constant under differentiation;
the norm's partial derivative with respect to it is exactly zero, so the gradient is unchanged.
"""

from __future__ import annotations

from keras import backend, ops

from sparsehead import _validation

__all__ = [
    "check_weight",
    "compute_dtype",
    "group_norms",
    "l2_normalize",
    "normalize_axis",
    "safe_norm",
]


def compute_dtype(dtype) -> str:
    """The accumulation dtype: float64 stays float64, everything else is computed in float32."""
    return "float64" if backend.standardize_dtype(dtype) == "float64" else "float32"


def normalize_axis(group_axis: int, ndim: int) -> int:
    """`group_axis` as a non-negative index into `ndim` axes (the core's `check_group_axis`):
    TypeError for a non-int, ValueError when out of range."""
    return _validation.check_group_axis(group_axis, ndim)


def check_weight(w, group_axis: int, name: str = "w") -> int:
    """The core's `check_weight` on a tensor or variable, before any tensor work (so an empty
    weight is a ValueError naming `name`, not TensorFlow's "Cannot compute the max of an empty
    tensor"; an integer one a TypeError); returns `group_axis` as a non-negative index.

    A dimension unknown while tracing skips only the emptiness check.
    """
    dtype, shape = backend.standardize_dtype(w.dtype), tuple(w.shape)
    if all(n is not None for n in shape):
        return _validation.check_weight(dtype, shape, group_axis, name)
    _validation.check_float_dtype(dtype, name)
    if len(shape) < 2:
        raise ValueError(f"{name} must have at least 2 dimensions; got shape {shape}")
    return _validation.check_group_axis(group_axis, len(shape))


def safe_norm(x, axis, keepdims: bool = False):
    """L2 norm of `x` over `axis` with a finite gradient at 0 (the minimum-norm subgradient 0).

    `||x|| = s * sqrt(sum((x / s)^2))` with `s = max|x|` (held constant, 1 where `x = 0`), and
    `sqrt(where(ss != 0, ss, 1)) * (ss != 0)` so that a zero sum never reaches `sqrt`'s pole.
    NaN and inf propagate as in `sqrt(sum(x**2))`: a group holding NaN has norm NaN, one
    holding inf (and no NaN) has norm inf. `x` must already be in its compute dtype.
    """
    peak = ops.stop_gradient(ops.amax(ops.abs(x), axis=axis, keepdims=True))
    # Scale by 1 where the peak is 0, inf or NaN: inf / inf would turn an inf group into NaN.
    scale = ops.where(ops.logical_and(peak > 0, peak < float("inf")), peak, ops.ones_like(peak))
    u = x / scale
    ss = ops.sum(u * u, axis=axis, keepdims=True)
    nonzero = ss != 0  # NaN != 0: a NaN group's norm is NaN (an inf group's inf), never 0
    norm = scale * ops.sqrt(ops.where(nonzero, ss, ops.ones_like(ss)))
    norm = norm * ops.cast(nonzero, norm.dtype)
    return norm if keepdims else ops.squeeze(norm, axis=axis)


def group_norms(w, group_axis: int = -2, *, keepdims: bool = False):
    """`g_j = ||W_j||_2`, the L2 norm of each group (the weights that read input feature `j`).

    Args:
        w: weight of at least 2 dimensions, e.g. a Dense kernel `(in, out)` or a Conv2D kernel
            `(kh, kw, in, out)`.
        group_axis: the axis whose index names a group (-2: the kernel's input features); the
            norm runs over all other axes.
        keepdims: keep the reduced axes (shape broadcastable against `w`).

    Returns:
        Shape `(w.shape[group_axis],)` (or broadcastable with `keepdims`), float32 for half or
        float32 input, float64 for float64 input.
    """
    w = ops.convert_to_tensor(w)  # a NumPy array or a variable (constraints get the variable)
    ndim = len(w.shape)
    ax = check_weight(w, group_axis)
    x = ops.cast(w, compute_dtype(w.dtype))
    axes = tuple(i for i in range(ndim) if i != ax)
    return safe_norm(x, axes, keepdims=keepdims)


def l2_normalize(z):
    """Rows of `z` (shape `(N, m)`) scaled to unit L2 norm; a zero row stays zero.

    `z` must already be in its compute dtype. The gradient is finite everywhere: a zero row
    is divided by 1 instead of by its zero norm.
    """
    n = safe_norm(z, axis=-1, keepdims=True)
    return z / ops.where(n > 0, n, ops.ones_like(n))
