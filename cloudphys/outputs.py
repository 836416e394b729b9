"""The one writer of every file cloudphys produces, and the checks of output paths before any work.

Every output (prediction and DOS CSVs and their JSON sidecars, plots, phonopy YAML, configs,
calibration, model packages, SCOPE tables) is written the same way (issue 22 §1):

* :func:`atomic_write` / :func:`write_text` / :func:`write_bytes` / :func:`write_json` /
  :func:`atomic_path`: the content goes to a temporary file **in the target folder**
  (``.NAME.XXXX.tmp``), is flushed and ``fsync``-ed, and ``os.replace``-d onto the target. A reader
  sees the old file or the new one, never a mixture; a crash or an exception mid-write leaves the
  old file intact (and removes the temporary one); two writers of one path leave one of the two
  complete files (the last rename wins). A new file gets the permissions an ordinary ``open`` would
  give (``0o666 & ~umask``); a replaced file keeps its mode.
* :func:`replace_folder`: a folder built beside its target (``.NAME.XXXX.tmp/``) and swapped in at
  the end (the old folder is moved aside, the new one renamed in, the old one removed): a failed
  build leaves the old folder intact. Used by ``cloudphys models package``.

:func:`check_outputs` refuses, before any work, an output that equals an input, equals another
output of the same command, or lies inside a model or run directory (writing there makes a
packaged model fail its checksum verification forever, or mixes user files into a run). It only
looks at paths; :func:`cloudphys.cli.checks.check_output_path` checks that each can be written.

This module imports nothing of cloudphys but :mod:`cloudphys.errors`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .errors import ConfigError

__all__ = [
    "FORMULA_START", "atomic_path", "atomic_write", "check_outputs", "clean_text", "model_folder_of",
    "replace_folder", "same_path", "sidecar_path", "text_cell", "write_bytes", "write_json", "write_text",
]

PathLike = str | os.PathLike[str]

#: Sets of files that mark a folder as a model directory, an ensemble or single-model run directory
#: (also while it trains: its lock and config) or a packaged model: a path inside one is refused as
#: an output (see :func:`model_folder_of`).
MODEL_MARKERS: tuple[tuple[str, ...], ...] = (
    ("ensemble.json",), ("cloudphys.json",), ("head.json", "config.json"),
    ("model/head.json",), ("last/head.json",), (".lock", "config.yaml"), ("model.json", "SHA256SUMS"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _target(path: PathLike) -> Path:
    """The file actually replaced: a symbolic link is followed (its target is replaced, the link kept)."""
    p = Path(path)
    return Path(os.path.realpath(p)) if p.is_symlink() else p


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: not every platform can open a folder)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _mode_for(target: Path) -> int:
    try:
        return target.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_path(path: PathLike, *, fsync: bool = True) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to hand to a library that writes by file name
    (``savefig``, ``safetensors.save_file``, ``shutil.copy2``); renamed onto ``path`` when the block
    ends without an exception, removed otherwise.
    """
    target = _target(path)
    folder = target.parent if str(target.parent) else Path(".")
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name[:80]}.", suffix=f".tmp{target.suffix}")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if fsync:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        os.chmod(tmp, _mode_for(target))
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if fsync:
        _fsync_folder(folder)


@contextlib.contextmanager
def atomic_write(path: PathLike, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = None,
                 errors: str | None = None, fsync: bool = True) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that replaces ``path`` only once the block has finished without an exception.

    :param mode: ``"w"`` (text) or ``"wb"`` (bytes).
    :param errors: the text encoding's error handler (default strict: a caller cleans its text first).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode 'w' or 'wb', got {mode!r}")
    with atomic_path(path, fsync=False) as tmp:
        if mode == "wb":
            fh: IO[Any] = open(tmp, "wb")
        else:
            fh = open(tmp, "w", encoding=encoding, newline=newline, errors=errors)
        try:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        finally:
            fh.close()
    if fsync:
        _fsync_folder(_target(path).parent)


def write_text(path: PathLike, text: str, *, encoding: str = "utf-8", newline: str | None = None) -> Path:
    """Write ``text`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path, "w", encoding=encoding, newline=newline) as fh:
        fh.write(text)
    return Path(path)


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_write(path, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_json(path: PathLike, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` as JSON (a final newline) atomically. Non-finite floats are refused by ``json``
    (``allow_nan=False``): a caller passes ``None`` for a missing number."""
    return write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


