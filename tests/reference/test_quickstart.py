"""The first hour of a user: the shipped Fashion-MNIST subset, the README's quick start on a
machine with no dataset installed and no network, quiet and fast scripts (`--help` imports no
framework, plain per-epoch lines in a log file, no TensorFlow banners), short messages for a
missing dataset, no backup state left after a finished run."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from reference import data
from reference.presets import DEFAULTS

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "reference" / "datasets" / "fashion-mnist-10k"
FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")  # fmt: skip
FRAMEWORKS = ("keras", "tensorflow", "jax", "jaxlib", "torch", "optax", "flax")


# -- the shipped subset ------------------------------------------------------------------
def _idx_payload(path: Path) -> tuple[tuple[int, ...], bytes]:
    """IDX as LeCun describes it: 0, 0, type, ndim; big-endian uint32 dims; then the data."""
    raw = gzip.decompress(path.read_bytes())
    assert raw[:3] == b"\x00\x00\x08"
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return dims, raw[4 + 4 * ndim :]


def test_shipped_files_are_the_official_prefix_and_test_file():
    official = data.FASHION_MNIST_SYSTEM_DIR
    if not (official / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian package dataset-fashion-mnist not installed ({official} missing)")
    for name in FILES:
        dims, payload = _idx_payload(SHIPPED / name)
        full_dims, full = _idx_payload(official / name)
        n = 10_000
        assert dims == (n, *full_dims[1:])
        per_item = len(full) // full_dims[0]
        if name.startswith("t10k"):
            assert full_dims[0] == n and payload == full  # the whole official test file
        else:
            assert payload == full[: n * per_item]  # the first 10000 training items


def test_shipped_files_match_their_checksums_licence_and_loader():
    listed = dict(reversed(line.split()) for line in (SHIPPED / "SHA256SUMS").read_text()
                  .splitlines())  # fmt: skip
    assert sorted(listed) == sorted(FILES)
    for name in FILES:
        assert hashlib.sha256((SHIPPED / name).read_bytes()).hexdigest() == listed[name]
    licence = (SHIPPED / "LICENSE").read_text()
    assert "Zalando SE" in licence and "MIT" in licence
    assert "github.com/zalandoresearch/fashion-mnist" in (SHIPPED / "README.md").read_text()
    for split, prefix in (("train", "train"), ("test", "t10k")):
        x, y = data.load_dataset("fashion-mnist-10k", split=split)
        dims, pixels = _idx_payload(SHIPPED / f"{prefix}-images-idx3-ubyte.gz")
        _, labels = _idx_payload(SHIPPED / f"{prefix}-labels-idx1-ubyte.gz")
        assert x.shape == (10_000, 28, 28, 1) and dims == (10_000, 28, 28)
        assert x.tobytes() == pixels
        np.testing.assert_array_equal(y, np.frombuffer(labels, np.uint8))
    # The default of the loader and of the scripts is the shipped subset.
    assert data.load_dataset()[0].shape == (10_000, 28, 28, 1)


def test_a_corrupt_or_missing_shipped_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "datasets"
    shutil.copytree(SHIPPED, copy / "fashion-mnist-10k")
    monkeypatch.setattr(data, "SHIPPED_DIR", copy)
    labels = copy / "fashion-mnist-10k" / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[100] = (raw[100] + 1) % 10  # one label changed, the file still a valid IDX file
    labels.write_bytes(gzip.compress(bytes(raw), mtime=0))
    data.load_dataset("fashion-mnist-10k", split="train")  # the train files are intact
    with pytest.raises(data.ChecksumError, match=r"t10k-labels-idx1-ubyte\.gz") as changed:
        data.load_dataset("fashion-mnist-10k", split="test")
    # Shipped, not downloaded: the remedy is the repository's copy of that file.
    assert "the download is corrupt" not in str(changed.value)
    assert str(changed.value).endswith(f"(git checkout -- {labels})")
    shipped = SHIPPED / "SHA256SUMS"
    assert data._repo(shipped) == "reference/datasets/fashion-mnist-10k/SHA256SUMS"
    labels.unlink()
    with pytest.raises(data.DatasetNotFoundError, match="git checkout"):
        data.load_dataset("fashion-mnist-10k", split="test")
    with pytest.raises(ValueError, match="takes no data_dir"):
        data.load_dataset("fashion-mnist-10k", data_dir=tmp_path)


# -- scripts in subprocesses --------------------------------------------------------------
# Runs a script as `python reference/<script> ...` would, after installing an audit hook that
# refuses to open any file of an installed dataset (the Debian package, Keras' cache) and any
# network connection: what a fresh machine without the dataset and without network allows.
_SANDBOX = textwrap.dedent(
    """
    import os, runpy, sys
    BLOCKED = ("/usr/share/datasets", os.path.expanduser("~/.keras/datasets"))

    def hook(event, args):
        if event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.path.abspath(os.fsdecode(args[0]))
            if path.startswith(BLOCKED):
                raise PermissionError(f"sandbox: no dataset installed ({path})")
        if event == "socket.connect":
            raise OSError("sandbox: no network")

    sys.addaudithook(hook)
    if os.environ.get("SANDBOX_HIDE_DEBIAN"):
        sys.path.insert(0, os.getcwd())
        import pathlib, reference.data
        reference.data.FASHION_MNIST_SYSTEM_DIR = pathlib.Path("/nonexistent/fashion-mnist")
    script, sys.argv = sys.argv[1], sys.argv[1:]
    try:
        runpy.run_path(script, run_name="__main__")
    finally:
        if os.environ.get("SANDBOX_REPORT_MODULES"):
            print("MODULES", " ".join(sorted(sys.modules)))
    """
)


def _script(tmp_path: Path, script: str, *args: str, **env: str) -> subprocess.CompletedProcess:
    """Run `reference/<script>` in the sandbox, HOME and caches in an empty folder, stdout
    to a file (as `> log.txt` would: not a terminal)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SPARSEHEAD_", "TF_"))}
    environ.update(HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"), MPLBACKEND="Agg",
                   KERAS_HOME=str(home / ".keras"), **env)  # fmt: skip
    log = tmp_path / "stdout.txt"
    with open(log, "w") as out:
        proc = subprocess.run(
            [sys.executable, "-c", _SANDBOX, str(ROOT / "reference" / script), *args],
            cwd=ROOT, env=environ, stdout=out, stderr=subprocess.PIPE, text=True, timeout=600,
        )  # fmt: skip
    proc.stdout = log.read_bytes().decode()  # keep any `\r` as written
    return proc


