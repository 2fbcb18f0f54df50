"""Run settings: the CPU-sized default and the paper's presets (Sec. 7.1).

Where each value comes from (see docs/reproducing.md):

- paper, Sec. 7.1: ResNet-18; Adam with weight decay 1e-6; lr 3e-3 and 1000 epochs (CIFAR),
  lr 2e-3 and 2000 epochs (STL-10), lr 2e-3 and 1000 epochs (Tiny ImageNet); temperature
  0.5; lambda 1e-4; a two-layer MLP head with BatchNorm and ReLU, L2,1 on its last layer.
- W-MSE code base (Ermolov et al., 2021), where the paper is silent: batch 512, head
  512 -> 1024 -> 64 (128 for STL-10 and Tiny ImageNet), the augmentation parameters, 5-NN on
  the 512-d backbone features.
- `cpu-default`: our choice, measured to finish in about 3-4 minutes on 2 CPU cores.
"""

from __future__ import annotations

__all__ = ["DEFAULTS", "PRESETS"]

# The run that `python reference/train_simclr.py` does with no flags.
DEFAULTS: dict = {
    "dataset": "fashion-mnist-10k",  # shipped with the repository: the same images everywhere
    "data_dir": None,
    "download": False,
    "train_size": 8192,
    "test_size": 2000,
    "backbone": "small-cnn",
    "head": "mlp",
    "head_hidden": 512,
    "head_dim": 64,
    "l21": None,  # None: the paper's 1e-4 when the head has weights, 0 for the identity head
    "proximal": False,
    "hoyer": 0.0,  # group Hoyer instead of L2,1 (reference/variants.py)
    "budget": None,  # keep at most this many head groups (int, or a fraction of them)
    "budget_steps": None,  # [begin, end] of the budget schedule; None: [0, 2/3 of the steps]
    "target_sparsity": None,  # adapt l21 until this fraction of groups holds 95 % energy
    "epochs": 10,
    "batch_size": 256,
    "lr": 3e-3,
    "weight_decay": 1e-6,
    "temperature": 0.5,
    "seed": 0,
    "ssl_split": "train",  # the split self-supervised training uses (STL-10: train+unlabeled)
    "jit_compile": "auto",
}

_PAPER = {
    "backbone": "resnet18",
    "head": "mlp",
    "head_hidden": 1024,
    "head_dim": 64,
    "l21": 1e-4,
    "batch_size": 512,
    "weight_decay": 1e-6,
    "temperature": 0.5,
    "train_size": None,  # the whole split
    "test_size": None,
}

PRESETS: dict[str, dict] = {
    "paper-cifar10": {**_PAPER, "dataset": "cifar10", "epochs": 1000, "lr": 3e-3},
    "paper-cifar100": {**_PAPER, "dataset": "cifar100", "epochs": 1000, "lr": 3e-3},
    "paper-stl10": {
        **_PAPER,
        "dataset": "stl10",
        "epochs": 2000,
        "lr": 2e-3,
        "head_dim": 128,
        "ssl_split": "train+unlabeled",
    },
    "paper-tiny-imagenet": {
        **_PAPER,
        "dataset": "tiny-imagenet",
        "epochs": 1000,
        "lr": 2e-3,
        "head_dim": 128,
    },
}
