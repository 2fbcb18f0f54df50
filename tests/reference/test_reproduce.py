"""reference/reproduce.py and reference/stats.py: the settings grid, the summary statistics,
the paired comparison with its Student-t intervals, the tables, comparison.json, tiny runs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("keras")
pytest.importorskip("sklearn")
pytest.importorskip("scipy")

import keras
from scipy import stats as scipy_stats

import reference.training
from reference.errors import UsageError
from reference.reproduce import (
    METRICS,
    PAPER_TABLE1,
    main,
    markdown_table,
    settings,
    summarise,
)
from reference.stats import paired_difference, t_quantile, verdict

ACCURACIES = ("linear_representation", "knn5_representation", "linear_embedding",
              "knn5_embedding")  # fmt: skip


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


def test_settings_take_extra_settings_and_refuse_clashes():
    grid = settings([1e-4], True, False, extra=[("group Hoyer 1e-3", {"hoyer": 1e-3})])
    assert grid[-1] == ("group Hoyer 1e-3", {"hoyer": 1e-3})
    with pytest.raises(ValueError, match="unique"):
        settings([1e-4], True, False, extra=[("baseline", {"budget": 16})])
    with pytest.raises(TypeError, match="dict"):
        settings([1e-4], True, False, extra=[("budget 16", 16)])


def _fake(lin, knn, zeros):
    m = {"linear_representation": lin, "knn5_representation": knn, "linear_embedding": lin,
         "knn5_embedding": knn, "effective_rank_representation": 10.0,
         "effective_rank_embedding": 5.0,
         "head_sparsity": {"groups_95_energy": 30, "zero_groups": zeros, "frac_below_1pct": 0.0,
                           "groups": 64, "l21": 3.0}}  # fmt: skip
    init = {**m, "linear_representation": lin - 0.1, "knn5_representation": knn - 0.2}
    return {"metrics": {"trained": m, "random_init": init},
            "timing": {"train_images_per_second": 1000.0}}  # fmt: skip


def test_summary_is_mean_and_sample_std_over_seeds():
    s = summarise([_fake(0.80, 0.70, 2), _fake(0.90, 0.60, 4)])
    assert s["linear_representation"] == pytest.approx((85.0, np.std([80, 90], ddof=1)))
    assert s["knn5_representation"] == pytest.approx((65.0, np.std([70, 60], ddof=1)))
    assert s["zero_groups"] == pytest.approx((3.0, np.std([2, 4], ddof=1)))
    assert s["random_init_knn5_representation"] == pytest.approx((45.0, np.std([50, 40], ddof=1)))
    table = markdown_table("simclr", "cifar10", [("baseline", s)], [0, 1])
    assert "| baseline | 85.00 ± 7.07 | 65.00 ± 7.07 |" in table
    assert "| random init (same network, untrained) | 75.00 ± 7.07 | 45.00 ± 7.07 |" in table
    assert "| paper: simclr + SparseHead | 92.75 | 90.32 |" in table
    assert "Table 1" in table


# --- the statistics: reference/stats.py ------------------------------------------------------

# Two-sided Student-t critical values, from a printed table (e.g. NIST/SEMATECH e-Handbook of
# Statistical Methods, 1.3.6.7.2): t_{0.975, dof} and t_{0.95, 4}.
T_TABLE = {(0.975, 1): 12.706, (0.975, 2): 4.303, (0.975, 4): 2.776, (0.975, 9): 2.262,
           (0.95, 4): 2.132}  # fmt: skip


@pytest.mark.parametrize(("p", "dof"), list(T_TABLE))
def test_t_quantile_matches_the_printed_table(p, dof):
    assert t_quantile(p, dof) == pytest.approx(T_TABLE[(p, dof)], abs=5e-4)


def test_paired_interval_by_hand_with_the_tabulated_t():
    # Seeds differ by up to 20 points; the setting is 1..5 points above its own seed's baseline.
    base = [80.0, 90.0, 70.0, 85.0, 75.0]
    d = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    c = paired_difference(base, np.add(base, d))
    # mean 3, sample sd sqrt(2.5), n 5, t_{0.975,4} = 2.776 (the table's 3 decimals: the
    # half-width is known to 0.0005 * sqrt(2.5 / 5) < 4e-4).
    half = 2.776 * math.sqrt(2.5) / math.sqrt(5)
    assert c["paired_diff"] == pytest.approx(d.tolist(), abs=1e-12)
    assert c["diff_mean"] == pytest.approx(3.0, abs=1e-12)
    assert c["ci95"] == pytest.approx([3 - half, 3 + half], abs=4e-4)
    # ... and scipy's paired t-test gives the same interval.
    ci = scipy_stats.ttest_rel(np.add(base, d), base).confidence_interval(0.95)
    assert c["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-12)


def test_verdicts_on_constructed_inputs():
    # Seed-to-seed spread of 20 points, a paired effect of +0.5 +- 0.02: clearly better, though
    # an unpaired comparison (pooled sd ~ 8) could not see it.
    base = [70.0, 80.0, 90.0, 75.0, 85.0]
    up = np.add(base, [0.51, 0.49, 0.52, 0.48, 0.50])
    assert verdict(paired_difference(base, up), True) == "better"
    assert verdict(paired_difference(base, up), None) == "higher"
    assert verdict(paired_difference(up, base), True) == "worse"
    assert verdict(paired_difference(up, base), None) == "lower"
    assert verdict(paired_difference(base, up), False) == "worse"  # lower is better
    # Symmetric noise: mean 0, half-width 2.776 * sqrt(2.5) / sqrt(5) = 1.963.
    noisy = np.add(base, [1.0, -1.0, 2.0, -2.0, 0.0])
    c = paired_difference(base, noisy)
    assert c["diff_mean"] == pytest.approx(0.0, abs=1e-12)
    assert verdict(c, True) == "no detectable difference at ±1.96"
    assert verdict(c, None, digits=1) == "no detectable difference at ±2.0"
    # One seed: no interval, no NaN.
    one = paired_difference([80.0], [81.0])
    assert one["ci95"] is None and one["diff_mean"] == pytest.approx(1.0)
    assert verdict(one, True) == "n=1: no interval"


def test_paired_difference_refuses_bad_input():
    with pytest.raises(ValueError, match="equal length"):
        paired_difference([1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="finite"):
        paired_difference([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ValueError, match="dof"):
        t_quantile(0.975, 0)


# --- reproduce.main with a fake `run`: the comparison, comparison.json, the tables ------------

# Per seed: a baseline whose accuracy varies by 20 points between seeds, and settings whose
# effect on linear (r) is +0.5 +- 0.02 points (penalty) or symmetric noise (proximal).
BASE = [0.70, 0.80, 0.90, 0.75, 0.85]
EFFECT = {0.0: [0.0051, 0.0049, 0.0052, 0.0048, 0.0050],
          0.5: [0.01, -0.01, 0.02, -0.02, 0.0]}  # fmt: skip
HOYER = 7.0  # the extra setting's l21 value (only passed through)


def _fake_run(cfg, verbose=0):
    s = cfg["seed"]
    effect = EFFECT[0.5][s] if cfg.get("proximal") else EFFECT[0.0][s] if cfg["l21"] else 0.0
    lin = BASE[s] + effect
    trained = {"linear_representation": lin, "knn5_representation": lin - 0.05,
               "linear_embedding": lin - 0.1, "knn5_embedding": lin - 0.15,
               "effective_rank_representation": 30.0 + s + 10 * cfg["l21"],
               "effective_rank_embedding": 10.0 - s - 10 * cfg["l21"],
               "head_sparsity": {"l21": 5.0 - cfg["l21"] + 0.1 * s, "groups": 64,
                                 "groups_95_energy": 50 - s, "zero_groups": 0,
                                 "frac_below_1pct": 0.01 * s},
               "head_frobenius": 2.0 - cfg["l21"] + 0.03 * s}  # fmt: skip
    init = {k: v - 0.05 for k, v in trained.items() if k in ACCURACIES}
    init.update(effective_rank_representation=60.0, effective_rank_embedding=30.0)
    return {"config": dict(cfg), "metrics": {"trained": trained, "random_init": init},
            "timing": {"train_images_per_second": 900.0 + 7 * s + cfg["l21"]}}  # fmt: skip


def _value(run, key):
    t = run["metrics"]["trained"]
    hs = t["head_sparsity"]
    return {**{k: 100 * t[k] for k in ACCURACIES},
            "effective_rank_representation": t["effective_rank_representation"],
            "effective_rank_embedding": t["effective_rank_embedding"],
            "head_l21": hs["l21"], "head_frobenius": t["head_frobenius"],
            "frac_below_1pct": 100 * hs["frac_below_1pct"],
            "groups_95_energy": hs["groups_95_energy"],
            "train_images_per_second": run["timing"]["train_images_per_second"]}[key]  # fmt: skip


@pytest.fixture
def fake_run(monkeypatch):
    seen = []

    def fake(cfg, verbose=0):
        seen.append(cfg)
        return _fake_run(cfg, verbose)

    monkeypatch.setattr(reference.training, "run", fake)
    # clear_session's gc.collect takes about 1 s with TensorFlow loaded; nothing to clear here.
    monkeypatch.setattr(keras.utils, "clear_session", lambda *a, **k: None)
    return seen


def test_comparison_json_schema_and_intervals_recomputed(tmp_path, capsys, fake_run):
    seeds = [0, 1, 2, 3, 4]
    main(
        [
            "--l21",
            "0.5",
            "--out",
            str(tmp_path),
            "--setting",
            "hoyer-like",
            json.dumps({"l21": HOYER}),
        ]
    )  # fmt: skip  (default seeds: 0..4)
    printed = capsys.readouterr().out
    assert sorted({c["seed"] for c in fake_run}) == seeds and len(fake_run) == 4 * 5
    saved = json.loads((tmp_path / "simclr" / "comparison.json").read_text())
    labels = ["baseline", "SparseHead penalty λ=0.5", "SparseHead proximal λ=0.5", "hoyer-like"]
    assert list(saved["settings"]) == labels and saved["seeds"] == seeds
    keys = [m.key for m in METRICS]
    assert len(keys) == 11
    for label, entry in saved["settings"].items():
        assert list(entry) == keys
        for e in entry.values():
            if label == "baseline":
                assert set(e) == {"per_seed", "mean"}
            else:
                assert set(e) == {"per_seed", "mean", "paired_diff", "diff_mean", "ci95"}
    # per_seed: the runs' own values, seed by seed.
    overrides = dict(settings([0.5], True, True, [("hoyer-like", {"l21": HOYER})]))
    for label, entry in saved["settings"].items():
        for key, e in entry.items():
            expected = [_value(_fake_run({**overrides[label], "seed": s}), key) for s in seeds]
            assert e["per_seed"] == pytest.approx(expected, rel=1e-12)
            assert e["mean"] == pytest.approx(np.mean(expected), rel=1e-12)
    # The intervals, recomputed from per_seed by scipy's paired t-test.
    base = saved["settings"]["baseline"]
    for label in labels[1:]:
        for key, e in saved["settings"][label].items():
            x, b = np.array(e["per_seed"]), np.array(base[key]["per_seed"])
            assert e["paired_diff"] == pytest.approx((x - b).tolist(), abs=1e-9)
            assert e["diff_mean"] == pytest.approx(np.mean(x - b), abs=1e-9)
            if np.ptp(x - b) == 0:  # a constant difference: a zero-width interval
                assert e["ci95"] == pytest.approx([np.mean(x - b)] * 2, abs=1e-9)
                continue
            ci = scipy_stats.ttest_rel(x, b).confidence_interval(0.95)
            assert e["ci95"] == pytest.approx([ci.low, ci.high], rel=1e-9, abs=1e-9)
    # The paired table: +0.5 points on linear (r) is found despite the 20-point seed spread;
    # symmetric noise is not.
    v = saved["verdicts"]
    assert v["SparseHead penalty λ=0.5"]["linear_representation"] == "better"
    assert v["SparseHead proximal λ=0.5"]["linear_representation"].startswith(
        "no detectable difference at ±"
    )
    assert v["SparseHead penalty λ=0.5"]["effective_rank_embedding"] == "lower"
    assert "| SparseHead penalty λ=0.5 | linear (r) | 80.00 | 80.50 | +0.50 |" in printed
    assert "| random init (same network, untrained) | 75.00 ± 7.91 |" in printed
    assert "nan" not in printed.lower()
    assert printed.strip().endswith((tmp_path / "summary.md").read_text().strip())


def test_one_seed_says_no_interval(tmp_path, capsys, fake_run):
    main(["--seeds", "3", "--l21", "0.5", "--no-proximal", "--out", str(tmp_path)])
    printed = capsys.readouterr().out
    saved = json.loads((tmp_path / "simclr" / "comparison.json").read_text())
    e = saved["settings"]["SparseHead penalty λ=0.5"]["linear_representation"]
    assert e["ci95"] is None and e["paired_diff"] == pytest.approx([0.48], abs=1e-9)
    assert "| +0.48 | n=1: no interval | n=1: no interval |" in printed
    assert "nan" not in printed.lower()


def test_methods_and_command_line_errors(tmp_path, capsys, fake_run):
    report = main(["--methods", "byol", "barlow-twins", "--seeds", "0", "1", "--no-proximal",
                   "--out", str(tmp_path)])  # fmt: skip
    assert list(report["methods"]) == ["byol", "barlow-twins"]
    assert {c["method"] for c in fake_run} == {"byol", "barlow-twins"}
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert set(summary["comparison"]) == {"byol", "barlow-twins"}
    main(["--method", "byol", "--seeds", "0", "--out", str(tmp_path / "one")])
    assert (tmp_path / "one" / "byol" / "comparison.json").exists()
    # the other bad flags: tests/reference/test_grid_checks.py
    with pytest.raises(UsageError, match="not allowed with argument"):
        main(["--method", "byol", "--methods", "simclr", "--out", str(tmp_path / "bad")])


# --- through the real training run ------------------------------------------------------------


def test_tiny_reproduce_run_two_methods(tmp_path, capsys):
    report = main(["--methods", "simclr", "barlow-twins", "--l21", "0.3", "--seeds", "0",
                   "--no-penalty", "--out", str(tmp_path), "--",
                   "--dataset", "digits", "--train-size", "256", "--test-size", "100",
                   "--batch-size", "128", "--epochs", "1", "--head-hidden", "32",
                   "--head-dim", "8"])  # fmt: skip
    printed = capsys.readouterr().out
    assert "| baseline |" in printed and "The paper has no row for digits" in printed
    assert "random init (same network, untrained)" in printed
    assert "nan" not in printed.lower()
    assert printed.strip().endswith((tmp_path / "summary.md").read_text().strip())
    for method in ("simclr", "barlow-twins"):
        folder = tmp_path / method
        assert (folder / "table.md").read_text().strip() in printed
        assert (folder / "spectra_overlay.png").stat().st_size > 0
        results = json.loads((folder / "proximal-l21_0.3-seed0" / "results.json").read_text())
        assert results["method"] == method
        saved = json.loads((folder / "comparison.json").read_text())
        entry = saved["settings"]["SparseHead proximal λ=0.3"]
        assert len(entry) == len(METRICS)
        lin = entry["linear_representation"]
        assert lin["per_seed"] == [100 * results["metrics"]["trained"]["linear_representation"]]
        assert lin["ci95"] is None
        rows = json.loads((folder / "reproduce.json").read_text())["rows"]
        assert set(rows) == {"baseline", "SparseHead proximal λ=0.3"}
    assert report["methods"]["simclr"]["rows"]["baseline"]["zero_groups"][0] == 0
