"""The augmentation of augment.py applied on the device, batched, in backend-neutral `keras.ops`.

The random parameters are drawn on the host (`Augment.draw`, O(N) numbers, the same generator
calls as the NumPy path); `apply_ops(images, params)` turns them into pixels inside the
compiled train step, with the NumPy path's operations in the same order:

- crop + flip: a separable bilinear resample written as two batched matmuls,
  `out[n] = R[n] @ img[n] @ C[n]^T` per channel, with the interpolation matrices
  `R[n] = (1 - wy) onehot(y0) + wy onehot(y1)` (`(H, H)`) and `C[n]` alike (`(W, W)`) built
  from the sampling grids `sy`, `sx` (edge-clamped floor indices, `wy = sy - floor(sy)`).
  No gather and no affine transform: XLA on CPU has no kernel for the latter, and a matmul is
  fast everywhere.
- colour: brightness, contrast (around the mean luma), saturation (around the luma), hue (a
  per-image 3x3 matrix, `augment.hue_matrices`), each clipped to [0, 1]; then grayscale.

The result equals `Augment.apply` up to float32 rounding (the resample sums in another order);
tests/reference/test_augment_device.py states the tolerance (on CPU, every backend: at most
4.8e-7 seen). A GPU whose matmuls run in TF32 (JAX's default precision, TensorFlow's default
on Ampere and later) should resample to about 1e-3 instead (not measured here).
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from .augment import _LUMA, _RGB2YIQ, _YIQ2RGB

__all__ = ["PARAM_KEYS", "apply_ops", "two_views_ops"]

PARAM_KEYS = ("sy", "sx", "brightness", "contrast", "saturation", "hue_cos", "hue_sin",
              "grayscale")  # fmt: skip


def _interpolation(s, size: int):
    """`(N, size, size)` rows of bilinear weights: row `i` has `1 - w` at `floor(s_i)` and `w`
    at `floor(s_i) + 1` (both clamped to the image), `w = s_i - floor(s_i)`."""
    lo = ops.floor(s)
    w = (s - lo)[..., None]
    i0 = ops.clip(ops.cast(lo, "int32"), 0, size - 1)
    i1 = ops.clip(ops.cast(lo, "int32") + 1, 0, size - 1)
    return (1.0 - w) * ops.one_hot(i0, size, dtype="float32") + w * ops.one_hot(
        i1, size, dtype="float32"
    )


def _gray(x):
    """Luma `(N, H, W, 1)` of an RGB batch (ITU-R 601 weights)."""
    return ops.matmul(x, ops.convert_to_tensor(_LUMA[:, None]))


def _per_image(v):
    return ops.reshape(ops.cast(v, "float32"), (-1, 1, 1, 1))


def _hue(x, cos, sin):
    """`rgb' = YIQ2RGB @ R @ RGB2YIQ rgb`, `R` the rotation of the (I, Q) plane, per image."""
    one, zero = ops.ones_like(cos), ops.zeros_like(cos)
    rot = ops.stack(
        [ops.stack([one, zero, zero], -1), ops.stack([zero, cos, -sin], -1),
         ops.stack([zero, sin, cos], -1)], axis=1
    )  # fmt: skip
    yiq2rgb, rgb2yiq = ops.convert_to_tensor(_YIQ2RGB), ops.convert_to_tensor(_RGB2YIQ)
    m = ops.einsum("ij,njk,kl->nli", yiq2rgb, rot, rgb2yiq)  # (N, 3, 3), rgb' = rgb @ m
    n = ops.shape(x)[0]
    flat = ops.reshape(x, (n, -1, 3))
    return ops.reshape(ops.matmul(flat, m), ops.shape(x))


def apply_ops(images, params: Mapping):
    """`Augment.apply` on the device: float32 `(N, H, W, C)` in [0, 1] (or uint8, converted
    as `augment.to_float` does), `params` the mapping `AugmentParams.as_dict()` of `N` images;
    returns float32 `(N, H, W, C)`."""
    x = ops.cast(images, "float32")
    if keras.backend.standardize_dtype(images.dtype) == "uint8":
        x = x * np.float32(1.0 / 255.0)
    _, h, w, c = images.shape
    r = _interpolation(ops.cast(params["sy"], "float32"), h)  # (N, H, H)
    cm = _interpolation(ops.cast(params["sx"], "float32"), w)  # (N, W, W)
    x = ops.einsum("njx,nixc->nijc", cm, ops.einsum("niy,nyxc->nixc", r, x))
    x = ops.clip(x * _per_image(params["brightness"]), 0.0, 1.0)
    mean = ops.mean(x if c == 1 else _gray(x), axis=(1, 2, 3), keepdims=True)
    x = ops.clip((x - mean) * _per_image(params["contrast"]) + mean, 0.0, 1.0)
    if c == 1:
        return x
    gray = _gray(x)
    x = ops.clip((x - gray) * _per_image(params["saturation"]) + gray, 0.0, 1.0)
    x = ops.clip(_hue(x, ops.cast(params["hue_cos"], "float32"),
                      ops.cast(params["hue_sin"], "float32")), 0.0, 1.0)  # fmt: skip
    to_gray = _per_image(params["grayscale"]) > 0.5
    return ops.where(to_gray, ops.broadcast_to(_gray(x), ops.shape(x)), x)


def two_views_ops(batch: Mapping):
    """`[x^1; x^2]` from what `TwoViews` yields with device augmentation: `images`, the uint8
    batch `(N, H, W, C)`, and each key of `PARAM_KEYS` holding the two views' parameters
    stacked `(2N, ...)` (view 1 first)."""
    images = batch["images"]
    return apply_ops(ops.concatenate([images, images]), {k: batch[k] for k in PARAM_KEYS})
