"""The choices the command line offers, without importing a framework.

`cli.py` builds its parser from these (so `train_*.py --help` never imports Keras); the modules
that implement them (`backbones.py`, `heads.py`, `methods.py`) import the same tuples.
"""

from __future__ import annotations

from sparsehead.controller import CONTROLLERS as _CONTROLLERS  # NumPy only

__all__ = [
    "BACKBONES",
    "CONTROLLERS",
    "HEADLESS",
    "HEADS",
    "METHODS",
    "PRECISIONS",
    "REPRESENTATION_DIMS",
]

#: Feature extractors `f_theta` (`backbones.build_backbone`).
BACKBONES = ("small-cnn", "resnet18", "resnet18-cifar", "resnet50")
#: The dimension `d` of each backbone's representation (checked against the built models).
REPRESENTATION_DIMS = {"small-cnn": 128, "resnet18": 512, "resnet18-cifar": 512, "resnet50": 2048}
#: Projection heads `h_phi` (`heads.build_head`).
HEADS = ("mlp", "linear", "identity", "directclr", "topk")
#: The heads without trainable weights: nothing for SparseHead or its variants to act on.
HEADLESS = ("identity", "directclr")
#: Rules of `--target-sparsity`'s λ controller (`sparsehead.adaptive_controller`).
CONTROLLERS = tuple(_CONTROLLERS)
#: Self-supervised objectives (`methods.py`).
METHODS = ("simclr", "byol", "barlow-twins")
#: `--precision`: the backbone's compute dtype (`backbones.DTYPE_POLICIES`); the head, the
#: loss, the penalty and the optimizer stay float32 either way.
PRECISIONS = ("float32", "mixed")
