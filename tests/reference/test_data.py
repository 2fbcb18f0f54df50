"""Tests of reference/data.py: every loader reads small files written here in the dataset's
exact on-disk format, by writers that follow the format's published description (not the
reader's code), and must give back exactly the pixels and labels that were written."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reference import _download, _formats, data
from reference._download import Archive, ChecksumError
from reference._formats import UnsafePickleError

RNG = np.random.default_rng(20240601)


def _images(n, h, w, c):
    return RNG.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)


# ------------------------------------------------------------------ format writers (fixtures)


def write_idx(path: Path, array: np.ndarray, code: int = 0x08, compress: bool = True) -> Path:
    """IDX as LeCun describes it: 0, 0, type code, ndim; big-endian uint32 dims; big-endian data."""
    big = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}[code]
    raw = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    raw += np.ascontiguousarray(array, dtype=big).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


def py2_pickle(obj) -> bytes:
    """Pickle as Python 2's cPickle (protocol 2) wrote the CIFAR files: str as BINSTRING, numpy
    arrays through numpy.core.multiarray._reconstruct. Supports dict, bytes, int, list, None
    and 2-D uint8 arrays: what a CIFAR batch holds."""
    out = bytearray(b"\x80\x02")

    def put(o):
        if isinstance(o, dict):
            out.extend(b"}(")
            for k, v in o.items():
                put(k)
                put(v)
            out.extend(b"u")
        elif isinstance(o, list):
            out.extend(b"](")
            for v in o:
                put(v)
            out.extend(b"e")
        elif isinstance(o, bytes):
            if len(o) < 256:
                out.extend(b"U" + bytes([len(o)]) + o)
            else:
                out.extend(b"T" + struct.pack("<I", len(o)) + o)
        elif o is None:
            out.extend(b"N")
        elif isinstance(o, int):
            if 0 <= o < 256:
                out.extend(b"K" + bytes([o]))
            elif 0 <= o < 65536:
                out.extend(b"M" + struct.pack("<H", o))
            else:
                out.extend(b"J" + struct.pack("<i", o))
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8 and o.ndim == 2
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n")
            put(0)
            out.extend(b"\x85")  # TUPLE1: (0,)
            put(b"b")
            out.extend(b"\x87R")  # TUPLE3, REDUCE: _reconstruct(ndarray, (0,), 'b')
            out.extend(b"(")  # state: (1, shape, dtype, is_fortran, raw bytes)
            put(1)
            put(o.shape[0])
            put(o.shape[1])
            out.extend(b"\x86")  # TUPLE2: the shape
            out.extend(b"cnumpy\ndtype\n")
            put(b"u1")
            put(0)
            put(1)
            out.extend(b"\x87R(")  # dtype('u1', 0, 1), then its state:
            put(3)
            put(b"|")
            out.extend(b"NNN" + b"J" + struct.pack("<i", -1) + b"J" + struct.pack("<i", -1))
            put(0)
            out.extend(b"tb")  # TUPLE, BUILD (dtype state)
            out.extend(b"\x89")  # NEWFALSE: C order
            put(o.tobytes())
            out.extend(b"tb")  # TUPLE, BUILD (array state)
        else:
            raise TypeError(type(o))

    put(obj)
    out.extend(b".")
    return bytes(out)


def cifar_rows(images: np.ndarray) -> np.ndarray:
    """CIFAR's row layout: data[n, c*1024 + y*32 + x] = image[n, y, x, c] (R, G, B planes)."""
    n = images.shape[0]
    rows = np.empty((n, 3072), dtype=np.uint8)
    for c in range(3):
        for y in range(32):
            rows[:, c * 1024 + y * 32 : c * 1024 + y * 32 + 32] = images[:, y, :, c]
    return rows


def write_cifar10(folder: Path, sizes=(3, 2, 4, 1, 2), test_size=3):
    folder.mkdir(parents=True)
    parts = []
    for i, n in enumerate(sizes, 1):
        x, y = _images(n, 32, 32, 3), RNG.integers(0, 10, size=n)
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": [int(v) for v in y],
            b"data": cifar_rows(x),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
        (folder / f"data_batch_{i}").write_bytes(py2_pickle(batch))
        parts.append((x, y))
    xt, yt = _images(test_size, 32, 32, 3), RNG.integers(0, 10, size=test_size)
    test = {b"batch_label": b"testing batch 1 of 1", b"labels": [int(v) for v in yt],
            b"data": cifar_rows(xt), b"filenames": [b"t.png"] * test_size}  # fmt: skip
    (folder / "test_batch").write_bytes(py2_pickle(test))
    train = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]))
    return train, (xt, yt)


