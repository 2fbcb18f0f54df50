"""reference/experiments/rank_vs_probe.py: Spearman's rho of a rank and a probe over runs."""

import json

import numpy as np
import pytest

from reference.experiments import rank_vs_probe as rvp

KEYS = [key for _, rank, probe in rvp.PAIRS for key in (rank, probe)]


def _run(folder, method, values):
    folder.mkdir(parents=True)
    metrics = dict(
        zip(KEYS, np.random.default_rng(len(str(folder))).random(len(KEYS)), strict=True)
    )
    metrics |= values
    (folder / "results.json").write_text(
        json.dumps({"method": method, "metrics": {"trained": metrics}})
    )


def test_rho_is_the_closed_form_on_a_known_permutation(tmp_path):
    # Ranks 1..8 against 2,1,4,3,6,5,8,7: sum d^2 = 8, rho = 1 - 6*8 / (8*63) = 19/21.
    probe = [0.80 + i / 100 for i in range(8)]
    rank = [2.0, 1.0, 4.0, 3.0, 60.0, 50.0, 800.0, 700.0]  # same ranks, far from linear
    for i, (p, r) in enumerate(zip(probe, rank, strict=True)):
        _run(
            tmp_path / f"simclr/s-seed{i}",
            "simclr",
            {"linear_representation": p, "rankme_representation": r},
        )
    result = rvp.correlations(rvp.collect([tmp_path]), resamples=199)
    cell = result["simclr"]["RankMe (r) vs linear (r)"]
    assert cell["n"] == 8
    assert cell["rho"] == pytest.approx(19 / 21)
    lo, hi = cell["ci95"]
    assert -1.0 <= lo <= hi <= 1.0


def test_unfinished_runs_and_methods_are_kept_apart(tmp_path):
    for i in range(4):
        _run(
            tmp_path / f"a/byol/s-seed{i}",
            "byol",
            {"linear_embedding": i / 10, "rankme_embedding": -i},
        )
        _run(tmp_path / f"b/barlow-twins/s-seed{i}", "barlow-twins", {"linear_embedding": i})
    # An interrupted run's folder is not a finished run, whatever its numbers.
    _run(
        tmp_path / "a/byol/s-seed9.partial",
        "byol",
        {"linear_embedding": 9.0, "rankme_embedding": 9.0},
    )
    # Nor is the old run of an interrupted `--overwrite` swap.
    _run(
        tmp_path / "a/byol/s-seed8.old",
        "byol",
        {"linear_embedding": 8.0, "rankme_embedding": 8.0},
    )
    runs = rvp.collect([tmp_path / "a", tmp_path / "b"])
    assert sorted(runs) == ["barlow-twins", "byol"]
    assert len(runs["byol"]) == 4
    result = rvp.correlations(runs, resamples=199)
    assert result["byol"]["RankMe (z) vs linear (z)"]["rho"] == pytest.approx(-1.0)
    assert result["byol"]["RankMe (z) vs linear (z)"]["ci95"] is None  # too few runs
    assert "| byol | 4 |" in rvp.table(result)


def test_spearman_refuses_mismatched_or_tiny_inputs():
    with pytest.raises(ValueError, match="equal length"):
        rvp.spearman([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=">= 3"):
        rvp.spearman([1, 2], [1, 2])
    assert rvp.spearman(np.arange(3), np.arange(3))["ci95"] is None
    assert rvp.spearman([1, 1, 1, 1], [1, 2, 3, 4])["rho"] is None
