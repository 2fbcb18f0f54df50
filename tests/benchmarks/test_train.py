"""`python -m benchmarks --only train`: the rows it promises, and the ratios' direction.

No timing is asserted (speed targets are checked by running the benchmark). What is checked:
the quick run gives every promised row, measured and finite, and each SparseHead piece was
attached to the model timed under its name and not to the one timed without it (the piece's
penalty, its step after the optimizer's, the zero groups of the budget).
"""

from __future__ import annotations

import json
import math
import os
import time

import pytest

from benchmarks import cli
from benchmarks._harness import rotated
from benchmarks.train import overhead_rows

# CI runs the workers of this process's Keras backend only (each worker is a process that
# compiles several models); `python -m benchmarks --quick` runs all three.
BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")
KERAS = [f"Keras {BACKEND}"]


def _promised() -> list[str]:
    """The start of every row name, written out here (not taken from the module)."""
    out = []
    for k in KERAS:
        out.append(f"SimCLR step pairs/s [{k}, L21 head]")
        out += [f"SparseHead {p} step [{k}]" for p in ("L21", "ProximalL21", "GroupBudget",
                                                        "GroupHoyer")]  # fmt: skip
        out.append("AdaptiveL21 fit, every ")
    out += [f"SparseHead {p} step [PyTorch]" for p in ("L21", "ProximalL21", "GroupBudget",
                                                       "GroupHoyer")]  # fmt: skip
    return out


def _attached(piece: str, ev: dict) -> None:
    """The piece left its mark on the model timed under its name."""
    assert ev["groups"] > 0, ev
    if piece in ("L21", "GroupHoyer"):  # a penalty on the loss, nothing after the step
        assert ev["penalty"] > 0 and ev["post_step"] is None, ev
    else:  # a step after the optimizer's, no penalty
        assert ev["post_step"] == piece and ev["penalty"] == 0, ev
    if piece == "GroupBudget":  # keep = 0.5 from the first step: half the groups are zero
        assert ev["zero_groups"] == ev["groups"] // 2, ev


def _bare(ev: dict) -> None:
    """The model timed without a piece has none."""
    assert ev["penalty"] == 0 and ev["post_step"] is None and ev["zero_groups"] == 0, ev


@pytest.mark.slow  # two worker processes (Keras, PyTorch)
def test_quick_train_group_gives_every_promised_row(tmp_path, capsys):
    for module in (BACKEND, "torch", "keras"):
        pytest.importorskip(module)
    js = tmp_path / "train.json"
    args = ["--quick", "--only", "train", "--backends", BACKEND, "--json", str(js)]
    assert cli.main(args) == 0
    capsys.readouterr()
    rows = json.loads(js.read_text())["rows"]
    augment = [r for r in rows if r["group"] == "augment"]  # host vs device, per backend
    assert len(augment) == 1, augment
    assert augment[0]["name"].startswith(f"augmentation images/s [Keras {BACKEND}, device]")
    assert augment[0]["reps"] > 0 and not augment[0]["note"].startswith("SKIPPED")
    rows = [r for r in rows if r["group"] != "augment"]
    for row in rows:
        assert not row["note"].startswith("SKIPPED"), row
        assert row["group"] == "train" and row["reps"] > 0, row
        for key in ("ratio", "ratio_min", "ratio_max", "a_ms", "b_ms"):
            assert math.isfinite(row[key]) and row[key] > 0, row
    names = [r["name"] for r in rows]
    for start in _promised():
        found = [n for n in names if n.startswith(start)]
        assert found, (start, names)
    assert len(rows) == len(_promised())  # one row per promise, none twice
    pieces = [r for r in rows if r["name"].startswith("SparseHead ")]
    assert len(pieces) == 4 * (len(KERAS) + 1)
    for row in pieces:
        piece = row["name"].split()[1]
        _attached(piece, row["extra"]["piece"])
        _bare(row["extra"]["without"])
    for row in rows:
        if row["name"].startswith("AdaptiveL21"):
            assert row["extra"]["updates"] >= 1, row  # lambda moved inside the timed fits
            assert 0 <= row["extra"]["measure"] <= 1, row


def test_overhead_rows_divide_the_piece_by_the_step_without_it():
    # Round r: without = 1 + r, with = 2 (1 + r): every ratio is 2, the other way 0.5.
    times = [[1.0 + r, 2.0 * (1.0 + r), 1.0 + r] for r in range(3)]
    ev = {"none": {"id": 0}, "slow": {"id": 1}, "same": {"id": 2}}
    slow, same = overhead_rows(["none", "slow", "same"], times, 0, lambda n: f"[{n}]", "base",
                               evidence=ev)  # fmt: skip
    assert slow.name == "[slow]" and slow.baseline == "base" and slow.group == "train"
    assert slow.ratio == slow.ratio_min == slow.ratio_max == 2.0 and not slow.ok
    assert same.ratio == 1.0 and same.ok
    assert slow.a_ms == 4000.0 and slow.b_ms == 2000.0  # medians, in ms
    assert slow.extra == {"piece": {"id": 1}, "without": {"id": 0}}


def test_rotated_times_each_run_in_its_own_column():
    calls: list[str] = []

    def run(name: str, seconds: float):
        def f():
            calls.append(name)
            time.sleep(seconds)

        return f

    times = rotated([run("a", 0.0), run("b", 0.02), run("c", 0.0)], reps=3, warmup=1)
    assert len(times) == 3 and all(len(r) == 3 for r in times)
    assert calls == list("abc" + "abc" + "bca" + "cab")  # warm-up, then rotated
    for r in times:
        assert r[1] >= 0.02 and r[1] > max(r[0], r[2])
