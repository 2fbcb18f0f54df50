"""reference/reproduce.py: the settings grid, the summary statistics, the table, a tiny run."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("sklearn")

from reference.reproduce import (
    PAPER_TABLE1,
    main,
    markdown_table,
    settings,
    summarise,
)


def test_paper_table1_values_are_the_papers():
    # Spot checks against the text of Table 1 (shared/paper/sparsehead-paper.txt).
    assert PAPER_TABLE1[("simclr", False)]["cifar10"] == (91.80, 88.42)
    assert PAPER_TABLE1[("simclr", True)]["cifar10"] == (92.75, 90.32)
    assert PAPER_TABLE1[("byol", True)]["tiny-imagenet"] == (52.16, 36.74)
    assert PAPER_TABLE1[("barlow-twins", False)]["stl10"] == (90.71, 86.31)


def test_settings_grid():
    labels = [label for label, _ in settings([1e-4, 1e-2], penalty=True, proximal=True)]
    assert labels[0] == "baseline" and len(labels) == 5
    only_prox = settings([1e-3], penalty=False, proximal=True)
    assert [o for _, o in only_prox] == [{"l21": 0.0, "proximal": False},
                                         {"l21": 1e-3, "proximal": True}]  # fmt: skip


def _fake(lin, knn, zeros):
    m = {"linear_representation": lin, "knn5_representation": knn, "linear_embedding": lin,
         "knn5_embedding": knn, "effective_rank_representation": 10.0,
         "effective_rank_embedding": 5.0,
         "head_sparsity": {"groups_95_energy": 30, "zero_groups": zeros, "frac_below_1pct": 0.0,
                           "groups": 64}}  # fmt: skip
    return {"metrics": {"trained": m, "random_init": m}}


def test_summary_is_mean_and_sample_std_over_seeds():
    s = summarise([_fake(0.80, 0.70, 2), _fake(0.90, 0.60, 4)])
    assert s["linear_representation"] == pytest.approx((85.0, np.std([80, 90], ddof=1)))
    assert s["knn5_representation"] == pytest.approx((65.0, np.std([70, 60], ddof=1)))
    assert s["zero_groups"] == pytest.approx((3.0, np.std([2, 4], ddof=1)))
    table = markdown_table("simclr", "cifar10", [("baseline", s)], [0, 1])
    assert "| baseline | 85.00 ± 7.07 | 65.00 ± 7.07 |" in table
    assert "| paper: simclr + SparseHead | 92.75 | 90.32 |" in table
    assert "Table 1" in table


def test_tiny_reproduce_run(tmp_path, capsys):
    report = main(["--l21", "0.3", "--seeds", "0", "--no-penalty", "--out", str(tmp_path), "--",
                   "--dataset", "digits", "--train-size", "256", "--test-size", "100",
                   "--batch-size", "128", "--epochs", "1", "--head-hidden", "32",
                   "--head-dim", "8"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "| baseline |" in printed and "The paper has no row for digits" in printed
    assert (tmp_path / "table.md").read_text().strip() in printed
    assert (tmp_path / "spectra_overlay.png").stat().st_size > 0
    saved = json.loads((tmp_path / "reproduce.json").read_text())
    assert set(saved["rows"]) == {"baseline", "SparseHead proximal λ=0.3"}
    assert report["rows"]["baseline"]["zero_groups"][0] == 0
