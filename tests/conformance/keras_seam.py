"""The one seam that knows the Keras backends: tensors in and out, gradients, jit.

`value_and_grad` differentiates a `keras.ops` function with jax, tf.GradientTape or
torch.autograd; `jit` compiles one with the backend's tracer.
"""

from __future__ import annotations

import numpy as np


def backend() -> str:
    """The backend Keras runs on in this process (fixed when keras is first imported)."""
    import keras

    return keras.backend.backend()


def to_numpy(x) -> np.ndarray:
    """A backend tensor as a NumPy array (half precision widened to float32 first)."""
    from keras import ops

    if str(x.dtype).endswith(("float16", "bfloat16")):
        x = ops.cast(x, "float32")
    return np.asarray(ops.convert_to_numpy(x))


def tensor(x: np.ndarray, dtype: str):
    """A NumPy array as a backend tensor of `dtype` (any float dtype, bfloat16 included)."""
    from keras import ops

    return ops.cast(
        ops.convert_to_tensor(np.asarray(x, np.float64 if dtype == "float64" else np.float32)),
        dtype,
    )


def value_and_grad(fn, x):
    """`(fn(x), d fn / d x)` for a scalar `keras.ops` function of one backend tensor `x`."""
    if backend() == "jax":
        import jax

        return jax.jit(jax.value_and_grad(fn))(x)  # one compile instead of one per op
    if backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(x)
            y = fn(x)
        return y, tape.gradient(y, x)
    import torch

    x = x.detach().clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y, x)
    return y.detach(), g


def run(fn, *args):
    """`fn(*args)`, compiled as one program on JAX (one compile per shape instead of one per
    op: about 3x faster for the property tests), eagerly on torch and tensorflow."""
    if backend() == "jax":
        import jax

        return jax.jit(fn)(*args)
    return fn(*args)


def jit(fn):
    """`fn` compiled by the backend's tracer: jax.jit, tf.function(jit_compile=True), or
    torch.compile (fullgraph, eager backend: traced by dynamo, no C++ build)."""
    if backend() == "jax":
        import jax

        return jax.jit(fn)
    if backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=True)
    import torch

    return torch.compile(fn, fullgraph=True, backend="eager")
