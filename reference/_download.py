"""Fetch a dataset archive (``.tar.gz`` or ``.zip``), verify its checksum, extract it safely.

``fetch_and_extract`` streams the archive to a temporary file beside its destination while
hashing it, checks the MD5 / SHA-256, moves it into place with ``os.replace`` (atomic), and
extracts it into a temporary folder that is renamed into place only when extraction succeeded.
Extraction refuses absolute paths, ``..`` components, links and device files.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath


class ChecksumError(ValueError):
    """The downloaded bytes do not have the expected checksum."""


@dataclass(frozen=True)
class Archive:
    """A downloadable ``.tar.gz`` / ``.zip`` archive: where it lives and what it must hash to.

    ``folder`` is the top-level folder the archive extracts to (e.g. ``cifar-10-batches-py``).
    At least one of ``md5`` / ``sha256`` must be set; every one that is set is checked.
    """

    url: str
    filename: str
    folder: str
    md5: str | None = None
    sha256: str | None = None

    def __post_init__(self) -> None:
        if not (self.md5 or self.sha256):
            raise ValueError(f"Archive {self.filename}: give md5 or sha256 to verify it")


def _hashers(archive: Archive) -> dict[str, hashlib._Hash]:
    out = {}
    if archive.md5:
        out["md5"] = hashlib.md5(usedforsecurity=False)
    if archive.sha256:
        out["sha256"] = hashlib.sha256()
    return out


def download(
    archive: Archive, dest_dir: str | os.PathLike, *, timeout: float = 60.0, quiet: bool = False
) -> Path:
    """Download ``archive.url`` to ``dest_dir/archive.filename``, verified; return the path.

    An existing file with the right checksum is reused. A wrong checksum raises
    ``ChecksumError``, a failed request ``ConnectionError``; both leave nothing behind (the
    temporary file is removed).
    """
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    target = dest_dir / archive.filename
    if target.is_file():
        try:
            verify(target, archive)
            return target
        except ChecksumError:
            pass  # a stale or partial file from elsewhere: fetch again
    hashers = _hashers(archive)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{archive.filename}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, _open_url(archive.url, timeout) as r:
            total = int(r.headers.get("Content-Length") or 0)
            done = 0
            while chunk := r.read(1 << 20):
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
                done += len(chunk)
                if not quiet and total:
                    print(
                        f"\rdownloading {archive.filename}: {100 * done // total:3d} %",
                        end="",
                        file=sys.stderr,
                    )
        if not quiet and total:
            print(file=sys.stderr)
        _check(hashers, archive, archive.url)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _open_url(url: str, timeout: float):
    try:
        return urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ConnectionError(f"could not download {url}: {reason}") from exc


def _check(hashers: dict[str, hashlib._Hash], archive: Archive, source: object) -> None:
    for algo, h in hashers.items():
        expected = getattr(archive, algo).lower()
        if h.hexdigest() != expected:
            raise ChecksumError(
                f"{source}: {algo} is {h.hexdigest()}, expected {expected}; "
                "the download is corrupt or not the official file"
            )


def verify(path: str | os.PathLike, archive: Archive) -> None:
    """Raise ``ChecksumError`` unless the file at ``path`` has ``archive``'s checksums."""
    hashers = _hashers(archive)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            for h in hashers.values():
                h.update(chunk)
    _check(hashers, archive, path)


def _check_member(member: tarfile.TarInfo, tarball: Path) -> None:
    _check_name(member.name, tarball)
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{tarball}: refusing member {member.name!r} (links and devices)")


def safe_extract(tarball: str | os.PathLike, dest_dir: str | os.PathLike) -> None:
    """Extract a tar archive into ``dest_dir``, refusing members that could escape it.

    Every member is checked first (regular files and folders only; relative paths without
    ``..``); then ``tarfile``'s own ``"data"`` filter is applied as well where Python has it.
    """
    tarball, dest_dir = Path(tarball), Path(dest_dir)
    with tarfile.open(tarball, "r:*") as tar:
        members = tar.getmembers()
        for m in members:
            _check_member(m, tarball)
        kwargs = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(dest_dir, members=members, **kwargs)


def _check_name(name: str, archive_path: Path) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise ValueError(f"{archive_path}: refusing member {name!r} (path leaves the folder)")


def safe_extract_zip(zip_path: str | os.PathLike, dest_dir: str | os.PathLike) -> None:
    """Extract a zip archive into ``dest_dir``: relative paths without ``..`` and no symlinks
    (Unix mode bits in ``external_attr``), checked for every member before anything is written."""
    zip_path, dest_dir = Path(zip_path), Path(dest_dir)
    with zipfile.ZipFile(zip_path) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_name(info.filename, zip_path)
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ValueError(f"{zip_path}: refusing member {info.filename!r} (a symlink)")
        zf.extractall(dest_dir, members=infos)


def fetch_and_extract(
    archive: Archive, root: str | os.PathLike, *, timeout: float = 60.0, quiet: bool = False
) -> Path:
    """Make ``root/archive.folder`` exist: download, verify, extract atomically; return it."""
    root = Path(root)
    final = root / archive.folder
    if final.is_dir():
        return final
    tarball = download(archive, root, timeout=timeout, quiet=quiet)
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.folder}.", dir=root))
    try:
        if archive.filename.endswith(".zip"):
            safe_extract_zip(tarball, staging)
        else:
            safe_extract(tarball, staging)
        extracted = staging / archive.folder
        if not extracted.is_dir():
            raise ValueError(f"{tarball} does not contain the folder {archive.folder!r}")
        os.replace(extracted, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final
