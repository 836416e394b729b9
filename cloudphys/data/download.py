"""Finding, downloading and verifying data files.

:func:`fetch` returns the local path of a :class:`~cloudphys.data.DataFile` under the data
directory (``$CLOUDPHYS_DATA``, else a per-user cache directory). A missing file with a canonical
URL is downloaded on first use (progress bar on stderr), written atomically and checked against its
SHA-256. Without network -- or with ``CLOUDPHYS_OFFLINE=1`` -- the :class:`~cloudphys.errors.DataError`
says which file to put where and where to get it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import IO

from ..errors import DataError
from .base import DataFile, data_dir

__all__ = ["copy_into_data_dir", "fetch", "local_path", "missing_message", "offline", "sha256_of", "verify"]

#: Opener used for downloads (tests replace it; ``file://`` URLs work too).
urlopen: Callable[..., IO[bytes]] = urllib.request.urlopen

_CHUNK = 1 << 16


def offline() -> bool:
    """True when ``CLOUDPHYS_OFFLINE`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get("CLOUDPHYS_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def sha256_of(path: str | os.PathLike[str]) -> str:
    """SHA-256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def local_path(file: DataFile, root: str | os.PathLike[str] | None = None) -> Path:
    """Where ``file`` lives (or would live) under the data directory ``root``."""
    base = Path(root).expanduser() if root is not None else data_dir()
    return base / file.path


_target = local_path


def missing_message(file: DataFile, dataset: str | None = None, root: str | os.PathLike[str] | None = None,
                    reason: str | None = None) -> str:
    """The message of the error raised for a missing file: what, where, and how to get it."""
    target = _target(file, root)
    owner = f" of data set {dataset!r}" if dataset else ""
    msg = f"data file {file.path!r}{owner} is missing: put it at {target}"
    if file.url:
        msg += f" (download it from {file.url}"
        if file.sha256:
            msg += f", SHA-256 {file.sha256}"
        msg += ")"
    if reason:
        msg += f"; {reason}"
    msg += ". Set CLOUDPHYS_DATA to use another data directory."
    return msg


def verify(file: DataFile, path: str | os.PathLike[str]) -> None:
    """Raise :class:`DataError` if ``path`` does not have ``file``'s SHA-256 (no-op without one)."""
    if not file.sha256:
        return
    digest = sha256_of(path)
    if digest != file.sha256:
        raise DataError(
            f"data file {str(path)!r} fails verification: SHA-256 {digest}, expected {file.sha256}; "
            f"delete it and download it again" + (f" from {file.url}" if file.url else "")
        )


def fetch(
    file: DataFile,
    *,
    dataset: str | None = None,
    root: str | os.PathLike[str] | None = None,
    download: bool | None = None,
    progress: bool = True,
) -> Path:
    """Return the local path of ``file``, downloading it first if it is missing.

    :param file: the file (path relative to the data directory, URL, SHA-256).
    :param dataset: name of the data set (for messages).
    :param root: data directory (default :func:`~cloudphys.data.data_dir`).
    :param download: allow downloading a missing file (default: unless ``CLOUDPHYS_OFFLINE``).
    :param progress: show a progress bar while downloading.
    :raises DataError: missing and not downloadable, download failed, or checksum mismatch.
    """
    target = _target(file, root)
    if target.is_file():
        return target
    if download is None:
        download = not offline()
    if not file.url:
        raise DataError(missing_message(file, dataset, root))
    if not download:
        raise DataError(missing_message(file, dataset, root, reason="downloads are disabled (CLOUDPHYS_OFFLINE)"))
    _download(file, target, dataset=dataset, root=root, progress=progress)
    return target


def _download(file: DataFile, target: Path, *, dataset: str | None, root: str | os.PathLike[str] | None,
              progress: bool) -> None:
    assert file.url is not None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise DataError(missing_message(file, dataset, root, reason=f"cannot write to {target.parent}: {exc}")) from exc
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urlopen(file.url, timeout=60)
            except (urllib.error.URLError, OSError, ValueError) as exc:
                reason = getattr(exc, "reason", exc)
                raise DataError(
                    missing_message(file, dataset, root, reason=f"download from {file.url} failed ({reason})")
                ) from exc
            with response:
                total = _content_length(response) or file.size
                bar = None
                if progress:
                    from tqdm.auto import tqdm

                    bar = tqdm(total=total, unit="B", unit_scale=True, desc=target.name, file=sys.stderr,
                               leave=False)
                try:
                    while True:
                        try:
                            chunk = response.read(_CHUNK)
                        except OSError as exc:
                            raise DataError(
                                missing_message(file, dataset, root,
                                                reason=f"download from {file.url} broke off ({exc})")
                            ) from exc
                        if not chunk:
                            break
                        out.write(chunk)
                        if bar is not None:
                            bar.update(len(chunk))
                finally:
                    if bar is not None:
                        bar.close()
        try:
            verify(file, tmp)
        except DataError as exc:
            raise DataError(f"downloaded {file.url}: {exc}") from None
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _content_length(response: object) -> int | None:
    headers = getattr(response, "headers", None)
    if headers is None:
        return None
    value = headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def copy_into_data_dir(src: str | os.PathLike[str], file: DataFile, root: str | os.PathLike[str] | None = None) -> Path:
    """Copy a file the user obtained by hand to its place in the data directory, verifying it."""
    verify(file, src)
    target = _target(file, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return target