def write_cifar100(folder: Path, n_train=5, n_test=4):
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test)):
        x, fine = _images(n, 32, 32, 3), RNG.integers(0, 100, size=n)
        batch = {
            b"filenames": [b"f.png"] * n,
            b"batch_label": split.encode(),
            b"fine_labels": [int(v) for v in fine],
            b"coarse_labels": [int(v) // 5 for v in fine],
            b"data": cifar_rows(x),
        }
        (folder / split).write_bytes(py2_pickle(batch))
        out[split] = (x, fine)
    return out


def stl10_bytes(images: np.ndarray) -> bytes:
    """STL-10: each image is 3x96x96 stored column-major (MATLAB order), i.e. the (H, W, C)
    image flattened in Fortran order: offset = y + 96 * x + 96 * 96 * c."""
    return b"".join(img.ravel(order="F").tobytes() for img in images)


def write_stl10(folder: Path, n_train=3, n_test=2, n_unlabeled=2):
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        x = _images(n, 96, 96, 3)
        (folder / f"{split}_X.bin").write_bytes(stl10_bytes(x))
        y = RNG.integers(0, 10, size=n) if split != "unlabeled" else np.full(n, -1)
        if split != "unlabeled":
            (folder / f"{split}_y.bin").write_bytes((y + 1).astype(np.uint8).tobytes())
        out[split] = (x, y)
    return out


def _save_png(path: Path, array: np.ndarray):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array.squeeze(-1) if array.shape[-1] == 1 else array).save(path)


# ----------------------------------------------------------------------------- registry


def test_registry_names_and_specs():
    names = data.list_datasets()
    for required in ("fashion-mnist", "cifar10", "cifar100", "stl10", "tiny-imagenet",
                     "image-folder", "digits"):  # fmt: skip
        assert required in names
    assert data.get_spec("Fashion_MNIST").name == "fashion-mnist"
    assert data.get_spec("cifar-100").num_classes == 100
    assert data.get_spec("stl10").image_size == (96, 96)
    assert data.get_spec("fashion-mnist").channels == 1
    for spec in data.DATASETS.values():
        assert spec.eval_split in spec.splits
        if spec.class_names is not None:
            assert len(spec.class_names) == spec.num_classes


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="unknown dataset 'mnist-9'"):
        data.load_dataset("mnist-9")
    with pytest.raises(TypeError, match="name"):
        data.get_spec(3)
    with pytest.raises(ValueError, match="split 'validation'"):
        data.load_dataset("digits", split="validation")
    with pytest.raises(ValueError, match="image_size"):
        data.load_dataset("cifar10", image_size=(8, 8))
    with pytest.raises(ValueError, match="data_dir"):
        data.load_dataset("image-folder")


def test_importing_the_data_module_imports_no_framework():
    code = (
        "import sys, reference.data, reference._formats, reference._download\n"
        "bad = [m for m in ('keras', 'torch', 'jax', 'tensorflow') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", code], check=True, cwd=root)


# ---------------------------------------------------------------------- Fashion-MNIST / IDX


def _write_fmnist(folder: Path, n_train=7, n_test=5, compress=True):
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for prefix, split, n in (("train", "train", n_train), ("t10k", "test", n_test)):
        x, y = _images(n, 28, 28, 1), RNG.integers(0, 10, size=n)
        write_idx(folder / f"{prefix}-images-idx3-ubyte", x[..., 0], compress=compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8), compress=compress)
        out[split] = (x, y)
    return out


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_data_dir(tmp_path, compress, monkeypatch):
    monkeypatch.setattr(data, "_load_fashion_mnist_keras", _keras_must_not_be_called)
    written = _write_fmnist(tmp_path, compress=compress)
    for split in ("train", "test"):
        x, y = data.load_dataset("fashion-mnist", data_dir=tmp_path, split=split)
        assert x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x, written[split][0])
        np.testing.assert_array_equal(y, written[split][1])


def _keras_must_not_be_called(split):
    raise AssertionError("the Keras download fallback ran although local files were given")


def test_fashion_mnist_data_dir_is_authoritative(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "_load_fashion_mnist_keras", _keras_must_not_be_called)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        data.load_dataset("fashion-mnist", data_dir=tmp_path / "empty")


