"""The backend seam: one object per backend, the same operations through its public API.

Every operation takes NumPy arrays (already rounded to the dtype under test) and returns
`Out(value, dtype)`: the result as a float64 NumPy array and the dtype name the backend gave
it. The backends:

- `core`: the NumPy core (`sparsehead`), the reference every adapter follows; it refuses
  NaN/inf weights where the adapters propagate them (`propagates_nonfinite = False`).
- `keras-<backend>`: `sparsehead.adapters.keras` on the backend this process runs
  (`KERAS_BACKEND`, fixed when Keras is first imported: CI runs the suite once per backend).
- `torch`: `sparsehead.adapters.torch`, autograd for gradients.
- `optax`: `sparsehead.adapters.optax` under `jax.jit`, `jax.grad` for gradients (float64 in
  `jax.enable_x64`).

A backend whose framework is not installed is reported by pytest as skipped, with the reason.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import NamedTuple

import ml_dtypes
import numpy as np
from hypothesis import settings

from . import grouped_weights, nonfinite_weights
from . import keras_seam as kseam

ALL_DTYPES = ["float64", "float32", "float16", "bfloat16"]


class Out(NamedTuple):
    value: np.ndarray  # float64
    dtype: str  # the dtype the backend returned


def as_dtype(x: np.ndarray, dtype: str) -> np.ndarray:
    """`x` rounded to `dtype` as NumPy holds it (bfloat16 from ml_dtypes)."""
    return np.asarray(x).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype))


def _f64(x) -> np.ndarray:
    return np.asarray(np.asarray(x).astype(np.float64))


class Backend:
    """The operations every backend offers; subclasses fill them in through the public API."""

    name = "?"
    dtypes = ALL_DTYPES
    preferred_axis = -2
    propagates_nonfinite = True
    example_share = 1.0  # of the profile's max_examples (compiling backends draw fewer)
    scales: dict[str, list[float]] | None = None  # None: tests.conformance.SCALES
    flush_subnormal = False  # CPU XLA flushes subnormal results: draw none

    def settings(self) -> settings:
        n = max(8, int(settings.default.max_examples * self.example_share))
        return settings(max_examples=n)

    def weights(self, max_side: int = 6):
        return grouped_weights(
            as_dtype,
            self.dtypes,
            scales=self.scales,
            preferred_axis=self.preferred_axis,
            flush_subnormal=self.flush_subnormal,
            max_side=max_side,
        )

    def nonfinite(self):
        return nonfinite_weights(as_dtype, self.dtypes, preferred_axis=self.preferred_axis)

    # operations: (w, group_axis, ...) -> Out
    def group_norms(self, w, group_axis): ...
    def l21_value_and_grad(self, w, group_axis) -> tuple[Out, Out]: ...
    def l21_prox(self, w, threshold, group_axis): ...
    def l20_project(self, w, keep, group_axis): ...
    def hoyer_value_and_grad(self, w, group_axis) -> tuple[Out, Out]: ...


class Core(Backend):
    name = "core"
    propagates_nonfinite = False

    def __init__(self):
        import sparsehead as sh

        self.sh = sh

    @staticmethod
    def _out(x) -> Out:
        x = np.asarray(x)
        return Out(_f64(x), x.dtype.name)

    def group_norms(self, w, group_axis):
        return self._out(self.sh.group_norms(w, group_axis))

    def l21_value_and_grad(self, w, group_axis):
        value = self.sh.l21_norm(w, group_axis)
        rdtype = "float64" if np.asarray(w).dtype == np.float64 else "float32"
        return Out(np.float64(value), rdtype), self._out(self.sh.l21_subgradient(w, group_axis))

    def l21_prox(self, w, threshold, group_axis):
        return self._out(self.sh.l21_prox(w, threshold, group_axis))

    def l20_project(self, w, keep, group_axis):
        return self._out(self.sh.l20_project(w, keep, group_axis))

    def hoyer_value_and_grad(self, w, group_axis):
        value = self.sh.group_hoyer(w, group_axis)
        rdtype = "float64" if np.asarray(w).dtype == np.float64 else "float32"
        grad = self.sh.group_hoyer_gradient(w, group_axis)
        return Out(np.float64(value), rdtype), self._out(grad)


class Torch(Backend):
    name = "torch"
    preferred_axis = -1

    def __init__(self):
        import torch
        from sparsehead.adapters import torch as adapter

        self.torch, self.a = torch, adapter

    def tensor(self, w, requires_grad=False):
        torch = self.torch
        w = np.asarray(w)
        wide = np.float64 if w.dtype == np.float64 else np.float32
        dtype = getattr(torch, w.dtype.name)
        x = torch.from_numpy(np.asarray(w, wide).copy()).to(dtype)
        return x.requires_grad_() if requires_grad else x

    def _out(self, t) -> Out:
        return Out(t.detach().to(self.torch.float64).numpy(), str(t.dtype).removeprefix("torch."))

    def group_norms(self, w, group_axis):
        return self._out(self.a.group_norms(self.tensor(w), group_axis))

    def _value_and_grad(self, fn, w, group_axis):
        x = self.tensor(w, requires_grad=True)
        value = fn(x, group_axis)
        (grad,) = self.torch.autograd.grad(value, x)
        return self._out(value), self._out(grad)

    def l21_value_and_grad(self, w, group_axis):
        return self._value_and_grad(self.a.l21_norm, w, group_axis)

    def l21_prox(self, w, threshold, group_axis):
        return self._out(self.a.l21_prox(self.tensor(w), threshold, group_axis))

    def l20_project(self, w, keep, group_axis):
        return self._out(self.a.l20_project(self.tensor(w), keep, group_axis))

    def hoyer_value_and_grad(self, w, group_axis):
        return self._value_and_grad(self.a.group_hoyer, w, group_axis)


class Keras(Backend):
    """The Keras adapter on this process's backend; compiled per shape on JAX (few examples),
    float64 only where the backend has it without a global switch (not on JAX)."""

    preferred_axis = -2
    flush_subnormal = True

    def __init__(self):
        import keras
        from sparsehead.adapters import keras as adapter

        self.keras, self.a = keras, adapter
        self.scales = {d: [1e-3, 1.0, 1e3] for d in ALL_DTYPES}  # float16 squares overflow
        self.backend = kseam.backend()
        self.name = f"keras-{self.backend}"
        if self.backend == "jax":
            self.dtypes = ["float32", "float16", "bfloat16"]
            self.example_share = 0.2

    def _out(self, x) -> Out:
        return Out(_f64(kseam.to_numpy(x)), self.keras.backend.standardize_dtype(x.dtype))

    def tensor(self, w):
        w = np.asarray(w)
        return kseam.tensor(w, w.dtype.name)

    def group_norms(self, w, group_axis):
        return self._out(kseam.run(lambda x: self.a.group_norms(x, group_axis), self.tensor(w)))

    def l21_value_and_grad(self, w, group_axis):
        penalty = self.a.L21(1.0, group_axis=group_axis)
        value, grad = kseam.value_and_grad(penalty, self.tensor(w))
        return self._out(value), self._out(grad)

    def l21_prox(self, w, threshold, group_axis):
        return self._out(
            kseam.run(lambda x: self.a.l21_prox(x, threshold, group_axis), self.tensor(w))
        )

    def l20_project(self, w, keep, group_axis):
        project = lambda x: self.a.l20_project(x, keep, group_axis)  # noqa: E731
        return self._out(kseam.run(project, self.tensor(w)))

    def hoyer_value_and_grad(self, w, group_axis):
        value, grad = kseam.value_and_grad(
            lambda x: self.a.group_hoyer(x, group_axis), self.tensor(w)
        )
        return self._out(value), self._out(grad)


class Optax(Backend):
    """The optax adapter's ops under `jax.jit` (one compile per shape: fewer examples)."""

    name = "optax"
    example_share = 0.2

    def __init__(self):
        import jax
        from sparsehead.adapters import optax as adapter

        self.jax, self.a = jax, adapter

    def _precision(self, w):
        if np.asarray(w).dtype == np.float64:
            return self.jax.enable_x64(True)
        return contextlib.nullcontext()

    def _call(self, fn, w, *static):
        with self._precision(w):
            x = self.jax.numpy.asarray(w)
            assert x.dtype == np.asarray(w).dtype
            out = self.jax.jit(fn, static_argnums=tuple(range(1, 1 + len(static))))(x, *static)
            return self.jax.tree.map(self._out, out)

    def _out(self, x) -> Out:
        return Out(
            _f64(np.asarray(x.astype("float64" if x.dtype == "float64" else "float32"))),
            str(x.dtype),
        )

    def group_norms(self, w, group_axis):
        return self._call(self.a.group_norms, w, group_axis)

    def l21_value_and_grad(self, w, group_axis):
        return tuple(self._call(self.jax.value_and_grad(self.a.l21_norm), w, group_axis))

    def l21_prox(self, w, threshold, group_axis):
        return self._call(
            lambda x, t, ax: self.a.l21_prox(x, t, ax), w, float(threshold), group_axis
        )

    def l20_project(self, w, keep, group_axis):
        return self._call(lambda x, k, ax: self.a.l20_project(x, k, ax), w, keep, group_axis)

    def hoyer_value_and_grad(self, w, group_axis):
        return tuple(self._call(self.jax.value_and_grad(self.a.group_hoyer), w, group_axis))


def _requires(*modules: str) -> str | None:
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"the package {module!r} is not installed"
    return None


# (factory, packages it needs)
FACTORIES = {
    "core": (Core, ()),
    "keras": (Keras, ("keras",)),
    "torch": (Torch, ("torch",)),
    "optax": (Optax, ("jax", "optax")),
}
