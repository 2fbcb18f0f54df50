"""A user's mistake in a training script: one `error:` line, exit 2, `--out` untouched.

Each row of the table runs `train_simclr.py` (in a subprocess, as a user would) with a bad
flag, a bad dataset or a bad output folder, and checks: exit status 2, exactly one line on
stderr, starting `error:` and holding the expected fragment (the flag or file, and what to
do), no framework imported (so it answers in about a second, before any training work), and
`--out` as it was: no folder created, or an existing run's files byte-identical.

The checks run before any framework is imported, so one backend's pass (TensorFlow's, where
CI runs every test) covers them.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.reference.test_quickstart import FRAMEWORKS, _script

pytestmark = pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="the checks run before any framework is imported: once, in the TensorFlow pass",
)

TINY = ["--dataset", "digits", "--train-size", "256", "--test-size", "100", "--batch-size",
        "64", "--epochs", "1", "--head-hidden", "16", "--head-dim", "8", "--quiet"]  # fmt: skip


def _finished_run(out: Path) -> None:
    """What a finished run leaves (the files that matter to the checks, and one more)."""
    out.mkdir(parents=True)
    cfg = {"method": "simclr", "dataset": "digits", "seed": 0, "epochs": 1}
    (out / "config.json").write_text(json.dumps(cfg))
    (out / "results.json").write_text(json.dumps({"config": cfg}))
    (out / "spectra.npz").write_bytes(b"\x00weights\xff")


def _interrupted_run(out: Path) -> None:
    """What a run killed after its first epoch leaves (config.json as `check` stores it)."""
    import subprocess
    import sys

    code = (
        "import json, sys; from reference.cli import config_from_args; "
        "from reference.checks import stored_settings; "
        "print(json.dumps(stored_settings(config_from_args('simclr', sys.argv[1:]))))"
    )
    root = Path(__file__).resolve().parents[2]
    cfg = subprocess.run([sys.executable, "-c", code, *TINY, "--out", str(out)], cwd=root,
                         check=True, capture_output=True, text=True).stdout  # fmt: skip
    partial = out.with_name(out.name + ".partial")
    partial.mkdir(parents=True)
    (partial / "config.json").write_text(cfg)
    (partial / "history.json").write_text('[{"epoch": 1, "loss": 4.0}]')


def _snapshot(tmp_path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(tmp_path)): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file() and p.relative_to(tmp_path).parts[0].startswith("run")
    }


def _corrupt_idx(folder: Path) -> str:
    folder.mkdir()
    for stem in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # fmt: skip
        (folder / stem).write_bytes(b"\x12\x34\x56\x78not an IDX file")
    return str(folder)


# (case, flags, what is in --out before, expected fragment of the message)
CASES = [
    ("epochs 0", ["--epochs", "0"], None, "--epochs must be an int >= 1; got 0"),
    ("negative l21", ["--l21", "-1"], None, "--l21 must be >= 0; got -1.0"),
    ("budget 0", ["--budget", "0"], None, "--budget must be an int >= 1"),
    ("budget 2.0", ["--budget", "2.0"], None, "a fraction in (0, 1]; got 2.0"),
    ("target sparsity 1.5", ["--target-sparsity", "1.5"], None,
     "--target-sparsity must be a fraction in (0, 1); got 1.5"),
    ("batch larger than the data", ["--batch-size", "100000"], None,
     "--batch-size 100000 is larger than the 256 training images"),
    ("empty data dir", ["--dataset", "fashion-mnist", "--data-dir", "{empty}"], None,
     "--data-dir"),
    ("corrupt data dir", ["--dataset", "fashion-mnist", "--data-dir", "{corrupt}"], None,
     "bad magic number"),
    ("data dir for the shipped set", ["--dataset", "fashion-mnist-10k", "--data-dir", "{empty}"],
     None, "takes no data_dir (--data-dir)"),
    ("unknown preset", ["--preset", "paper-mnist"], None, "argument --preset: invalid choice"),
    ("unknown precision", ["--precision", "half"], None, "argument --precision: invalid choice"),
    ("bad flag, finished run", ["--epochs", "0"], "finished", "--epochs must be an int >= 1"),
    ("batch too large, finished run", ["--batch-size", "100000", "--overwrite"], "finished",
     "--batch-size 100000 is larger"),
    ("empty data dir, finished run", ["--dataset", "fashion-mnist", "--data-dir", "{empty}",
                                      "--overwrite"],
     "finished", "--data-dir"),
    ("finished run without --overwrite", [], "finished", "pass --overwrite to replace it"),
    ("resume a finished run", ["--resume"], "finished", "has finished; nothing to resume"),
    ("resume with no run", ["--resume"], None, "--resume: no interrupted run"),
    ("interrupted run without --resume", [], "interrupted", "add --resume to continue it"),
    ("resume with other settings", ["--resume", "--seed", "3"], "interrupted",
     "--seed 3 (was 0) differ"),
    ("out is a folder of other files", [], "stray", "holds files but no finished run"),
    ("augment elsewhere", ["--augment", "gpu"], None, "argument --augment: invalid choice"),
    ("resume with the other augmentation", ["--resume", "--augment", "device"], "interrupted",
     "--augment 'device' (was 'host') differ"),
]  # fmt: skip


@pytest.mark.parametrize(("flags", "before", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_flag_is_one_error_line_exit_2_and_out_untouched(tmp_path, flags, before, fragment):
    out = tmp_path / "run"
    if before == "finished":
        _finished_run(out)
    elif before == "interrupted":
        _interrupted_run(out)
    elif before == "stray":
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    where = {"empty": str(tmp_path / "empty"), "corrupt": _corrupt_idx(tmp_path / "bad")}
    (tmp_path / "empty").mkdir()
    flags = [f.format(**where) for f in flags]
    was = _snapshot(tmp_path)

    proc = _script(tmp_path, "train_simclr.py", *TINY, *flags, "--out", str(out),
                   SANDBOX_REPORT_MODULES="1")  # fmt: skip

    assert proc.returncode == 2, proc.stderr[-3000:]
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert fragment in lines[0]
    modules = {m.split(".")[0] for m in proc.stdout.split("MODULES", 1)[1].split()}
    assert not modules & set(FRAMEWORKS), modules & set(FRAMEWORKS)
    assert _snapshot(tmp_path) == was
    if before is None:
        assert not out.exists() and not out.with_name("run.partial").exists()
