"""The choices the command line offers, without importing a framework.

`cli.py` builds its parser from these (so `train_*.py --help` never imports Keras); the modules
that implement them (`backbones.py`, `heads.py`, `methods.py`) import the same tuples.
"""

from __future__ import annotations

__all__ = ["BACKBONES", "HEADS", "METHODS"]

#: Feature extractors `f_theta` (`backbones.build_backbone`).
BACKBONES = ("small-cnn", "resnet18", "resnet50")
#: Projection heads `h_phi` (`heads.build_head`).
HEADS = ("mlp", "linear", "identity")
#: Self-supervised objectives (`methods.py`).
METHODS = ("simclr", "byol", "barlow-twins")
