"""Smoke test of the benchmark harness: it runs in --quick mode and its rows are well formed.

No timing is asserted here: speed targets are checked by running `python -m benchmarks`.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from benchmarks import cli
from benchmarks._harness import Row, interleaved, peak_extra_bytes, ratio_row


def _well_formed(row: dict) -> None:
    assert row["reps"] > 0
    for key in ("ratio", "ratio_min", "ratio_max"):
        assert math.isfinite(row[key]) and row[key] > 0, row
    assert row["ratio_min"] <= row["ratio"] <= row["ratio_max"], row
    assert row["sense"] in ("<=", ">=")


def test_quick_run_writes_table_markdown_and_json(tmp_path, capsys):
    md, js = tmp_path / "t.md", tmp_path / "t.json"
    rc = cli.main(["--quick", "--only", "l21_norm", "--only", "info_nce",
                   "--markdown", str(md), "--json", str(js)])  # fmt: skip
    assert rc == 0
    data = json.loads(js.read_text())
    names = [r["name"] for r in data["rows"]]
    assert any("row groups" in n for n in names) and any("column groups" in n for n in names)
    assert any("info_nce" in n and "memory" in n for n in names)
    for row in data["rows"]:
        _well_formed(row)
    assert data["machine"]["cores"] >= 1 and "numpy" in data["machine"]["versions"]
    text = md.read_text()
    assert "| group | benchmark |" in text and text.count("\n| l21_norm |") == 2
    assert "python -m benchmarks --quick" in text
    out = capsys.readouterr().out
    assert "W.sum()" in out and "CPU:" in out


def test_every_benchmark_runs_in_quick_mode(tmp_path, capsys):
    # The whole command as a fresh environment with the `bench` extra runs it, the per-backend
    # benchmarks on this process's Keras backend only (one worker process each; CI's budget):
    # every row is measured, none SKIPPED. The `train` group (with `augment`'s rows) runs in
    # test_train.py, which also checks its rows' names and evidence.
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    for module in ("pyproximal", "jaxopt", "jax", "torch", backend, "keras"):
        pytest.importorskip(module)
    js = tmp_path / "all.json"
    cli._register_optional()
    others = [a for n in cli.BENCHMARKS if n not in ("train", "augment") for a in ("--only", n)]
    assert cli.main(["--quick", "--backends", backend, "--json", str(js), *others]) == 0
    rows = json.loads(js.read_text())["rows"]
    assert {r["group"] for r in rows} >= {"l21_norm", "l21_prox", "peers", "info_nce",
                                          "memory", "min_max", "keras", "simclr"}  # fmt: skip
    for row in rows:
        assert not row["note"].startswith("SKIPPED"), row
        _well_formed(row)
    capsys.readouterr()


def test_unknown_name_is_an_error(capsys):
    assert cli.main(["--only", "no-such-benchmark"]) == 2


def test_list_names_every_target(capsys):
    assert cli.main(["--list"]) == 0
    listed = capsys.readouterr().out.split()
    names = ("l21_norm", "l21_prox", "peers", "info_nce", "min_max", "keras_l21", "simclr")
    for name in (*names, "augment", "train"):
        assert name in listed


def test_interleaved_alternates_and_counts():
    calls: list[str] = []
    ta, tb = interleaved(lambda: calls.append("a"), lambda: calls.append("b"), reps=4, warmup=1)
    assert len(ta) == len(tb) == 4
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b", "b", "a"]


def test_ratio_row_inverts_for_speedups():
    slow = lambda: sum(range(20000))  # noqa: E731
    fast = lambda: None  # noqa: E731
    row = ratio_row("g", "n", "b", fast, slow, reps=3, sense=">=", limit=1.0, invert=True)
    assert row.ratio > 1 and row.ok  # a no-op is faster than a loop: a speed-up above 1
    row = ratio_row("g", "n", "b", fast, slow, reps=3, limit=1.0)
    assert row.ratio < 1 and row.ok


def test_peak_extra_bytes_sees_numpy_allocations():
    (peak,) = peak_extra_bytes(lambda: np.ones(1 << 20))  # 8 MiB of float64
    assert 8 << 20 <= peak < 9 << 20


@pytest.mark.parametrize("sense,ratio,ok", [("<=", 1.0, True), ("<=", 1.1, False),
                                            (">=", 1.0, True), (">=", 0.9, False)])  # fmt: skip
def test_row_ok_is_the_target(sense, ratio, ok):
    row = Row("g", "n", "b", ratio, ratio, ratio, sense, 1.0, 1)
    assert row.ok is ok