def test_fashion_mnist_source_order(tmp_path, monkeypatch):
    system = _write_fmnist(tmp_path / "system")
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "system")
    monkeypatch.setattr(data, "_load_fashion_mnist_keras", _keras_must_not_be_called)
    x, _ = data.load_dataset("fashion-mnist")  # train
    np.testing.assert_array_equal(x, system["train"][0])

    # No system package: the default data folder, then (download=True only) Keras.
    monkeypatch.setattr(data, "FASHION_MNIST_SYSTEM_DIR", tmp_path / "absent")
    cached = _write_fmnist(data.default_data_dir() / "fashion-mnist")
    test_images = data.load_dataset("fashion-mnist", split="test")[0]
    np.testing.assert_array_equal(test_images, cached["test"][0])

    monkeypatch.setenv("SPARSEHEAD_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(data.DatasetNotFoundError) as missing:  # no download asked for
        data.load_dataset("fashion-mnist")
    for remedy in ("dataset-fashion-mnist", "--data-dir", "--download", "fashion-mnist-10k"):
        assert remedy in str(missing.value)
    calls = []
    fake = (np.zeros((2, 28, 28, 1), np.uint8), np.array([3, 4], np.int64))
    monkeypatch.setattr(data, "_load_fashion_mnist_keras", lambda s: calls.append(s) or fake)
    x, y = data.load_dataset("fashion-mnist", split="test", download=True)
    assert calls == ["test"] and x.shape == (2, 28, 28, 1) and list(y) == [3, 4]

    def offline(split):
        raise OSError("no network")

    monkeypatch.setattr(data, "_load_fashion_mnist_keras", offline)
    with pytest.raises(FileNotFoundError, match="Keras' download failed"):
        data.load_dataset("fashion-mnist", download=True)


@pytest.mark.parametrize(
    ("code", "dtype"),
    [(0x08, np.uint8), (0x09, np.int8), (0x0B, np.int16), (0x0C, np.int32),
     (0x0D, np.float32), (0x0E, np.float64)],
)  # fmt: skip
def test_read_idx_every_type_code(tmp_path, code, dtype):
    values = RNG.integers(-100, 100, size=(2, 3, 4)).astype(dtype) if code != 0x08 else (
        RNG.integers(0, 256, size=(2, 3, 4)).astype(np.uint8)
    )  # fmt: skip
    path = write_idx(tmp_path / "a.idx", values, code=code, compress=False)
    out = _formats.read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, values)


def _idx_bytes(array):
    return bytes([0, 0, 8, array.ndim]) + b"".join(
        struct.pack(">I", d) for d in array.shape
    ) + array.tobytes()  # fmt: skip


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda b: b"\x01" + b[1:], "bad magic"),
        (lambda b: b[:2] + b"\x07" + b[3:], "unknown type code"),
        (lambda b: b[:3] + b"\x00" + b[4:], "0 dimensions"),
        (lambda b: b[:6], "truncated inside its header"),
        (lambda b: b[:-1], "truncated or corrupt"),
        (lambda b: b + b"\x00", "truncated or corrupt"),
        (lambda b: b[:3], "too short"),
    ],
)
def test_read_idx_rejects_corrupt_files(tmp_path, mutate, message):
    good = _idx_bytes(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))
    path = tmp_path / "bad-idx3-ubyte"
    path.write_bytes(mutate(good))
    with pytest.raises(ValueError, match=message):
        _formats.read_idx(path)


