"""The CIFAR-stem ResNet-18 (`resnet18-cifar`): output size, stem and weight count.

Expected counts come from outside the code under test: torchvision's ResNet-18 has
11 689 512 parameters; less its fc layer (512 * 1000 + 1000 = 513 000) and with a 3x3x3x64
stem (1 728) instead of the 7x7x3x64 one (9 408) that is 11 168 832. For a width `w` the same
count by hand: convolutions `27 w` (stem) `+ 2724 w^2` (stages: 36 + 128 + 512 + 2048), and
BatchNorm `2 * 75 w` (gamma, beta over 75 w channels), with `75 w` more moving means and
variances each (not trained).
"""

from __future__ import annotations

import pytest

keras = pytest.importorskip("keras")

from reference.backbones import build_backbone, resnet18_cifar  # noqa: E402
from reference.names import BACKBONES, REPRESENTATION_DIMS  # noqa: E402


def _counts(model) -> tuple[int, int]:
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return trainable, frozen


def _by_hand(w: int) -> tuple[int, int]:
    return 27 * w + 2724 * w * w + 150 * w, 150 * w


def test_resnet18_cifar_is_resnet18_without_fc_with_the_3x3_stem():
    model = build_backbone("resnet18-cifar", (32, 32, 3))
    assert "resnet18-cifar" in BACKBONES
    assert model.output_shape == (None, REPRESENTATION_DIMS["resnet18-cifar"]) == (None, 512)
    assert _counts(model) == (11_168_832, 9_600) == _by_hand(64)
    stem = model.get_layer("stem_conv")
    assert stem.kernel_size == (3, 3) and stem.strides == (1, 1)


@pytest.mark.parametrize("side", [16, 32, 64])
def test_resnet18_cifar_keeps_the_cifar_stem_at_every_size(side):
    # No max pool and a stride-1 stem: the last stage sees side / 8 (three stride-2 stages);
    # `resnet18` would pool at 64 px and give 4x4.
    model = resnet18_cifar((side, side, 3), width=8)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    assert model.get_layer("l4b1_out").output.shape[1:] == (side // 8, side // 8, 64)
    assert model.output_shape == (None, 64)
    assert _counts(model) == _by_hand(8)


@pytest.mark.parametrize("width,error", [(0, ValueError), (8.0, TypeError), (True, TypeError)])
def test_resnet18_cifar_width_is_checked(width, error):
    with pytest.raises(error, match="width"):
        resnet18_cifar((16, 16, 3), width=width)