def sidecar_path(path: PathLike) -> Path:
    """The JSON file of metadata beside a table: ``out.csv`` → ``out.csv.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


@contextlib.contextmanager
def replace_folder(target: PathLike) -> Iterator[Path]:
    """Build a folder beside ``target`` and swap it in when the block ends without an exception.

    Yields the empty build folder (``.NAME.XXXX.tmp`` in ``target``'s parent). On success an existing
    ``target`` is renamed aside, the build renamed onto ``target``, then the old one removed; on an
    exception the build folder is removed and ``target`` is untouched. The caller decides whether
    ``target`` may be replaced at all.
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    build = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name[:80]}.", suffix=".tmp"))
    try:
        yield build
    except BaseException:
        shutil.rmtree(build, ignore_errors=True)
        raise
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name[:80]}.", suffix=".old"))
        old.rmdir()
        os.replace(target, old)
    try:
        os.replace(build, target)
    except BaseException:
        if old is not None:
            os.replace(old, target)
        shutil.rmtree(build, ignore_errors=True)
        raise
    _fsync_folder(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# checks before any work
# ------------------------------------------------------------------------------------------

def _absolute(path: PathLike) -> Path:
    """``path`` made absolute with links resolved as far as they exist (the file need not exist)."""
    return Path(os.path.realpath(os.path.abspath(os.fspath(path))))


def same_path(a: PathLike, b: PathLike) -> bool:
    """Whether ``a`` and ``b`` name one file: the same resolved path, or (both existing) the same inode
    (hard links, case-insensitive file systems)."""
    if _absolute(a) == _absolute(b):
        return True
    try:
        return os.path.exists(a) and os.path.exists(b) and os.path.samefile(a, b)
    except OSError:
        return False


def model_folder_of(path: PathLike) -> Path | None:
    """The model, run or packaged-model folder that ``path`` lies in (or is), else ``None``."""
    p = _absolute(path)
    for folder in (p, *p.parents):
        try:
            if any(all((folder / m).exists() for m in marks) for marks in MODEL_MARKERS):
                return folder
        except OSError:
            continue
    return None


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def check_outputs(outputs: Mapping[str, PathLike | None], *, inputs: Iterable[PathLike] = (),
                  models: Iterable[PathLike] = (), allow_model_folder: bool = False) -> None:
    """Refuse, before any work, outputs that would destroy what the command reads or writes.

    :param outputs: ``{how the user gave it (e.g. "-o/--output", "--dos"): path}``; ``None`` and
        ``"-"`` (stdout) are skipped.
    :param inputs: the command's input paths; an output may not be one of them.
    :param models: model or run folders the command reads; an output may not lie inside one.
    :param allow_model_folder: skip the check for model/run folders found by their marker files
        (:func:`model_folder_of`; ``models`` are still refused).
    :raises ConfigError: naming both options and the path, with a remedy.
    """
    given = [(what, p) for what, p in outputs.items() if p is not None and os.fspath(p) != "-"]
    for k, (what, path) in enumerate(given):
        for other_what, other in given[:k]:
            if same_path(path, other):
                raise ConfigError(f"{what} {os.fspath(path)!s}: is also the path of {other_what}; one would "
                                  "overwrite the other; give each output its own name")
        for src in inputs:
            if same_path(path, src):
                raise ConfigError(f"{what} {os.fspath(path)}: is also an input ({os.fspath(src)}); writing it "
                                  "would destroy what is being read; choose another name")
        absolute = _absolute(path)
        for model in models:
            m = _absolute(model)
            if _inside(absolute, m) or _inside(m, absolute):
                raise ConfigError(f"{what} {os.fspath(path)}: lies inside (or holds) the model {os.fspath(model)}; "
                                  "writing there would alter the model; choose a path outside it")
        if not allow_model_folder:
            folder = model_folder_of(absolute.parent)
            if folder is not None:
                raise ConfigError(f"{what} {os.fspath(path)}: lies inside the model or run folder {folder}; writing "
                                  "there would alter it (a packaged model then fails verification); choose a path "
                                  "outside it")


# ------------------------------------------------------------------------------------------
# text cells: always encodable, spreadsheet-safe
# ------------------------------------------------------------------------------------------

#: OWASP's rule (CSV injection): a text cell beginning with one of these is prefixed with ``'``.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = None


def clean_text(value: Any) -> str:
    """``value`` as text that every UTF-8 writer accepts, deterministically.

    ``None`` → ``""``; a lone surrogate (a non-UTF-8 file name decoded with ``surrogateescape``, or a
    string such as ``"\\ud800"``) → its ``\\udXXX`` escape (Python's ``backslashreplace``); NUL →
    the four characters ``\\x00``. Any other text is returned unchanged.
    """
    if value is None:
        return ""
    s = value if isinstance(value, str) else os.fsdecode(value) if isinstance(value, bytes) else str(value)
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        s = s.encode("utf-8", "backslashreplace").decode("utf-8")
    if "\x00" in s:
        s = s.replace("\x00", "\\x00")
    return s


def _is_number(s: str) -> bool:
    global _NUMBER
    if _NUMBER is None:
        import re

        _NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)
    return _NUMBER.fullmatch(s) is not None


def text_cell(value: Any, spreadsheet_safe: bool = True) -> str:
    """A CSV text cell: :func:`clean_text`, then (``spreadsheet_safe``) OWASP's neutralisation: a cell
    that begins with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return gets a leading ``'`` -- unless
    the whole cell is a plain number (``-1.5``, ``+3e-2``), which no spreadsheet runs as a formula."""
    s = clean_text(value)
    if spreadsheet_safe and s.startswith(FORMULA_START) and not _is_number(s):
        return "'" + s
    return s
