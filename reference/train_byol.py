"""BYOL (Grill et al., 2020): the online network predicts an EMA target network, + SparseHead.

Sec. 7.1 of the paper, top to bottom (see `reference/training.py`, which this calls):

1. Data: the training split (a Fashion-MNIST subset by default; `--preset paper-*` for
   CIFAR-10/100, STL-10, Tiny ImageNet), two views per image: random resized crop (scale
   0.2-1), colour jitter (0.4, 0.4, 0.4, 0.1) with p = 0.8, grayscale p = 0.1, flip.
2. Network: backbone f (`--backbone`, ResNet-18 in the paper) and projection head h
   (`--head`: the paper's MLP Linear-BN-ReLU-Linear), `L21(--l21)` on h's last kernel
   (`--l21 0`: plain byol; `--proximal`: exact zeros by a prox step).
3. Objective and optimiser: the byol loss + lambda ||W||_{2,1} (Eq. 12); Adam, weight decay
   1e-6, `--lr`, `--epochs`, `--batch-size`.
4. Evaluation: linear probe (Eq. 3) and 5-NN on the frozen representation and embedding, for
   the trained network and the same network at random initialisation; eigenvalue spectra
   (Fig. 1, 3), effective rank, RankMe, head group sparsity, min-max distance ratio (Eq. 9).

Run `python reference/train_byol.py --help` for the flags; results go to `--out`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from reference.cli import config_from_args
from reference.training import run


def main(argv=None) -> dict:
    return run(config_from_args("byol", argv))


if __name__ == "__main__":
    main()
