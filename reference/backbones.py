"""Feature extractors `f_theta` (Sec. 3): a CPU-sized CNN, ResNet-18 (two stems) and ResNet-50.

Each returns a Keras functional model from images `(H, W, C)` in [0, 1] to the representation
`r = f_theta(x)` of shape `(d,)`: global average pooling of the last feature map, so that
`d = 512` for ResNet-18 and `d = 2048` for ResNet-50 as in Sec. 4.

Precision (`--precision`, `DTYPE_POLICIES`): `mixed` builds every layer of the backbone with
Keras' `mixed_bfloat16` policy (bfloat16 compute, float32 variables), except the global
average pooling, which is float32: the representation `r` is the float32 mean of the bfloat16
feature map (a sum over H x W accumulated in float32), so the head, the loss, the L2,1 penalty
and the probes see float32. The policy is set per layer (`dtype=`), never process-wide, so
nothing else built in the process (the head, a later run) changes precision. BatchNorm
normalises in float32 whatever its policy (Keras upcasts its inputs).

bfloat16 rather than float16: bfloat16 has float32's 8-bit exponent, so gradients neither
overflow nor underflow and no loss scaling is needed; float16 (5-bit exponent) needs Keras'
`LossScaleOptimizer`, whose skipped steps would shift the step-indexed schedules (budget,
BYOL's tau, `--adaptive-every`). bfloat16 runs natively on current accelerators (NVIDIA
Ampere and later, TPUs); on a CPU without bfloat16 units it is slower than float32.
"""

from __future__ import annotations

import keras
from keras import layers

from .names import BACKBONES

__all__ = [
    "BACKBONES",
    "DTYPE_POLICIES",
    "build_backbone",
    "resnet18",
    "resnet18_cifar",
    "small_cnn",
]

#: `--precision` -> the Keras dtype policy of the backbone's layers (None: the default float32).
DTYPE_POLICIES = {"float32": None, "mixed": "mixed_bfloat16"}


def _pool(x, dtype):
    """Global average pooling, float32 (the representation `r`) when `dtype` is mixed."""
    return layers.GlobalAveragePooling2D(name="pool", dtype="float32" if dtype else None)(x)


def _conv_bn(x, filters: int, kernel: int, strides: int = 1, relu: bool = True, name: str = "",
             dtype=None):  # fmt: skip
    x = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False,
                      name=name + "conv", dtype=dtype)(x)  # fmt: skip
    x = layers.BatchNormalization(name=name + "bn", dtype=dtype)(x)
    return layers.ReLU(name=name + "relu", dtype=dtype)(x) if relu else x


def small_cnn(input_shape: tuple[int, int, int], width: int = 32, dtype=None) -> keras.Model:
    """Four 3x3 conv-BN-ReLU stages (width, 2w, 4w, 4w), all stride 2, then global average
    pooling: `d = 4 * width` (128 by default). About 0.2 M weights: a CPU-sized stand-in.

    A stride-1 first stage made the SimCLR step 3-4x slower on a 2-core CPU (28x28 input)."""
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, 3, strides=2, name="s1_", dtype=dtype)
    x = _conv_bn(x, 2 * width, 3, strides=2, name="s2_", dtype=dtype)
    x = _conv_bn(x, 4 * width, 3, strides=2, name="s3_", dtype=dtype)
    x = _conv_bn(x, 4 * width, 3, strides=2, name="s4_", dtype=dtype)
    return keras.Model(inputs, _pool(x, dtype), name="small_cnn")


def _basic_block(x, filters: int, strides: int, name: str, dtype=None):
    shortcut = x
    y = _conv_bn(x, filters, 3, strides, name=name + "a_", dtype=dtype)
    y = _conv_bn(y, filters, 3, 1, relu=False, name=name + "b_", dtype=dtype)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, relu=False, name=name + "proj_", dtype=dtype)
    added = layers.Add(name=name + "add", dtype=dtype)([y, shortcut])
    return layers.ReLU(name=name + "out", dtype=dtype)(added)


