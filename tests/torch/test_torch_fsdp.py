"""SparseHead on DTensor weights sharded by FSDP2 (`fully_shard`): gloo, two processes on CPU.

Every function must give on a sharded weight what it gives on the full weight, whichever dim
is sharded; a norm computed on the local shard alone would be wrong for every group.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from sparsehead.adapters.torch import group_norms, l21_penalty, l21_prox

from tests.tolerances import assert_close

from . import fsdp_worker

pytestmark = pytest.mark.multiprocess


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("fsdp") / "result.pt"
    run = subprocess.run(
        [sys.executable, str(Path(fsdp_worker.__file__)), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return torch.load(out)


def _close(actual, expected):
    expected = expected.detach().numpy()
    scale = float(abs(expected).max()) if expected.size else 0.0
    assert_close(actual.numpy(), expected, "float32", atol_scale=scale)


@pytest.mark.parametrize("dim", fsdp_worker.PLACEMENTS, ids=lambda d: f"Shard({d})")
@pytest.mark.parametrize("group_axis", [-1, 0])
def test_ops_on_sharded_weight_match_full_weight(result, dim, group_axis):
    got = result["ops"][dim, group_axis]
    assert "error" not in got, got.get("error")
    w = fsdp_worker.weight().requires_grad_()
    penalty = l21_penalty(w, group_axis)
    penalty.backward()
    assert got["plain"] == (True, True)  # plain tensors: they add to a plain loss
    _close(got["norms"], group_norms(w, group_axis))
    _close(got["penalty"], penalty)
    _close(got["grad"], w.grad)  # the penalty's gradient reaches each shard once
    t = torch.linspace(0.5, 2.0, w.shape[group_axis])
    _close(got["prox"], l21_prox(w, 1.5, group_axis))
    _close(got["prox_t"], l21_prox(w, t, group_axis))
    _close(got["prox_"], l21_prox(w, 1.5, group_axis))
    # only per-group vectors travel: the weight is never gathered
    sharded_groups = dim == group_axis % 2
    gathers = got["comms"].get("c10d_functional.all_gather_into_tensor", 0)
    assert gathers == (1 if sharded_groups else 0), got["comms"]


@pytest.mark.parametrize("dim", fsdp_worker.PLACEMENTS, ids=lambda d: f"Shard({d})")
@pytest.mark.parametrize("precondition", fsdp_worker.PRECONDITIONS, ids=["lr", "adam"])
def test_fsdp2_training_matches_single_process(result, dim, precondition):
    got = result["train"][dim, precondition]
    assert "error" not in got, got.get("error")
    x, y = fsdp_worker.batch()
    params, losses = fsdp_worker.train(fsdp_worker.build(), x, y, precondition)
    _close(got["losses"], torch.stack(losses))
    for actual, expected in zip(got["params"], params, strict=True):
        _close(actual, expected)
    head = params[2]  # (out, in): the prox acted, some groups are exactly 0 in both runs
    zero = (head == 0).all(dim=0)
    assert zero.any()
    assert (got["params"][2][:, zero] == 0).all()
