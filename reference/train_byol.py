"""BYOL (Grill et al., 2020): the online network predicts an EMA target network, + SparseHead.

Sec. 7.1 of the paper with the byol loss: data, two views, backbone + head with
`L21` on its last kernel, Adam, then evaluation (the steps are in `reference/training.py`).

Run `python reference/train_byol.py --help` for the flags; results go to `--out`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script

from reference import cli


def main(argv=None) -> dict:
    return cli.main("byol", argv)


if __name__ == "__main__":
    main()
