"""The paper's Table 1: the numbers `reproduce.py` prints beside its own.

"Towards the Sparseness of Projection Head in Self-Supervised Learning": linear and 5-NN
accuracy (%) of ResNet-18, without and with SparseHead, for the datasets our loaders cover.
"""

from __future__ import annotations

__all__ = ["PAPER_CITATION", "PAPER_TABLE1", "paper_row"]

#: (method, with SparseHead) -> dataset -> (linear, 5-NN) accuracy in %.
PAPER_TABLE1: dict[tuple[str, bool], dict[str, tuple[float, float]]] = {
    ("simclr", False): {"cifar10": (91.80, 88.42), "cifar100": (66.83, 56.57),
                        "stl10": (90.51, 85.68), "tiny-imagenet": (48.82, 32.86)},
    ("byol", False): {"cifar10": (91.73, 89.26), "cifar100": (66.60, 56.82),
                      "stl10": (91.86, 88.61), "tiny-imagenet": (51.01, 36.14)},
    ("barlow-twins", False): {"cifar10": (90.88, 88.78), "cifar100": (66.67, 56.39),
                              "stl10": (90.71, 86.31), "tiny-imagenet": (49.74, 33.61)},
    ("simclr", True): {"cifar10": (92.75, 90.32), "cifar100": (67.55, 56.84),
                       "stl10": (92.24, 88.49), "tiny-imagenet": (51.42, 36.16)},
    ("byol", True): {"cifar10": (92.45, 90.05), "cifar100": (67.52, 56.86),
                     "stl10": (92.60, 88.63), "tiny-imagenet": (52.16, 36.74)},
    ("barlow-twins", True): {"cifar10": (91.28, 89.87), "cifar100": (66.91, 56.47),
                             "stl10": (91.45, 88.46), "tiny-imagenet": (51.49, 35.26)},
}  # fmt: skip
PAPER_CITATION = (
    "Table 1 of 'Towards the Sparseness of Projection Head in Self-Supervised Learning' "
    "(ResNet-18, 1000-2000 epochs)"
)


def paper_row(method: str, sparse: bool, dataset: str) -> tuple[float, float] | None:
    """(linear, 5-NN) of `method` (+ SparseHead if `sparse`) on `dataset`; None if absent."""
    return PAPER_TABLE1.get((method, sparse), {}).get(dataset)
