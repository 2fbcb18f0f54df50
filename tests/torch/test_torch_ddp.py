"""SparseHead under DistributedDataParallel (gloo, two processes on one CPU)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

import sparsehead as sh
from tests.tolerances import assert_close

from . import ddp_worker

pytestmark = pytest.mark.multiprocess


def test_ddp_matches_single_process_full_batch(tmp_path):
    out = tmp_path / "weights.pt"
    run = subprocess.run(
        [sys.executable, str(Path(ddp_worker.__file__)), str(out)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    ranks = torch.load(out)
    assert torch.equal(ranks[0], ranks[1])  # the prox keeps the replicas identical
    # Equal halves and a mean loss: DDP's averaged gradient is the full batch's gradient, and
    # the penalty's gradient is the same on both ranks.
    x, y = ddp_worker.batch()
    reference = ddp_worker.train(ddp_worker.build(), x, y)[2].weight.detach().numpy()
    assert_close(ranks[0].numpy(), reference, "float32", atol_scale=abs(reference).max())
    zero = sh.group_norms(reference, -1) == 0
    assert zero.any()  # the prox acted: some groups are exactly 0, on every rank alike
    assert (ranks[0].numpy()[:, zero] == 0).all()
