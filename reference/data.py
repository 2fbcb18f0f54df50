"""Datasets for the reference runs: one entry point, NumPy arrays out.

``load_dataset(name, data_dir, split, download)`` returns ``(images, labels)``: ``images`` uint8
of shape ``(N, H, W, C)`` (NHWC, pixel values 0..255), ``labels`` int64 of shape ``(N,)``
(``-1`` for STL-10's unlabeled images). No deep-learning framework is imported here, except
Keras inside the Fashion-MNIST download fallback.

Where each dataset is looked for (``data_dir`` given: only there; else the default places):

======================  ===================================================================
``fashion-mnist-10k``   shipped with the repository (``reference/datasets/fashion-mnist-10k``,
                        SHA-256 checked at every load): the first 10000 images of the official
                        Fashion-MNIST training file and the whole official test file (10000).
                        The default run's data: the same images on every machine.
``fashion-mnist``       IDX files (``train-images-idx3-ubyte[.gz]`` ...) in ``data_dir`` or
                        ``data_dir/fashion-mnist``; without ``data_dir``: the Debian package
                        ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``),
                        ``default_data_dir()/fashion-mnist``, then (``download=True`` only)
                        Keras' own download.
``cifar10``             ``cifar-10-batches-py/`` (official python pickles), under ``data_dir``
                        (or ``data_dir`` itself) else ``default_data_dir()``.
``cifar100``            ``cifar-100-python/`` (``train``, ``test``; the 100 fine labels).
``stl10``               ``stl10_binary/`` (``train_X.bin``, ``train_y.bin``, ...).
``tiny-imagenet``       ``tiny-imagenet-200/`` (``train/<wnid>/images``, ``val`` + annotations).
``image-folder``        ``data_dir/<split>/<class>/*.png|jpg`` (``data_dir`` required).
``digits``              scikit-learn's bundled 8x8 digits (no file needed).
======================  ===================================================================

``download=True`` fetches CIFAR-10/100, STL-10 and Tiny ImageNet from their official URLs into
``data_dir`` (or ``default_data_dir()``), checks the published MD5, and extracts safely;
Fashion-MNIST comes through Keras' ``fashion_mnist.load_data`` (``~/.keras/datasets``).

A dataset that is not found raises ``DatasetNotFoundError`` (a ``FileNotFoundError``) whose
message names the remedies; the training scripts print it without a traceback.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from reference import _download, _formats
from reference._download import Archive, ChecksumError
from reference._formats import UnsafePickleError

__all__ = [
    "DATASETS",
    "FASHION_MNIST_SYSTEM_DIR",
    "SHIPPED_DIR",
    "ChecksumError",
    "DatasetNotFoundError",
    "DatasetSpec",
    "UnsafePickleError",
    "default_data_dir",
    "download_dataset",
    "get_spec",
    "list_datasets",
    "load_dataset",
    "subset",
    "subset_indices",
]

Arrays = tuple[np.ndarray, np.ndarray]

#: Where the Debian/Ubuntu package ``dataset-fashion-mnist`` puts the IDX files.
FASHION_MNIST_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

#: The datasets shipped with the repository (``fashion-mnist-10k``), beside this module.
SHIPPED_DIR = Path(__file__).resolve().parent / "datasets"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where they were looked for; the message names the remedies."""


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset, keyed once (``DATASETS``): image size ``(H, W)`` (``None``: set by the
    files or ``image_size``), channels, number of classes (``None``: set by the folder),
    splits, the split used for evaluation, class names where they are fixed, the folder its
    files are in, other spellings of its name, its official archive (downloads) and its
    loader ``(spec, data_dir, split, download, image_size) -> (images, labels)``."""

    name: str
    image_size: tuple[int, int] | None
    channels: int
    num_classes: int | None
    splits: tuple[str, ...]
    eval_split: str = "test"
    class_names: tuple[str, ...] | None = None
    folder: str | None = None  # the folder the official archive extracts to
    description: str = ""
    aliases: tuple[str, ...] = ()
    archive: Archive | None = None  # official archive, with the MD5 published on its page
    loader: Callable[..., Arrays] | None = field(default=None, repr=False, compare=False)


def list_datasets() -> list[str]:
    """Names accepted by ``load_dataset``, sorted."""
    return sorted(DATASETS)


def get_spec(name: str) -> DatasetSpec:
    """The ``DatasetSpec`` of ``name`` (case-insensitive; ``_`` and ``-`` spellings accepted)."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    key = name.strip().lower()
    key = next((s.name for s in DATASETS.values() if key in s.aliases), key)
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {list_datasets()}")
    return DATASETS[key]