def test_read_idx_rejects_truncated_gzip(tmp_path):
    packed = gzip.compress(_idx_bytes(RNG.integers(0, 256, (50, 28, 28), dtype=np.uint8)))
    path = tmp_path / "cut-idx3-ubyte.gz"
    path.write_bytes(packed[: len(packed) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        _formats.read_idx(path)
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="corrupt or truncated"):
        _formats.read_idx(path)


def test_idx_labels_must_match_images(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", _images(3, 28, 28, 1)[..., 0])
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match="expected 3 labels"):
        data.load_dataset("fashion-mnist", data_dir=tmp_path)


def test_real_fashion_mnist_from_the_debian_package():
    folder = data.FASHION_MNIST_SYSTEM_DIR
    if not (folder / "train-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"Debian package dataset-fashion-mnist not installed ({folder} missing)")
    for split, n in (("train", 60000), ("test", 10000)):
        x, y = data.load_dataset("fashion-mnist", split=split)
        assert x.shape == (n, 28, 28, 1) and x.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int64
        # Fashion-MNIST is exactly balanced: 6000 / 1000 images of each of the 10 classes.
        np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, n // 10))
        assert 0 < x.mean() < 255 and x.max() == 255 and x.min() == 0


# ----------------------------------------------------------------------------------- CIFAR


def test_py2_fixture_writer_is_a_valid_pickle():
    # The writer above is checked against the standard (unrestricted) unpickler on data we
    # made ourselves, so that the restricted loader is tested on a genuine protocol-2 stream.
    arr = _images(2, 32, 32, 3).reshape(2, -1)
    batch = {b"data": arr, b"labels": [1, 300, 70000], b"name": b"x" * 300}
    loaded = pickle.loads(py2_pickle(batch), encoding="bytes")
    np.testing.assert_array_equal(loaded[b"data"], arr)
    assert loaded[b"labels"] == [1, 300, 70000] and loaded[b"name"] == b"x" * 300


def test_cifar10_roundtrip(tmp_path):
    train, test = write_cifar10(tmp_path / "cifar-10-batches-py")
    for split, (x_ref, y_ref) in (("train", train), ("test", test)):
        x, y = data.load_dataset("cifar10", data_dir=tmp_path, split=split)
        assert x.shape == (len(y_ref), 32, 32, 3) and x.dtype == np.uint8
        assert y.dtype == np.int64
        np.testing.assert_array_equal(x, x_ref)
        np.testing.assert_array_equal(y, y_ref)
    # data_dir may also be the batches folder itself
    x, _ = data.load_dataset("cifar10", data_dir=tmp_path / "cifar-10-batches-py", split="test")
    np.testing.assert_array_equal(x, test[0])


def test_cifar_pixel_order_is_rgb_planes_row_major(tmp_path):
    # One image whose red plane is 0..1023 mod 256 row-major, green = 1, blue = 2.
    row = np.concatenate([np.arange(1024) % 256, np.ones(1024), np.full(1024, 2)])
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    batch = {b"data": row.astype(np.uint8)[None], b"labels": [7]}
    for name in ["test_batch"] + [f"data_batch_{i}" for i in range(1, 6)]:
        (folder / name).write_bytes(py2_pickle(batch))
    x, y = data.load_dataset("cifar10", data_dir=tmp_path, split="test")
    assert x[0, 0, 5, 0] == 5 and x[0, 1, 0, 0] == 32 and x[0, 2, 3, 0] == 67
    assert (x[0, ..., 1] == 1).all() and (x[0, ..., 2] == 2).all() and y[0] == 7


def test_cifar100_fine_labels(tmp_path):
    written = write_cifar100(tmp_path / "cifar-100-python")
    for split in ("train", "test"):
        x, y = data.load_dataset("cifar100", data_dir=tmp_path, split=split)
        np.testing.assert_array_equal(x, written[split][0])
        np.testing.assert_array_equal(y, written[split][1])


def test_cifar_written_by_python3_numpy2_loads(tmp_path):
    # A re-saved file (str keys, numpy._core names, protocol 4) loads too.
    x = _images(3, 32, 32, 3)
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split in ("train", "test"):
        batch = {"data": cifar_rows(x), "fine_labels": [0, 50, 99]}
        (folder / split).write_bytes(pickle.dumps(batch, protocol=4))
    got, labels = data.load_dataset("cifar100", data_dir=tmp_path, split="test")
    np.testing.assert_array_equal(got, x)
    assert list(labels) == [0, 50, 99]


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_cifar_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    evil = {"data": cifar_rows(_images(1, 32, 32, 3)), "labels": [_Evil(marker)]}
    (folder / "test_batch").write_bytes(pickle.dumps(evil, protocol=4))
    with pytest.raises(UnsafePickleError, match=r"refusing to load global .*system"):
        data.load_dataset("cifar10", data_dir=tmp_path, split="test")
    assert not marker.exists()
    assert issubclass(UnsafePickleError, ValueError)


@pytest.mark.parametrize(
    "target",
    [b"builtins\neval", b"__builtin__\neval", b"subprocess\nPopen", b"numpy\nload",
     b"numpy.testing._private.utils\nrunstring", b"numpy.core.multiarray\nscalar",
     b"posix\nsystem", b"copyreg\n_reconstructor"],
)  # fmt: skip
def test_any_other_global_is_refused(tmp_path, target):
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c" + target + b"\nU\x02idq\x01\x85R.")
    with pytest.raises(UnsafePickleError, match="refusing"):
        _formats.load_cifar_pickle(path)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"\x80\x02}q\x00(U\x04data", "corrupt or truncated"),
        (py2_pickle([1, 2]), "not a dict"),
        (py2_pickle({b"labels": [1]}), "no 'data' entry"),
        (py2_pickle({b"data": np.zeros((1, 3000), np.uint8), b"labels": [1]}), "3072"),
        (py2_pickle({b"data": np.zeros((2, 3072), np.uint8), b"labels": [1]}), "2 integers"),
        (py2_pickle({b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]}), "outside 0..9"),
    ],
)
def test_corrupt_cifar_files(tmp_path, payload, message):
    path = tmp_path / "test_batch"
    path.write_bytes(payload)
    with pytest.raises(ValueError, match=message):
        _formats.read_cifar10(tmp_path, "test")