@pytest.mark.parametrize(
    "script", ["train_simclr.py", "train_byol.py", "train_barlow_twins.py", "reproduce.py"]
)
def test_help_imports_no_framework_and_shows_defaults(tmp_path, script):
    proc = _script(tmp_path, script, "--help", SANDBOX_REPORT_MODULES="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    modules = {m.split(".")[0] for m in proc.stdout.split("MODULES", 1)[1].split()}
    assert not modules & set(FRAMEWORKS), modules & set(FRAMEWORKS)
    text = proc.stdout.split("MODULES", 1)[0]
    if script == "reproduce.py":
        return
    flat = " ".join(text.split())
    assert f"training epochs (default: {DEFAULTS['epochs']})" in flat
    assert "(default: fashion-mnist-10k)" in flat
    for name in data.list_datasets():
        assert name in flat
    method_flags = {"train_simclr.py": "--temperature", "train_byol.py": "--tau",
                    "train_barlow_twins.py": "--lambda-offdiag"}  # fmt: skip
    for owner, flag in method_flags.items():
        assert (flag in flat) == (owner == script), (script, flag)


def test_quick_start_runs_with_no_dataset_installed_and_no_network(tmp_path):
    """The README's command with a smaller schedule: the shipped subset, read through the
    sandbox; its log file has plain per-epoch lines, no TensorFlow banner, no backup left."""
    out = tmp_path / "run"
    proc = _script(tmp_path, "train_simclr.py", "--epochs", "2", "--train-size", "512",
                   "--test-size", "500", "--batch-size", "128", "--head-hidden", "32",
                   "--head-dim", "8", "--out", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "\r" not in proc.stdout and "\x1b" not in proc.stdout
    lines = proc.stdout.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("epoch ")] == [
        "epoch 1/2", "epoch 2/2"]  # fmt: skip
    assert "oneDNN" not in proc.stderr and "absl" not in proc.stderr, proc.stderr
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["dataset"] == "fashion-mnist-10k"
    assert (res["config"]["train_size"], res["config"]["test_size"]) == (512, 500)
    assert (out / "checkpoints" / "final.weights.h5").exists()
    assert not (out / "checkpoints" / "backup").exists()


@pytest.mark.skipif(
    os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow",
    reason="the message comes before training: checked once, in the TensorFlow pass",
)
@pytest.mark.parametrize(
    ("args", "env", "remedies"),
    [
        (["--dataset", "fashion-mnist"], {"SANDBOX_HIDE_DEBIAN": "1"},
         ("dataset-fashion-mnist", "--data-dir", "--download", "fashion-mnist-10k")),
        (["--dataset", "cifar10"], {}, ("--data-dir", "--download")),
    ],
)  # fmt: skip
def test_a_missing_dataset_is_a_short_message(tmp_path, args, env, remedies):
    proc = _script(tmp_path, "train_byol.py", *args, "--out", str(tmp_path / "run"), **env)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: --dataset ")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
    for remedy in remedies:
        assert remedy in proc.stderr


# -- a finished run in process ---------------------------------------------------------------
def test_finished_proximal_run_titles_its_plot_and_keeps_no_backup(tmp_path, monkeypatch):
    pytest.importorskip("keras")
    from reference import training
    from reference.cli import config_from_args

    titles = []
    real = training.plot_spectra

    def plot_spectra(path, curves, title=""):
        titles.append(title)
        real(path, curves, title)

    monkeypatch.setattr(training, "plot_spectra", plot_spectra)
    argv = ["--dataset", "digits", "--train-size", "256", "--test-size", "100", "--batch-size",
            "64", "--epochs", "1", "--head-hidden", "32", "--head-dim", "8", "--proximal",
            "--l21", "0.01", "--out", str(tmp_path), "--quiet"]  # fmt: skip
    training.run(config_from_args("simclr", argv), verbose=0)
    assert titles == ["simclr, SparseHead proximal step l21=0.01"]
    assert not (tmp_path / "checkpoints" / "backup").exists()
    # Nothing to resume: said, rather than a silent restart from epoch 0.
    with pytest.raises(ValueError, match="has finished; nothing to resume"):
        training.run(config_from_args("simclr", ["--out", str(tmp_path), "--resume", "--epochs",
                                                 "2", "--quiet"]))  # fmt: skip
    assert training.spectra_title({"method": "byol", "l21": 1e-4, "proximal": False}) == (
        "byol, SparseHead penalty l21=0.0001"
    )
    assert "no SparseHead" in training.spectra_title({"method": "byol", "l21": 0.0,
                                                      "proximal": False})  # fmt: skip


def test_import_quietly_drops_only_the_banners(capfd, monkeypatch):
    from reference._quiet import import_quietly

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    lines = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n",
        "I0000 00:00:1796189637.533223   10793 port.cc:153] oneDNN custom operations are on.\n",
        "W0000 00:00:1796189637.533223   10793 cpu_feature_guard.cc:227] AVX2 available\n",
        "E0000 00:00:1796189637.533223   10793 cuda_dnn.cc:8310] Unable to register cuDNN\n",
        "UserWarning: something a user must see\n",
    ]
    with import_quietly():
        os.write(2, "".join(lines).encode())  # as the C++ side writes: file descriptor 2
        print("from Python", file=sys.stderr)
    kept = capfd.readouterr().err.splitlines(keepends=True)
    assert sorted(kept) == sorted([lines[3], lines[4], "from Python\n"])
