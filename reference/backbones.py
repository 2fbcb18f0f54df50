"""Feature extractors `f_theta` (Sec. 3): a CPU-sized CNN, ResNet-18 (two stems) and ResNet-50.

Each returns a Keras functional model from images `(H, W, C)` in [0, 1] to the representation
`r = f_theta(x)` of shape `(d,)`: global average pooling of the last feature map, so that
`d = 512` for ResNet-18 and `d = 2048` for ResNet-50 as in Sec. 4.
"""

from __future__ import annotations

import keras
from keras import layers

from .names import BACKBONES

__all__ = ["BACKBONES", "build_backbone", "resnet18", "resnet18_cifar", "small_cnn"]


def _conv_bn(x, filters: int, kernel: int, strides: int = 1, relu: bool = True, name: str = ""):
    x = layers.Conv2D(filters, kernel, strides, padding="same", use_bias=False, name=name + "conv")(
        x
    )
    x = layers.BatchNormalization(name=name + "bn")(x)
    return layers.ReLU(name=name + "relu")(x) if relu else x


def small_cnn(input_shape: tuple[int, int, int], width: int = 32) -> keras.Model:
    """Four 3x3 conv-BN-ReLU stages (width, 2w, 4w, 4w), all stride 2, then global average
    pooling: `d = 4 * width` (128 by default). About 0.2 M weights: a CPU-sized stand-in.

    A stride-1 first stage made the SimCLR step 3-4x slower on a 2-core CPU (28x28 input)."""
    inputs = keras.Input(input_shape, name="image")
    x = _conv_bn(inputs, width, 3, strides=2, name="s1_")
    x = _conv_bn(x, 2 * width, 3, strides=2, name="s2_")
    x = _conv_bn(x, 4 * width, 3, strides=2, name="s3_")
    x = _conv_bn(x, 4 * width, 3, strides=2, name="s4_")
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, x, name="small_cnn")


def _basic_block(x, filters: int, strides: int, name: str):
    shortcut = x
    y = _conv_bn(x, filters, 3, strides, name=name + "a_")
    y = _conv_bn(y, filters, 3, 1, relu=False, name=name + "b_")
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv_bn(x, filters, 1, strides, relu=False, name=name + "proj_")
    return layers.ReLU(name=name + "out")(layers.Add(name=name + "add")([y, shortcut]))


def _resnet18_stages(x, width: int):
    """The four stages of two basic blocks (widths w, 2w, 4w, 8w; stride 2 from the second
    stage on), then global average pooling: `d = 8 * width`."""
    for stage, filters in enumerate((width, 2 * width, 4 * width, 8 * width)):
        for block in range(2):
            strides = 2 if stage > 0 and block == 0 else 1
            x = _basic_block(x, filters, strides, name=f"l{stage + 1}b{block}_")
    return layers.GlobalAveragePooling2D(name="pool")(x)


def resnet18(input_shape: tuple[int, int, int]) -> keras.Model:
    """ResNet-18 (He et al., 2016), `d = 512`.

    The stem follows the W-MSE code base (Ermolov et al., 2021, `model.get_model`): a 3x3
    stride-1 convolution instead of the 7x7 stride-2 one for all but ImageNet-sized inputs,
    and no max pooling for 32-pixel inputs (CIFAR). So: up to 32 px, 3x3 conv only; up to
    128 px (STL-10, Tiny ImageNet), 3x3 conv + 3x3 stride-2 max pooling; larger, the
    ImageNet stem (7x7 stride-2 conv + max pooling).
    """
    inputs = keras.Input(input_shape, name="image")
    side = max(input_shape[:2])
    x = _conv_bn(inputs, 64, 3 if side <= 128 else 7, strides=1 if side <= 128 else 2, name="stem_")
    if side > 32:
        x = layers.MaxPooling2D(3, 2, padding="same", name="stem_pool")(x)
    return keras.Model(inputs, _resnet18_stages(x, 64), name="resnet18")


def resnet18_cifar(input_shape: tuple[int, int, int], width: int = 64) -> keras.Model:
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
    x = _conv_bn(inputs, width, 3, strides=1, name="stem_")
    return keras.Model(inputs, _resnet18_stages(x, width), name="resnet18_cifar")


def resnet50(input_shape: tuple[int, int, int]) -> keras.Model:
    """ResNet-50 from `keras.applications` (random init, no top, average pooling), `d = 2048`."""
    if min(input_shape[:2]) < 32:
        raise ValueError(f"backbone 'resnet50' needs images of at least 32x32; got {input_shape}")
    return keras.applications.ResNet50(
        include_top=False, weights=None, input_shape=input_shape, pooling="avg"
    )


def build_backbone(name: str, input_shape: tuple[int, int, int]) -> keras.Model:
    """The backbone called `name` (one of `BACKBONES`) for images of `input_shape`."""
    if name == "small-cnn":
        return small_cnn(input_shape)
    if name == "resnet18":
        return resnet18(input_shape)
    if name == "resnet18-cifar":
        return resnet18_cifar(input_shape)
    if name == "resnet50":
        return resnet50(input_shape)
    raise ValueError(f"backbone must be one of {BACKBONES}; got {name!r}")