def test_missing_cifar_says_how_to_get_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_dataset("cifar10", data_dir=tmp_path)


# ---------------------------------------------------------------------------------- STL-10


def test_stl10_all_splits(tmp_path):
    written = write_stl10(tmp_path / "stl10_binary")
    for split in ("train", "test", "unlabeled"):
        x, y = data.load_dataset("stl10", data_dir=tmp_path, split=split)
        assert x.shape == written[split][0].shape and x.dtype == np.uint8 and y.dtype == np.int64
        np.testing.assert_array_equal(x, written[split][0])
        np.testing.assert_array_equal(y, written[split][1])
    x, y = data.load_dataset("stl10", data_dir=tmp_path, split="train+unlabeled")
    np.testing.assert_array_equal(x, np.concatenate([written["train"][0], written["unlabeled"][0]]))
    assert list(y[3:]) == [-1, -1] and (y[:3] >= 0).all()


def test_stl10_orientation(tmp_path):
    # Column-major: the first 96 bytes of the red plane are the image's first COLUMN (x = 0).
    img = np.zeros(3 * 96 * 96, np.uint8)
    img[:96] = 200
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    (folder / "test_X.bin").write_bytes(img.tobytes())
    (folder / "test_y.bin").write_bytes(bytes([10]))
    x, y = data.load_dataset("stl10", data_dir=tmp_path, split="test")
    assert (x[0, :, 0, 0] == 200).all() and x[0, :, 1:, :].sum() == 0 and y[0] == 9


