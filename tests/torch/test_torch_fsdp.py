"""SparseHead on DTensor weights sharded by FSDP2 (`fully_shard`): gloo processes on CPU, 2 on
a 1-D mesh and 4 on a 2 x 2 mesh (HSDP: replicated over one mesh dim, sharded over the other).

Every function must give on a sharded weight what it gives on the full weight, whichever dims
are sharded over whichever mesh dims; a norm computed on the local shard alone would be wrong
for every group, and one reduced over a replicated mesh dim too would count it twice.
"""

from __future__ import annotations

import pytest
import torch
from sparsehead.adapters.torch import group_norms, l21_norm, l21_prox

from tests.tolerances import assert_close
from tests.workers import run_worker

from . import fsdp_worker

pytestmark = pytest.mark.multiprocess


_RESULTS: dict = {}


def result(kind: str, tmp_path_factory) -> dict:
    """What `fsdp_worker.py OUT kind` saved (run once per mesh kind)."""
    if kind not in _RESULTS:
        out = tmp_path_factory.mktemp(f"fsdp{kind}") / "result.pt"
        run_worker(fsdp_worker.__file__, out, kind)
        _RESULTS[kind] = torch.load(out)
    return _RESULTS[kind]


def _cases(table: dict) -> list:
    return [pytest.param(k, spec, id=f"{k}-{spec}") for k, specs in table.items() for spec in specs]


def _close(actual, expected):
    expected = expected.detach().numpy()
    scale = float(abs(expected).max()) if expected.size else 0.0
    assert_close(actual.numpy(), expected, "float32", atol_scale=scale)


@pytest.mark.parametrize(("kind", "spec"), _cases(fsdp_worker.PLACEMENTS))
@pytest.mark.parametrize("group_axis", [-1, 0])
def test_ops_on_sharded_weight_match_full_weight(tmp_path_factory, kind, spec, group_axis):
    got = result(kind, tmp_path_factory)["ops"][spec, group_axis]
    assert "error" not in got, got.get("error")
    w = fsdp_worker.weight().requires_grad_()
    penalty = l21_norm(w, group_axis)
    penalty.backward()
    assert got["plain"] == (True, True)  # plain tensors: they add to a plain loss
    _close(got["norms"], group_norms(w, group_axis))
    _close(got["penalty"], penalty)
    _close(got["grad"], w.grad)  # the penalty's gradient reaches each shard once
    t = torch.linspace(0.5, 2.0, w.shape[group_axis])
    _close(got["prox"], l21_prox(w, 1.5, group_axis))
    _close(got["prox_t"], l21_prox(w, t, group_axis))
    _close(got["prox_"], l21_prox(w, 1.5, group_axis))
    # only per-group values travel, never the weight or its gradient: no collective (forward,
    # backward, prox) is given more than G entries, and a local shard of the weight has at
    # least 24 > G (see fsdp_worker.weight)
    n_groups = w.shape[group_axis]
    assert all(size <= n_groups for size in got["payload"].values()), got["payload"]
    # the G norms are gathered once per mesh dim that shards the group axis, if any
    gathers = got["comms"].get("c10d_functional.all_gather_into_tensor", 0)
    assert gathers == spec.count(group_axis % 2), got["comms"]


@pytest.mark.parametrize(("kind", "spec"), _cases(fsdp_worker.TRAIN_PLACEMENTS))
@pytest.mark.parametrize("precondition", fsdp_worker.PRECONDITIONS, ids=["lr", "adam"])
def test_fsdp2_training_matches_single_process(tmp_path_factory, kind, spec, precondition):
    got = result(kind, tmp_path_factory)["train"][spec, precondition]
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
