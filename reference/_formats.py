"""Readers for the on-disk formats of the datasets, NumPy only (Pillow for image folders).

Every reader returns ``images`` as ``uint8`` of shape ``(N, H, W, C)`` (NHWC) and ``labels`` as
``int64`` of shape ``(N,)``, and raises ``ValueError`` naming the file when a file is corrupt,
truncated or does not hold what its format promises.

- IDX (Fashion-MNIST, MNIST): ``read_idx``.
- CIFAR-10 / CIFAR-100 "python version" pickles, read with a restricted unpickler:
  ``read_cifar10``, ``read_cifar100``, ``load_cifar_pickle``.
- STL-10 binary layout: ``read_stl10``.
- Image folders (``root/split/class/*.png``, Tiny ImageNet's layout): ``read_image_folder``.
"""

from __future__ import annotations

import gzip
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# --------------------------------------------------------------------------------------- IDX

#: IDX type codes (third byte of the magic number) -> big-endian NumPy dtype.
IDX_DTYPES: dict[int, str] = {
    0x08: ">u1",
    0x09: ">i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzip-compressed, by the ``.gz`` suffix) into an array.

    Layout (LeCun's MNIST format): magic ``00 00 TT DD`` (``TT`` the type code of
    ``IDX_DTYPES``, ``DD`` the number of dimensions), then ``DD`` big-endian ``uint32`` sizes,
    then the data, big-endian, C order. The header and the exact data size are checked.

    Returns an array of shape ``(d_1, ..., d_DD)`` in native byte order.
    Raises ``ValueError`` on a bad magic number, an unknown type code, or a size mismatch
    (truncated or trailing data), and on a corrupt or truncated gzip stream.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile is an OSError
        if isinstance(exc, FileNotFoundError):
            raise
        raise ValueError(f"IDX file {path} is corrupt or truncated: {exc}") from exc
    if len(raw) < 4:
        raise ValueError(f"IDX file {path} is too short for a header ({len(raw)} bytes)")
    if raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"IDX file {path} has a bad magic number {raw[:4].hex()}")
    code, ndim = raw[2], raw[3]
    if code not in IDX_DTYPES:
        raise ValueError(f"IDX file {path} has an unknown type code 0x{code:02x}")
    if ndim == 0:
        raise ValueError(f"IDX file {path} declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"IDX file {path} is truncated inside its header")
    shape = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    got = len(raw) - header
    if got != expected:
        raise ValueError(
            f"IDX file {path} holds {got} data bytes but its header {shape} "
            f"of {dtype.name} needs {expected} (truncated or corrupt)"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an IDX image file ``(N, H, W)`` and its label file ``(N,)`` as NHWC + int64."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise ValueError(
            f"{images_path}: expected uint8 images of shape (N, H, W), got "
            f"{images.dtype.name} {images.shape}"
        )
    if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{labels_path}: expected {images.shape[0]} labels, got shape {labels.shape}"
        )
    return images[..., None], labels.astype(np.int64)


# ------------------------------------------------------------------------ CIFAR (pickles)


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """A pickle asked for a global that a CIFAR file never contains."""


def _numpy_globals() -> dict[tuple[str, str], object]:
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return {
        # What the official files (Python 2 cPickle, protocol 2) contain:
        ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        # The same function under numpy 2's name, as written when such a file is re-saved:
        ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    }


class _CifarUnpickler(pickle.Unpickler):
    """Unpickler that admits only the globals of the CIFAR pickles and refuses the rest."""

    _allowed = _numpy_globals()

    def find_class(self, module: str, name: str) -> object:
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name} from an untrusted pickle: a CIFAR "
                "file only holds dicts, lists, strings, ints and numpy uint8 arrays"
            ) from None


