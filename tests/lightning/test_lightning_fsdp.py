"""The SparseHead callback under Lightning's FSDP2 strategy (`ModelParallelStrategy`), 2 gloo
processes on CPU, against the single-process plain-PyTorch loop of `lightning_worker.reference`.

The head weight is a `DTensor` sharded on dim 0 (output rows) while the groups are its columns:
every group norm is split across the two ranks, so a norm, penalty, prox or logged measure
taken on the local shard alone would be wrong for every group.
"""

from __future__ import annotations

import pytest
import torch

import sparsehead as sh
from tests.tolerances import assert_close
from tests.workers import run_worker

from . import lightning_worker as lw

pytestmark = [
    pytest.mark.multiprocess,
    pytest.mark.skipif(
        tuple(int(v) for v in torch.__version__.split(".")[:2]) < (2, 4),
        reason="Lightning's ModelParallelStrategy (FSDP2) needs torch >= 2.4",
    ),
]

EXPECTED = {"penalty": (True, None), "prox": (False, "adam")}  # Adam: "auto" is Adam-aware


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("lightning_fsdp") / "result.pt"
    run_worker(lw.__file__, out, "fsdp", cwd=out.parent)
    return torch.load(out)


@pytest.mark.parametrize("mode", ["penalty", "prox"])
def test_fsdp2_matches_single_process_loop(result, mode):
    got = result[mode]
    assert got["sharded_after_forward"]  # the penalty was taken on the sharded weight
    # rank r has the samples r, r+2, ...: the two ranks' batches of 4 are one batch of 8, and
    # FSDP2's average of the two ranks' gradients is the gradient of the mean over the 8
    expected = lw.reference(*EXPECTED[mode], batch_size=8)
    e = expected.numpy()
    assert_close(got["weight"].numpy(), e, "float32", atol_scale=float(abs(e).max()))
    assert got["proxes"] == (mode == "prox")  # one prox, on the one chosen weight
    zero = (expected == 0).all(dim=0)
    assert (got["weight"][:, zero] == 0).all()  # the same groups are exactly 0
    assert zero.any() == (mode == "prox")  # the prox zeroes groups in 4 steps, the penalty not


@pytest.mark.parametrize("mode", ["penalty", "prox"])
def test_fsdp2_logged_measures_are_those_of_the_full_weight(result, mode):
    got = result[mode]
    summary = sh.sparsity_summary(got["weight"].double().numpy(), group_axis=-1)
    for key in ("l21", "groups_95_energy", "frac_below_1pct", "zero_groups"):
        logged = got["metrics"][f"sparsehead/net.2.weight/{key}"]
        assert_close(logged, summary[key], "float32", err_msg=key)


@pytest.mark.parametrize("mode", ["penalty", "prox"])
def test_fsdp2_logging_and_penalty_never_gather_the_weight(result, mode):
    comms = result[mode]["comms"]  # CommDebugMode around measures() and penalty() on rank 0
    assert comms.get("c10d_functional.all_reduce", 0) > 0  # the per-group sums are reduced
    assert set(comms) == {"c10d_functional.all_reduce"}, comms  # no all_gather of the weight