def _resnet18_stages(x, width: int, dtype=None):
    """The four stages of two basic blocks (widths w, 2w, 4w, 8w; stride 2 from the second
    stage on), then global average pooling: `d = 8 * width`."""
    for stage, filters in enumerate((width, 2 * width, 4 * width, 8 * width)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, name=f"l{stage + 1}b{block}_", dtype=dtype)
    return _pool(x, dtype)


def resnet18(input_shape: tuple[int, int, int], dtype=None) -> keras.Model:
    """ResNet-18 (He et al., 2016), `d = 512`.

    The stem follows the W-MSE code base (Ermolov et al., 2021, `model.get_model`): a 3x3
    stride-1 convolution instead of the 7x7 stride-2 one for all but ImageNet-sized inputs,
    and no max pooling for 32-pixel inputs (CIFAR). So: up to 32 px, 3x3 conv only; up to
    128 px (STL-10, Tiny ImageNet), 3x3 conv + 3x3 stride-2 max pooling; larger, the
    ImageNet stem (7x7 stride-2 conv + max pooling).
    """
    inputs = keras.Input(input_shape, name="image")
    side = max(input_shape[:2])
    x = _conv_bn(inputs, 64, 3 if side <= 128 else 7, strides=1 if side <= 128 else 2,
                 name="stem_", dtype=dtype)  # fmt: skip
    if side > 32:
        x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool", dtype=dtype)(x)
    return keras.Model(inputs, _resnet18_stages(x, 64, dtype), name="resnet18")


def resnet18_cifar(input_shape: tuple[int, int, int], width: int = 64, dtype=None) -> keras.Model:
    """ResNet-18 with the CIFAR stem at any input size: a 3x3 stride-1 convolution, no max
    pooling (what `resnet18` does up to 32 px). `d = 8 * width`: 512 at the default width 64,
    with 11 168 832 trainable weights (torchvision's ResNet-18, 11 689 512, less its fc layer
    and with the 3x3 stem instead of the 7x7 one). A smaller `width` (e.g. 8) gives the same
    graph at a fraction of the cost (the training benchmark's `--quick` size)."""
    if isinstance(width, bool) or not isinstance(width, int):
        raise TypeError(f"width must be an int; got {type(width).__name__}")
    if width < 1:
        raise ValueError(f"width must be >= 1; got {width}")
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, 3, strides=1, name="stem_", dtype=dtype)
    return keras.Model(inputs, _resnet18_stages(x, width, dtype), name="resnet18_cifar")


def resnet50(input_shape: tuple[int, int, int], dtype=None) -> keras.Model:
    """ResNet-50 from `keras.applications` (random init, no top, average pooling), `d = 2048`.

    `keras.applications` builds its layers with the process-wide policy; with `dtype`, the
    model is cloned layer by layer with that policy (the average pooling float32) and keeps
    the weights drawn at build."""
    if min(input_shape[:2]) < 32:
        raise ValueError(f"backbone 'resnet50' needs images of at least 32x32; got {input_shape}")
    model = keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=input_shape, pooling="avg"
    )
    if dtype is None:
        return model

    def with_policy(layer):
        pool = isinstance(layer, layers.GlobalAveragePooling2D)
        return layer.__class__.from_config({**layer.get_config(),
                                            "dtype": "float32" if pool else dtype})  # fmt: skip

    clone = keras.models.clone_model(model, clone_function=with_policy)
    clone.set_weights(model.get_weights())
    return clone


def build_backbone(name: str, input_shape: tuple[int, int, int], dtype=None) -> keras.Model:
    """The backbone called `name` (one of `BACKBONES`) for images of `input_shape`; `dtype` a
    Keras dtype policy for its layers (`DTYPE_POLICIES`; None: the default float32)."""
    if name == "small-cnn":
        return small_cnn(input_shape, dtype=dtype)
    if name == "resnet18":
        return resnet18(input_shape, dtype=dtype)
    if name == "resnet18-cifar":
        return resnet18_cifar(input_shape, dtype=dtype)
    if name == "resnet50":
        return resnet50(input_shape, dtype=dtype)
    raise ValueError(f"backbone must be one of {BACKBONES}; got {name!r}")
