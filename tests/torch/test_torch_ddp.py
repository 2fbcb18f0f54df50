"""SparseHead under DistributedDataParallel and ZeroRedundancyOptimizer (gloo, 2 processes, CPU)."""

from __future__ import annotations

import pytest
import torch

import sparsehead as sh
from tests.tolerances import assert_close
from tests.workers import run_worker

from . import ddp_worker

pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def ddp_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "weights.pt"
    run_worker(ddp_worker.__file__, out, timeout=180)
    return torch.load(out)


def test_ddp_matches_single_process_full_batch(ddp_result):
    ranks = ddp_result["ddp"]
    assert torch.equal(ranks[0], ranks[1])  # the prox keeps the replicas identical
    # Equal halves and a mean loss: DDP's averaged gradient is the full batch's gradient, and
    # the penalty's gradient is the same on both ranks.
    x, y = ddp_worker.batch()
    reference = ddp_worker.train(ddp_worker.build(), x, y)[2].weight.detach().numpy()
    assert_close(ranks[0].numpy(), reference, "float32", atol_scale=abs(reference).max())
    zero = sh.group_norms(reference, -1) == 0
    assert zero.any()  # the prox acted: some groups are exactly 0, on every rank alike
    assert (ranks[0].numpy()[:, zero] == 0).all()


def test_zero_adam_prox_matches_plain_adam(ddp_result):
    """Under ZeroRedundancyOptimizer the Adam-aware threshold is read on the rank that owns the
    state and sent to the others: the weights are those of plain Adam on the full batch."""
    ranks = ddp_result["zero"]
    assert torch.equal(ranks[0], ranks[1])
    x, y = ddp_worker.batch()
    reference = ddp_worker.train(ddp_worker.build(), x, y)[2].weight.detach().numpy()
    assert_close(ranks[0].numpy(), reference, "float32", atol_scale=abs(reference).max())
    zero = sh.group_norms(reference, -1) == 0
    assert zero.any() and (ranks[0].numpy()[:, zero] == 0).all()


def test_zero_adam_prox_without_state_raises_on_every_rank(ddp_result):
    for message in ddp_result["errors"]:  # one per rank: the owner's and the other's
        assert message is not None and "optimizer.step()" in message, ddp_result["errors"]
