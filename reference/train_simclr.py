"""SimCLR (Chen et al., 2020): InfoNCE (Eq. 2) between two views, temperature 0.5, + SparseHead.

Sec. 7.1 of the paper with the simclr loss: data, two views, backbone + head with
`L21` on its last kernel, Adam, then evaluation (the steps are in `reference/training.py`).

Run `python reference/train_simclr.py --help` for the flags; results go to `--out`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from reference import cli


def main(argv=None) -> dict:
    return cli.main("simclr", argv)


if __name__ == "__main__":
    main()