def default_data_dir() -> Path:
    """``$SPARSEHEAD_DATA_DIR``, else ``$XDG_CACHE_HOME/sparsehead/datasets`` (``~/.cache``)."""
    env = os.environ.get("SPARSEHEAD_DATA_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "sparsehead" / "datasets"


def download_dataset(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    """Download and extract ``name``'s official archive (MD5-checked); return its folder."""
    spec = get_spec(name)
    if spec.archive is None:
        downloads = sorted(s.name for s in DATASETS.values() if s.archive is not None)
        raise ValueError(
            f"no download for {spec.name!r}: downloads exist for {downloads}"
            + ("; Fashion-MNIST comes through Keras" if spec.name == "fashion-mnist" else "")
        )
    root = Path(data_dir) if data_dir is not None else default_data_dir()
    return _download.fetch_and_extract(spec.archive, root)


# ------------------------------------------------------------------------------- loading


def load_dataset(
    name: str = "fashion-mnist-10k",
    data_dir: str | os.PathLike | None = None,
    split: str = "train",
    download: bool = False,
    *,
    image_size: tuple[int, int] | None = None,
) -> Arrays:
    """Load one split of a dataset as ``(images, labels)``.

    Args:
        name: one of ``list_datasets()``.
        data_dir: where the files are (see the module docstring); ``None``: the default places.
        split: one of ``get_spec(name).splits``. ``"test"`` means ``"val"`` for Tiny ImageNet,
            and for an image folder that has ``val/`` but no ``test/``.
        download: fetch a missing CIFAR-10/100, STL-10 or Tiny ImageNet archive from its
            official URL (MD5 checked); a missing Fashion-MNIST through Keras' download.
        image_size: ``(H, W)`` to resize image-folder images to (image folders only).

    Returns:
        ``images`` uint8 ``(N, H, W, C)`` and ``labels`` int64 ``(N,)``.

    Raises:
        ValueError: unknown name or split, or a corrupt file (``ChecksumError`` for a shipped
            file whose SHA-256 is wrong).
        DatasetNotFoundError: the files are not where they were looked for (a
            ``FileNotFoundError``; the message names the remedies).
    """
    spec = get_spec(name)
    if not isinstance(split, str):
        raise TypeError(f"split must be a str, got {type(split).__name__}")
    if spec.name == "tiny-imagenet" and split == "test":
        split = "val"
    if split not in spec.splits:
        raise ValueError(f"split {split!r} is not one of {spec.name}'s splits {spec.splits}")
    if image_size is not None and spec.name not in ("image-folder", "tiny-imagenet"):
        raise ValueError("image_size applies to image folders only (image-folder, tiny-imagenet)")
    folder = None if data_dir is None else Path(data_dir)
    images, labels = spec.loader(spec, folder, split, download, image_size)
    _check_output(spec, images, labels)
    return images, labels


def _check_output(spec: DatasetSpec, images: np.ndarray, labels: np.ndarray) -> None:
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != spec.channels:
        raise ValueError(f"{spec.name}: loaded images have dtype {images.dtype} {images.shape}")
    if spec.image_size is not None and images.shape[1:3] != spec.image_size:
        raise ValueError(f"{spec.name}: images are {images.shape[1:3]}, not {spec.image_size}")
    if labels.dtype != np.int64 or labels.shape != (images.shape[0],):
        raise ValueError(f"{spec.name}: labels {labels.dtype} {labels.shape} do not match images")


def _locate(spec: DatasetSpec, data_dir: Path | None, marker: str, download: bool) -> Path:
    """The folder holding ``marker``: ``data_dir/<folder>``, ``data_dir`` itself, or (no
    ``data_dir``) ``default_data_dir()/<folder>``; downloaded there if allowed."""
    root = data_dir if data_dir is not None else default_data_dir()
    candidates = [root / spec.folder, root]
    for folder in candidates:
        if (folder / marker).exists():
            return folder
    if download:
        return download_dataset(spec.name, root)
    hint = f" or pass download=True (--download) to fetch it into {root}"
    raise DatasetNotFoundError(
        f"{spec.name}: {marker!r} not found in {' or '.join(map(str, candidates))}; "
        f"put the extracted {spec.folder}/ there, pass data_dir (--data-dir),"
        + (hint if spec.archive is not None else " ")
    )


_FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _idx_file(folder: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_fashion_mnist_keras(split: str) -> Arrays:
    """Keras' own Fashion-MNIST download (cached in ``~/.keras/datasets``)."""
    from keras.datasets import fashion_mnist  # lazy: only this fallback needs Keras

    (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
    x, y = (x_train, y_train) if split == "train" else (x_test, y_test)
    return np.asarray(x, dtype=np.uint8)[..., None], np.asarray(y, dtype=np.int64)


def _load_fashion_mnist(spec, data_dir, split, download, image_size) -> Arrays:
    if data_dir is not None:
        folders = [data_dir, data_dir / "fashion-mnist"]
    else:
        folders = [FASHION_MNIST_SYSTEM_DIR, default_data_dir() / "fashion-mnist"]
    for folder in folders:
        images = _idx_file(folder, _FMNIST_FILES[split][0])
        labels = _idx_file(folder, _FMNIST_FILES[split][1])
        if images and labels:
            return _formats.read_idx_pair(images, labels)
    searched = " and ".join(map(str, folders))
    if data_dir is not None:
        raise DatasetNotFoundError(
            f"fashion-mnist: {_FMNIST_FILES[split][0]}[.gz] and its labels not found in {searched}"
        )
    remedies = (
        "install the Debian package (sudo apt-get install dataset-fashion-mnist), put the IDX "
        f"files in {folders[1]} or pass data_dir (--data-dir), or use the subset shipped with "
        "the repository (--dataset fashion-mnist-10k, the default run's)"
    )
    if not download:
        raise DatasetNotFoundError(
            f"fashion-mnist: not found in {searched}; {remedies}, or pass download=True "
            "(--download) to fetch it through Keras"
        )
    try:
        return _load_fashion_mnist_keras(split)
    except Exception as exc:  # ImportError, or any network error from Keras' get_file
        raise DatasetNotFoundError(
            f"fashion-mnist: not found in {searched}, and Keras' download failed ({exc}); "
            + remedies
        ) from exc


def _shipped_checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of each shipped file, from ``SHA256SUMS`` beside the files (``sha256sum``)."""
    sums = folder / "SHA256SUMS"
    if not sums.is_file():
        raise DatasetNotFoundError(
            f"{sums} is missing: restore it from the repository (git checkout -- {_repo(sums)})"
        )
    out = {}
    for line in sums.read_text().splitlines():
        if line.strip():
            digest, name = line.split(maxsplit=1)
            out[name.lstrip("*")] = digest.lower()
    return out


def _verified(folder: Path, name: str, checksums: dict[str, str]) -> Path:
    """``folder/name`` after checking its SHA-256 against ``SHA256SUMS``."""
    path = folder / name
    restore = f"restore it from the repository (git checkout -- {_repo(path)})"
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} is missing: {restore}")
    expected = checksums.get(name)
    if expected is None:
        raise ChecksumError(f"{path} has no entry in {folder / 'SHA256SUMS'}: {restore}")
    try:
        _download.verify(path, Archive(url="", filename=name, folder="", sha256=expected))
    except ChecksumError:
        raise ChecksumError(
            f"{path} differs from the file shipped with the repository (its SHA-256 is not the "
            f"one in SHA256SUMS; nothing was downloaded): {restore}"
        ) from None
    return path


def _repo(path: Path) -> str:
    """`path` relative to the repository root when it is inside it (for `git checkout --`)."""
    try:
        return str(path.relative_to(Path(__file__).resolve().parent.parent))
    except ValueError:
        return str(path)


def _load_fashion_mnist_10k(spec, data_dir, split, download, image_size) -> Arrays:
    if data_dir is not None:
        raise ValueError(
            "fashion-mnist-10k is shipped with the repository and takes no data_dir "
            "(--data-dir); for Fashion-MNIST files of your own use --dataset fashion-mnist"
        )
    folder = SHIPPED_DIR / spec.folder
    checksums = _shipped_checksums(folder)
    images, labels = (_verified(folder, stem + ".gz", checksums) for stem in _FMNIST_FILES[split])
    return _formats.read_idx_pair(images, labels)


def _load_cifar10(spec, data_dir, split, download, image_size) -> Arrays:
    return _formats.read_cifar10(_locate(spec, data_dir, "test_batch", download), split)


def _load_cifar100(spec, data_dir, split, download, image_size) -> Arrays:
    return _formats.read_cifar100(_locate(spec, data_dir, "test", download), split)


def _load_stl10(spec, data_dir, split, download, image_size) -> Arrays:
    return _formats.read_stl10(_locate(spec, data_dir, "test_X.bin", download), split)


def _load_tiny_imagenet(spec, data_dir, split, download, image_size) -> Arrays:
    root = _locate(spec, data_dir, "train", download)
    return _formats.read_image_folder(root, split, channels=3, image_size=image_size)


def _load_image_folder(spec, data_dir, split, download, image_size) -> Arrays:
    if data_dir is None:
        raise ValueError("image-folder needs data_dir (--data-dir): root/<split>/<class>/*.png")
    if split == "test" and not (data_dir / "test").is_dir() and (data_dir / "val").is_dir():
        split = "val"  # ImageNet-style folders have train/ and val/ only
    return _formats.read_image_folder(data_dir, split, channels=3, image_size=image_size)


def _load_digits(spec, data_dir, split, download, image_size) -> Arrays:
    from sklearn.datasets import load_digits  # bundled with scikit-learn, no download

    bunch = load_digits()
    pixels = np.rint(bunch.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    test = np.arange(len(bunch.target)) % 5 == 4
    keep = test if split == "test" else ~test
    return pixels[keep], bunch.target[keep].astype(np.int64)


_FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                    "Sneaker", "Bag", "Ankle boot")  # fmt: skip

#: Every dataset, keyed once by its name.
DATASETS: dict[str, DatasetSpec] = {
    s.name: s
    for s in (
        DatasetSpec(
            "fashion-mnist", (28, 28), 1, 10, ("train", "test"),
            class_names=_FASHION_CLASSES, folder="fashion-mnist",
            description="Zalando Fashion-MNIST, 60000/10000 grayscale 28x28 (IDX files)",
            aliases=("fashion_mnist", "fmnist"), loader=_load_fashion_mnist,
        ),
        DatasetSpec(
            "fashion-mnist-10k", (28, 28), 1, 10, ("train", "test"),
            class_names=_FASHION_CLASSES, folder="fashion-mnist-10k",
            description="Fashion-MNIST shipped with the repository: the first 10000 official "
            "training images and the whole official test split (10000), SHA-256 checked",
            aliases=("fashion_mnist_10k",), loader=_load_fashion_mnist_10k,
        ),
        DatasetSpec(
            "cifar10", (32, 32), 3, 10, ("train", "test"),
            class_names=("airplane", "automobile", "bird", "cat", "deer", "dog", "frog",
                         "horse", "ship", "truck"),
            folder="cifar-10-batches-py",
            description="CIFAR-10, 50000/10000 RGB 32x32 (official python pickles)",
            aliases=("cifar-10",), loader=_load_cifar10,
            archive=Archive(
                url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                filename="cifar-10-python.tar.gz", folder="cifar-10-batches-py",
                md5="c58f30108f718f92721af3b95e74349a",
            ),
        ),
        DatasetSpec(
            "cifar100", (32, 32), 3, 100, ("train", "test"), folder="cifar-100-python",
            description="CIFAR-100, 50000/10000 RGB 32x32, 100 fine labels (python pickles)",
            aliases=("cifar-100",), loader=_load_cifar100,
            archive=Archive(
                url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
                filename="cifar-100-python.tar.gz", folder="cifar-100-python",
                md5="eb9058c3a382ffc7106e4002c42a8d85",
            ),
        ),
        DatasetSpec(
            "stl10", (96, 96), 3, 10, ("train", "test", "unlabeled", "train+unlabeled"),
            class_names=("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey",
                         "ship", "truck"),
            folder="stl10_binary",
            description="STL-10, 5000/8000 labeled + 100000 unlabeled RGB 96x96 (binary)",
            aliases=("stl-10",), loader=_load_stl10,
            archive=Archive(
                url="http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz",
                filename="stl10_binary.tar.gz", folder="stl10_binary",
                md5="91f7769df0f17e558f3565bffb0c7dfb",
            ),
        ),
        DatasetSpec(
            "tiny-imagenet", (64, 64), 3, 200, ("train", "val"), eval_split="val",
            folder="tiny-imagenet-200",
            description="Tiny ImageNet, 100000/10000 RGB 64x64, 200 classes (image folder); "
            "split 'test' means 'val' (the official test labels are withheld)",
            aliases=("tiny_imagenet",), loader=_load_tiny_imagenet,
            archive=Archive(
                url="http://cs231n.stanford.edu/tiny-imagenet-200.zip",
                filename="tiny-imagenet-200.zip", folder="tiny-imagenet-200",
                md5="90528d7ca1a48142e341f4ef8d21d0de",
            ),
        ),
        DatasetSpec(
            "image-folder", None, 3, None, ("train", "val", "test"),
            description="any root/<split>/<class>/*.png|jpg folder (e.g. ImageNet-100)",
            aliases=("image_folder", "imagefolder"), loader=_load_image_folder,
        ),
        DatasetSpec(
            "digits", (8, 8), 1, 10, ("train", "test"),
            class_names=tuple(str(d) for d in range(10)),
            description="scikit-learn's 1797 8x8 digits, 0..16 scaled to 0..255; test = "
            "every 5th image (index % 5 == 4), train = the rest",
            loader=_load_digits,
        ),
    )
}  # fmt: skip

# ------------------------------------------------------------------------------- subsets


def subset_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices (sorted) of a class-balanced random subset of ``n`` examples.

    Every label value is a class (``-1`` included). Each class gets ``n // k`` or
    ``n // k + 1`` examples (``k`` classes; which classes get the extra one is drawn from
    ``seed``), except classes with fewer examples, which give all they have while the rest is
    shared among the others. Deterministic in ``(labels, n, seed)``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be 1-D, got shape {labels.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    if not 0 <= n <= labels.shape[0]:
        raise ValueError(f"n must be in 0..{labels.shape[0]} (the number of labels), got {n}")
    rng = np.random.default_rng(seed)
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = np.zeros_like(counts)
    open_ = np.arange(counts.size)
    remaining = int(n)
    while open_.size:  # water-filling: small classes give all they have
        capped = open_[counts[open_] <= remaining // open_.size]
        if capped.size == 0:
            break
        quota[capped] = counts[capped]
        remaining -= int(counts[capped].sum())
        open_ = np.setdiff1d(open_, capped)
    if open_.size:
        base, extra = divmod(remaining, open_.size)
        quota[open_] = base
        quota[rng.choice(open_, size=extra, replace=False)] += 1
    order = np.argsort(inverse, kind="stable")  # indices grouped by class, ascending
    starts = np.concatenate([[0], np.cumsum(counts)])
    picks = [
        rng.choice(order[starts[c] : starts[c + 1]], size=int(quota[c]), replace=False)
        for c in range(counts.size)
    ]
    return np.sort(np.concatenate(picks)).astype(np.int64) if picks else np.zeros(0, np.int64)


def subset(images: np.ndarray, labels: np.ndarray, n: int, seed: int = 0) -> Arrays:
    """A class-balanced random subset of ``n`` examples: ``(images[idx], labels[idx])`` with
    ``idx = subset_indices(labels, n, seed)`` (original order kept)."""
    images = np.asarray(images)
    labels = np.asarray(labels)
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"images ({images.shape[0]}) and labels ({labels.shape[0]}) differ")
    idx = subset_indices(labels, n, seed)
    return images[idx], labels[idx]