def load_cifar_pickle(path: str | os.PathLike) -> dict[str, object]:
    """Load one CIFAR pickle (a dict) with the restricted unpickler; keys decoded to ``str``.

    Only ``numpy.ndarray``, ``numpy.dtype`` and numpy's ``_reconstruct`` (under its numpy 1 and
    numpy 2 module names) may be referenced; anything else (``os.system``, ``builtins.eval``,
    ...) raises ``UnsafePickleError`` (a ``ValueError``) before it is called.
    """
    path = Path(path)
    with open(path, "rb") as f:
        try:
            obj = _CifarUnpickler(f, encoding="bytes").load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from None
        except (pickle.UnpicklingError, EOFError, TypeError, ValueError, IndexError) as exc:
            raise ValueError(f"CIFAR pickle {path} is corrupt or truncated: {exc}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"CIFAR pickle {path} holds a {type(obj).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else str(k): v for k, v in obj.items()}


def _cifar_arrays(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    batch = load_cifar_pickle(path)
    for key in ("data", label_key):
        if key not in batch:
            raise ValueError(f"CIFAR pickle {path} has no {key!r} entry (keys: {sorted(batch)})")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise ValueError(f"CIFAR pickle {path}: 'data' must be a 2-D uint8 array")
    if data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"CIFAR pickle {path}: rows of 'data' have {data.shape[1]} != 3072 bytes")
    labels = np.asarray(batch[label_key])
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            f"CIFAR pickle {path}: {label_key!r} must be {data.shape[0]} integers, got "
            f"{labels.dtype.name} {labels.shape}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"CIFAR pickle {path}: {label_key!r} outside 0..{num_classes - 1}")
    # Each row is the red 32x32 plane, then green, then blue, each row-major.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def _concat(parts: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def read_cifar10(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``cifar-10-batches-py``: ``data_batch_1..5`` (train) or ``test_batch`` (test)."""
    folder = Path(folder)
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    return _concat([_cifar_arrays(folder / n, "labels", 10) for n in names])


def read_cifar100(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``cifar-100-python``: ``train`` or ``test``, with the 100 ``fine_labels``."""
    return _cifar_arrays(Path(folder) / split, "fine_labels", 100)


# --------------------------------------------------------------------------------- STL-10

STL10_SHAPE = (3, 96, 96)


def read_stl10_images(path: str | os.PathLike) -> np.ndarray:
    """Read an STL-10 ``*_X.bin`` file as ``(N, 96, 96, 3)`` uint8 (a read-only memory map view).

    Each image is 3 x 96 x 96 bytes in column-major order: channel planes, each plane stored
    column by column, so a C-order reshape to ``(N, 3, 96, 96)`` gives ``[n, c, x, y]`` and the
    transpose ``(0, 3, 2, 1)`` gives ``[n, y, x, c]``.
    """
    path = Path(path)
    per_image = int(np.prod(STL10_SHAPE))
    size = path.stat().st_size
    if size == 0 or size % per_image:
        raise ValueError(
            f"STL-10 file {path} has {size} bytes, not a positive multiple of {per_image} "
            "(3x96x96): truncated or not an STL-10 image file"
        )
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(size // per_image, *STL10_SHAPE))
    return raw.transpose(0, 3, 2, 1)


def read_stl10_labels(path: str | os.PathLike, count: int) -> np.ndarray:
    """Read an STL-10 ``*_y.bin`` file (uint8 labels 1..10) as int64 labels 0..9."""
    path = Path(path)
    labels = np.fromfile(path, dtype=np.uint8)
    if labels.shape != (count,):
        raise ValueError(f"STL-10 label file {path} holds {labels.size} labels, expected {count}")
    if labels.size and (labels.min() < 1 or labels.max() > 10):
        raise ValueError(f"STL-10 label file {path} has labels outside 1..10")
    return labels.astype(np.int64) - 1


def read_stl10(folder: str | os.PathLike, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read ``stl10_binary``: split ``train``, ``test``, ``unlabeled`` or ``train+unlabeled``.

    Unlabeled images get the label ``-1``. ``train`` and ``test`` are copied into memory; the
    ``unlabeled`` split (100000 images, 2.8 GB) stays a read-only memory map.
    """
    folder = Path(folder)
    if split == "train+unlabeled":
        return _concat([read_stl10(folder, "train"), read_stl10(folder, "unlabeled")])
    images = read_stl10_images(folder / f"{split}_X.bin")
    if split == "unlabeled":
        return images, np.full(images.shape[0], -1, dtype=np.int64)
    labels = read_stl10_labels(folder / f"{split}_y.bin", images.shape[0])
    return np.ascontiguousarray(images), labels


# --------------------------------------------------------------------------- image folders

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp"})


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _decode(path: Path, mode: str, size: tuple[int, int] | None) -> np.ndarray:
    from PIL import Image  # Pillow ships with matplotlib

    try:
        with Image.open(path) as img:
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.Resampling.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"cannot decode image {path}: {exc}") from exc
    return arr[..., None] if arr.ndim == 2 else arr


def folder_class_names(root: str | os.PathLike, split: str = "train") -> list[str]:
    """Class names of an image folder: Tiny ImageNet's ``wnids.txt`` if present, else the
    sorted sub-folder names of ``root/train`` (or of ``root/split`` when there is no train)."""
    root = Path(root)
    if (root / "wnids.txt").is_file():
        return sorted(w for w in (root / "wnids.txt").read_text().split() if w)
    base = root / "train" if (root / "train").is_dir() else root / split
    if not base.is_dir():
        raise FileNotFoundError(f"image folder {base} does not exist")
    return sorted(p.name for p in base.iterdir() if p.is_dir())


def _labelled_files(root: Path, split: str, classes: list[str]) -> list[tuple[Path, int]]:
    index = {c: i for i, c in enumerate(classes)}
    folder = root / split
    annotations = folder / "val_annotations.txt"
    if annotations.is_file():  # Tiny ImageNet val: images/ + "file<TAB>wnid<TAB>bbox..."
        items = []
        for n, line in enumerate(annotations.read_text().splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) < 2 or parts[1] not in index:
                raise ValueError(f"{annotations}:{n}: unknown class or bad line {line!r}")
            items.append((folder / "images" / parts[0], index[parts[1]]))
        return sorted(items)
    items = []
    for name in classes:
        cls = folder / name
        if not cls.is_dir():
            continue  # a split may lack a class; its images simply are not there
        sub = cls / "images" if (cls / "images").is_dir() else cls  # Tiny ImageNet train
        items.extend((p, index[name]) for p in _image_files(sub))
    return items


def read_image_folder(
    root: str | os.PathLike,
    split: str,
    *,
    channels: int = 3,
    image_size: tuple[int, int] | None = None,
    workers: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``root/split/<class>/*.{png,jpg,...}`` into NHWC uint8 images and int64 labels.

    Also reads Tiny ImageNet (``train/<wnid>/images/*.JPEG``, and ``val/images`` labelled by
    ``val/val_annotations.txt``). Labels index ``folder_class_names(root)``. Images are
    converted to RGB (``channels=3``) or grayscale (``channels=1``) and, when ``image_size``
    ``(H, W)`` is given, resized bilinearly; without it all images must share one size.
    Decoding runs on a thread pool of ``workers`` threads (Pillow releases the GIL).
    """
    from concurrent.futures import ThreadPoolExecutor

    root = Path(root)
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    if not (root / split).is_dir():
        raise FileNotFoundError(f"image folder split {root / split} does not exist")
    classes = folder_class_names(root, split)
    items = _labelled_files(root, split, classes)
    if not items:
        raise ValueError(f"no images found under {root / split}")
    mode = "RGB" if channels == 3 else "L"
    size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        arrays = list(pool.map(lambda it: _decode(it[0], mode, size), items))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise ValueError(
            f"images under {root / split} have different sizes {sorted(shapes)[:3]}...; "
            "pass image_size=(H, W) to resize them"
        )
    labels = np.array([label for _, label in items], dtype=np.int64)
    return np.stack(arrays), labels