def test_stl10_rejects_bad_files(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    (folder / "test_X.bin").write_bytes(b"\x00" * (3 * 96 * 96 + 5))
    with pytest.raises(ValueError, match="multiple of 27648"):
        data.load_dataset("stl10", data_dir=tmp_path, split="test")
    (folder / "test_X.bin").write_bytes(b"\x00" * (2 * 3 * 96 * 96))
    (folder / "test_y.bin").write_bytes(bytes([1, 11]))
    with pytest.raises(ValueError, match=r"outside 1\.\.10"):
        data.load_dataset("stl10", data_dir=tmp_path, split="test")
    (folder / "test_y.bin").write_bytes(bytes([1]))
    with pytest.raises(ValueError, match="expected 2"):
        data.load_dataset("stl10", data_dir=tmp_path, split="test")


# ---------------------------------------------------------------------------- image folders


def test_image_folder_png_roundtrip(tmp_path):
    classes = ["zebra", "apple", "mango"]  # labels follow the sorted names
    written = {}
    for split, per_class in (("train", 2), ("val", 1)):
        for name in classes:
            for j in range(per_class):
                img = _images(1, 5, 7, 3)[0]
                _save_png(tmp_path / split / name / f"{j:03d}.png", img)
                written[(split, name, j)] = img
    (tmp_path / "train" / "apple" / "notes.txt").write_text("not an image")
    x, y = data.load_dataset("image-folder", data_dir=tmp_path, split="train")
    assert x.shape == (6, 5, 7, 3) and x.dtype == np.uint8
    order = [(n, j) for n in sorted(classes) for j in range(2)]
    np.testing.assert_array_equal(x, np.stack([written[("train", n, j)] for n, j in order]))
    np.testing.assert_array_equal(y, [sorted(classes).index(n) for n, _ in order])
    x, y = data.load_dataset("image-folder", data_dir=tmp_path, split="val")
    assert list(y) == [0, 1, 2] and x.shape == (3, 5, 7, 3)
    x2, _ = data.load_dataset("image-folder", data_dir=tmp_path, split="test")  # no test/: val
    np.testing.assert_array_equal(x2, x)


def test_image_folder_sizes_and_channels(tmp_path):
    _save_png(tmp_path / "train" / "a" / "0.png", _images(1, 4, 4, 3)[0])
    _save_png(tmp_path / "train" / "b" / "0.png", _images(1, 6, 5, 1)[0])
    with pytest.raises(ValueError, match="image_size"):
        data.load_dataset("image-folder", data_dir=tmp_path)
    x, y = data.load_dataset("image-folder", data_dir=tmp_path, image_size=(8, 9))
    assert x.shape == (2, 8, 9, 3) and list(y) == [0, 1]
    gray = _images(1, 6, 5, 1)[0]
    _save_png(tmp_path / "g" / "train" / "only" / "0.png", gray)
    x, _ = _formats.read_image_folder(tmp_path / "g", "train", channels=1)
    np.testing.assert_array_equal(x[0], gray)
    (tmp_path / "train" / "a" / "broken.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="cannot decode"):
        data.load_dataset("image-folder", data_dir=tmp_path, image_size=(8, 8))


def write_tiny_imagenet(root: Path):
    """Tiny ImageNet's layout: wnids.txt, train/<wnid>/images/*.JPEG (+ boxes), val/images
    labelled by val/val_annotations.txt (file, wnid, box)."""
    from PIL import Image

    wnids = ["n02", "n01"]
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    truth = {}
    for w in wnids:
        for j in range(2):
            img = np.full((64, 64, 3), 40 + 100 * int(w[-1]) + j, np.uint8)
            img[:32, :, 0] = 0  # top half without red: checks orientation
            (root / "train" / w / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(img).save(root / "train" / w / "images" / f"{w}_{j}.JPEG", quality=95)
            truth[(w, j)] = img
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for k, w in enumerate(["n01", "n02", "n01"]):
        Image.fromarray(np.full((64, 64, 3), 9, np.uint8)).save(root / "val/images" / f"v{k}.JPEG")
        lines.append(f"v{k}.JPEG\t{w}\t0\t0\t63\t63")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return truth


def test_tiny_imagenet_layout(tmp_path):
    truth = write_tiny_imagenet(tmp_path / "tiny-imagenet-200")
    x, y = data.load_dataset("tiny-imagenet", data_dir=tmp_path, split="train")
    assert x.shape == (4, 64, 64, 3) and list(y) == [0, 0, 1, 1]  # n01 -> 0, n02 -> 1
    ref = np.stack([truth[("n01", 0)], truth[("n01", 1)], truth[("n02", 0)], truth[("n02", 1)]])
    assert np.abs(x.astype(int) - ref).mean() < 3  # JPEG is lossy; layout and orientation hold
    x, y = data.load_dataset("tiny-imagenet", data_dir=tmp_path, split="test")  # == val
    assert x.shape == (3, 64, 64, 3) and list(y) == [0, 1, 0]


# ---------------------------------------------------------------------------------- digits


def test_digits():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x_tr, y_tr = data.load_dataset("digits", split="train")
    x_te, y_te = data.load_dataset("digits", split="test")
    assert x_tr.shape[1:] == (8, 8, 1) and x_tr.dtype == np.uint8 and y_tr.dtype == np.int64
    assert len(y_tr) + len(y_te) == len(bunch.target) and len(y_te) == len(bunch.target) // 5
    raw = np.concatenate([bunch.images[np.arange(1797) % 5 != 4], bunch.images[4::5]])
    got = np.concatenate([x_tr, x_te])[..., 0].astype(float)
    # 0..16 mapped to 0..255: within half a step of the exact scaling, ends exact
    assert np.abs(got * 16 / 255 - raw).max() <= 0.5 * 16 / 255 + 1e-12
    assert ((got == 0) == (raw == 0)).all() and (got[raw == 16] == 255).all()
    np.testing.assert_array_equal(y_te, bunch.target[4::5])


# ------------------------------------------------------------------------------- download


class _Quiet(http.server.SimpleHTTPRequestHandler):
    requests: ClassVar[list[str]] = []

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).requests.append(self.path)
        super().do_GET()


@pytest.fixture
def http_root(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (folder, base URL)."""
    www = tmp_path / "www"
    www.mkdir()
    _Quiet.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=www))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield www, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _tarball(path: Path, source: Path, arcname: str) -> bytes:
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source, arcname=arcname)
    return path.read_bytes()


def test_download_cifar10_from_local_server(tmp_path, http_root, monkeypatch):
    www, base = http_root
    train, test = write_cifar10(tmp_path / "src" / "cifar-10-batches-py")
    blob = _tarball(www / "c10.tar.gz", tmp_path / "src" / "cifar-10-batches-py",
                    "cifar-10-batches-py")  # fmt: skip
    archive = Archive(url=f"{base}/c10.tar.gz", filename="cifar-10-python.tar.gz",
                      folder="cifar-10-batches-py", md5=hashlib.md5(blob).hexdigest(),
                      sha256=hashlib.sha256(blob).hexdigest())  # fmt: skip
    spec = replace(data.DATASETS["cifar10"], archive=archive)
    monkeypatch.setitem(data.DATASETS, "cifar10", spec)
    dest = tmp_path / "dest"
    x, y = data.load_dataset("cifar10", data_dir=dest, split="train", download=True)
    np.testing.assert_array_equal(x, train[0])
    np.testing.assert_array_equal(y, train[1])
    assert (dest / "cifar-10-python.tar.gz").read_bytes() == blob
    assert sorted(p.name for p in dest.iterdir()) == ["cifar-10-batches-py",
                                                      "cifar-10-python.tar.gz"]  # fmt: skip
    x, _ = data.load_dataset("cifar10", data_dir=dest, split="test", download=True)
    np.testing.assert_array_equal(x, test[0])
    assert _Quiet.requests == ["/c10.tar.gz"]  # fetched once


@pytest.mark.parametrize("which", ["md5", "sha256"])
def test_wrong_checksum_is_rejected(tmp_path, http_root, which):
    www, base = http_root
    (www / "a.tar.gz").write_bytes(b"these are not the bytes you expect")
    archive = Archive(url=f"{base}/a.tar.gz", filename="a.tar.gz", folder="a",
                      **{which: "0" * (32 if which == "md5" else 64)})  # fmt: skip
    dest = tmp_path / "dest"
    with pytest.raises(ChecksumError, match=f"{which} is"):
        _download.fetch_and_extract(archive, dest, quiet=True)
    assert list(dest.iterdir()) == []  # no archive, no partial file, no folder
    assert issubclass(ChecksumError, ValueError)


def test_download_tiny_imagenet_zip_from_local_server(tmp_path, http_root, monkeypatch):
    www, base = http_root
    write_tiny_imagenet(tmp_path / "src" / "tiny-imagenet-200")
    with zipfile.ZipFile(www / "t.zip", "w") as zf:
        for p in sorted((tmp_path / "src").rglob("*")):
            zf.write(p, p.relative_to(tmp_path / "src").as_posix())
    blob = (www / "t.zip").read_bytes()
    archive = Archive(url=f"{base}/t.zip", filename="tiny-imagenet-200.zip",
                      folder="tiny-imagenet-200", md5=hashlib.md5(blob).hexdigest())  # fmt: skip
    spec = replace(data.DATASETS["tiny-imagenet"], archive=archive)
    monkeypatch.setitem(data.DATASETS, "tiny-imagenet", spec)
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_dataset("tiny-imagenet", data_dir=tmp_path / "dest")
    x, y = data.load_dataset("tiny-imagenet", data_dir=tmp_path / "dest", download=True)
    assert x.shape == (4, 64, 64, 3) and list(y) == [0, 0, 1, 1]


@pytest.mark.parametrize("name", ["../escaped.txt", "/abs.txt", "a/../../escaped.txt",
                                  "C:/x.txt", "link"])  # fmt: skip
def test_safe_extract_zip_refuses_escapes(tmp_path, name):
    path = tmp_path / "evil.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("pkg/ok.txt", "ok")
        info = zipfile.ZipInfo(name)
        if name == "link":
            info.external_attr = 0o120777 << 16  # a symlink to ../escaped.txt
        zf.writestr(info, "../escaped.txt")
    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    with pytest.raises(ValueError, match="refusing member"):
        _download.safe_extract_zip(path, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "a" / "escaped.txt").exists()


def test_failed_request_leaves_nothing(tmp_path, http_root):
    _, base = http_root
    archive = Archive(url=f"{base}/missing.tar.gz", filename="m.tar.gz", folder="m", md5="0" * 32)
    with pytest.raises(ConnectionError, match=r"could not download .*missing\.tar\.gz"):
        _download.fetch_and_extract(archive, tmp_path / "dest", quiet=True)
    assert list((tmp_path / "dest").iterdir()) == []


def test_download_needs_a_checksum():
    with pytest.raises(ValueError, match="md5 or sha256"):
        Archive(url="http://127.0.0.1/x", filename="x", folder="x")


def _evil_tar(path: Path, member: tarfile.TarInfo, payload: bytes = b"x") -> None:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("pkg/ok.txt")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"ok"))
        member.size = len(payload) if member.isfile() else 0
        tar.addfile(member, io.BytesIO(payload) if member.isfile() else None)


def _member(name, kind=tarfile.REGTYPE, link=""):
    m = tarfile.TarInfo(name)
    m.type = kind
    m.linkname = link
    return m


@pytest.mark.parametrize(
    "member",
    [_member("pkg/../../escaped.txt"), _member("/tmp/absolute-escape.txt"),
     _member("pkg/link", tarfile.SYMTYPE, "../../escaped.txt"),
     _member("pkg/hard", tarfile.LNKTYPE, "/etc/passwd"),
     _member("pkg/dev", tarfile.CHRTYPE)],
    ids=["dotdot", "absolute", "symlink", "hardlink", "device"],
)  # fmt: skip
def test_safe_extract_refuses_escapes(tmp_path, member):
    tar = tmp_path / "evil.tar.gz"
    _evil_tar(tar, member)
    dest = tmp_path / "a" / "b"
    dest.mkdir(parents=True)
    with pytest.raises(ValueError, match="refusing member"):
        _download.safe_extract(tar, dest)
    assert list(dest.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_archive_without_its_folder_is_rejected(tmp_path):
    tar = tmp_path / "t.tar.gz"
    _evil_tar(tar, _member("pkg/more.txt"))
    archive = Archive(url="http://127.0.0.1/x", filename="t.tar.gz", folder="other",
                      md5=hashlib.md5(tar.read_bytes()).hexdigest())  # fmt: skip
    with pytest.raises(ValueError, match="does not contain the folder 'other'"):
        _download.fetch_and_extract(archive, tmp_path)  # reuses the verified local file
    assert not (tmp_path / "other").exists()


# --------------------------------------------------------------------------------- subset


def test_subset_keeps_rows_with_their_labels():
    labels = np.repeat(np.arange(4), [10, 3, 7, 5])
    images = np.arange(labels.size)[:, None, None, None].astype(np.uint8)
    x, y = data.subset(images, labels, 10, seed=3)
    np.testing.assert_array_equal(y, labels[x[:, 0, 0, 0]])
    # 4 classes, n = 10: two classes get 2, two get 3 (all have at least 3)
    assert sorted(np.bincount(y)) == [2, 2, 3, 3]
    x2, _ = data.subset(images, labels, 10, seed=3)
    np.testing.assert_array_equal(x, x2)


def test_subset_seeds_differ_and_repeat():
    labels = np.repeat(np.arange(10), 100)
    a = data.subset_indices(labels, 50, seed=0)
    assert np.array_equal(a, data.subset_indices(labels, 50, seed=0))
    assert not np.array_equal(a, data.subset_indices(labels, 50, seed=1))
    assert np.bincount(labels[a]).tolist() == [5] * 10


def test_subset_bad_arguments():
    labels = np.zeros(5, np.int64)
    with pytest.raises(ValueError, match=r"n must be in 0\.\.5"):
        data.subset_indices(labels, 6)
    with pytest.raises(ValueError, match="n must be"):
        data.subset_indices(labels, -1)
    with pytest.raises(TypeError, match="n must be an int"):
        data.subset_indices(labels, 2.0)
    with pytest.raises(ValueError, match="labels must be 1-D"):
        data.subset_indices(labels.reshape(5, 1), 2)
    with pytest.raises(ValueError, match="differ"):
        data.subset(np.zeros((4, 2, 2, 1)), labels, 2)


@given(
    counts=st.lists(st.integers(0, 12), min_size=1, max_size=6),
    frac=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_subset_is_as_balanced_as_the_classes_allow(counts, frac, seed):
    labels = np.repeat(np.arange(len(counts)) * 3 - 1, counts)  # label values incl. -1
    np.random.default_rng(seed).shuffle(labels)
    n = round(frac * labels.size)
    idx = data.subset_indices(labels, n, seed=seed)
    assert idx.dtype == np.int64 and idx.size == n
    assert np.all(np.diff(idx) > 0)  # sorted, no repeats
    np.testing.assert_array_equal(idx, data.subset_indices(labels, n, seed=seed))
    values = np.unique(labels)
    got = np.array([(labels[idx] == v).sum() for v in values])
    have = np.array([(labels == v).sum() for v in values])
    assert (got <= have).all()
    partial_ = got < have  # classes not used up
    if partial_.any():
        # no class holds 2 or more than a class that still had examples to give
        assert got.max() - got[partial_].min() <= 1
    else:
        assert n == labels.size
