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

__all__ = ["DEFAULTS", "METHOD_DEFAULTS", "PRESETS"]

# The run that `python reference/train_simclr.py` does with no flags.
DEFAULTS: dict = {
    "dataset": "fashion-mnist",
    "data_dir": None,
    "download": False,
    "train_size": 8192,
    "test_size": None,  # the whole test split (10 000 images for Fashion-MNIST)
    "backbone": "small-cnn",
    "head": "mlp",
    "head_hidden": 512,
    "head_dim": 64,
    "l21": None,  # None: the paper's 1e-4 when the head has weights, 0 for the identity head
    "proximal": False,
    "epochs": 10,
    "batch_size": 256,
    "lr": 3e-3,
    "weight_decay": 1e-6,
    "temperature": 0.5,
    "crop_scale": [0.2, 1.0],  # area range of the random resized crop
    "tau": 0.99,  # BYOL: starting EMA decay of the target
    "tau_schedule": "cosine",  # BYOL: tau -> 1 with a cosine over the run
    "lambda_offdiag": 5e-3,  # Barlow Twins: weight of the off-diagonal terms
    "seed": 0,
    "ssl_split": "train",  # the split self-supervised training uses (STL-10: train+unlabeled)
    "jit_compile": "auto",
}

# The method's own CPU-sized settings, over `DEFAULTS` (and under `--preset` and the flags).
METHOD_DEFAULTS: dict[str, dict] = {
    "simclr": {},
    "byol": {},
    "barlow-twins": {},
}

_PAPER = {
    "backbone": "resnet18",
    "crop_scale": [0.2, 1.0],
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
