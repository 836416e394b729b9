"""Checks the CLI runs before any work: output paths, and JSON that is always valid.

:func:`check_output_path` refuses, before a command starts computing, an output that could not
be written at the end (a folder where a file is wanted, a file where a folder is wanted, a missing
parent folder, an unwritable location). :func:`dumps_json` is the one JSON writer of the
commands: non-finite floats become ``null`` and ``allow_nan=False`` guarantees that no
``Infinity``/``NaN`` ever reaches a ``--json`` reader.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["check_device", "check_output_path", "dumps_json", "finite_json"]


def _writable_folder(folder: Path) -> str | None:
    """``None`` if a file can be created in ``folder``, else the reason (tries for real)."""
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".cloudphys-write-test-"):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name the same existing file (links and relative paths included)."""
    try:
        return a.is_file() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_output_path(path: str | os.PathLike[str] | None, *, what: str, overwrite: bool = False,
                      folder: bool = False, create_parents: bool = False,
                      inputs: Iterable[str | os.PathLike[str]] = ()) -> Path | None:
    """Check that ``path`` can be written, before any work; return it as a :class:`Path`.

    :param what: how the user gave it, e.g. ``"-o/--output"`` (named in the message).
    :param overwrite: an existing file (or non-empty folder) may be replaced; without it, one is
        refused with the remedy.
    :param folder: the output is a folder (created with its parents if missing) instead of a file
        (whose parent folder must exist).
    :param create_parents: for a file: the command creates missing parent folders, so they may be
        missing as long as they can be created.
    :param inputs: the command's input paths: an output that is one of them (or inside an input
        folder, for ``folder=False`` outputs that are an existing input file) is refused, so that
        writing never destroys what is being read.
    :raises ConfigError: ``"{what} {path}: <reason>; <remedy>"``. ``None`` and ``"-"`` (stdout)
        pass unchecked.
    """
    if path is None or str(path) == "-":
        return None
    if not str(path).strip():
        raise ConfigError(f"{what}: empty path; give a {'folder' if folder else 'file name'}")
    p = Path(path)
    for given in inputs:
        if _same_file(p, Path(given)):
            raise ConfigError(f"{what} {path}: is also an input ({given}); writing it would destroy what is being "
                              "read; choose another name")
    if folder:
        if p.exists() and not p.is_dir():
            raise ConfigError(f"{what} {path}: is a file, not a folder; give a folder (it is created if missing)")
        if p.is_dir() and not overwrite and any(p.iterdir()):
            raise ConfigError(
                f"{what} {path}: folder exists and is not empty; choose another folder or pass --overwrite"
            )
        probe = p
        while not probe.exists():  # the nearest existing ancestor must be a writable folder
            probe = probe.parent
        if not probe.is_dir():
            raise ConfigError(f"{what} {path}: {probe} is a file, so the folder cannot be created")
        reason = _writable_folder(probe)
        if reason:
            raise ConfigError(f"{what} {path}: cannot write in {probe}: {reason}")
        return p
    if p.is_dir() or str(path).endswith(("/", os.sep)):
        raise ConfigError(f"{what} {path}: is a folder; give a file name (e.g. {p / 'out.csv'})")
    parent = p.parent
    if create_parents:
        while not parent.exists():
            parent = parent.parent
    if not parent.exists():
        raise ConfigError(f"{what} {path}: folder {parent} does not exist; create it first (mkdir -p {parent})")
    if not parent.is_dir():
        raise ConfigError(f"{what} {path}: {parent} is a file, not a folder")
    if p.exists():
        if not overwrite:
            raise ConfigError(f"{what} {path}: file exists; choose another name or pass --overwrite")
        if not os.access(p, os.W_OK):
            raise ConfigError(f"{what} {path}: file exists and cannot be written (permission denied)")
    reason = _writable_folder(parent)
    if reason:
        raise ConfigError(f"{what} {path}: cannot write in {parent}: {reason}")
    return p


def check_device(name: str | None, *, what: str = "--device") -> None:
    """Refuse, before any work, a device name torch would not take or a device this machine lacks.

    ``auto`` always passes (CUDA if available, else the CPU); ``cpu``, ``cuda``, ``cuda:N`` and
    ``mps`` pass when the machine has them.

    :raises ConfigError: naming the option, the value and the remedy.
    """
    import re

    from ..config.schema import DEVICE_PATTERN

    if name is None or name == "auto":
        return
    if not re.fullmatch(DEVICE_PATTERN, str(name)):
        raise ConfigError(f"{what} {name!r}: unknown device; use auto, cpu, cuda, cuda:N or mps")
    import torch

    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"{what} {name!r}: CUDA is not available on this machine; use auto or cpu")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"{what} {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s); "
                              f"use cuda:0 .. cuda:{torch.cuda.device_count() - 1} or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{what} 'mps': the MPS backend is not available on this machine; use auto or cpu")


def finite_json(obj: Any) -> Any:
    """``obj`` with non-finite floats → ``None``, numpy scalars/arrays → Python, tuples → lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, Mapping):
        return {str(k) if not isinstance(k, (str, int, float, bool)) else k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set, frozenset)):
        return [finite_json(v) for v in obj]
    tolist = getattr(obj, "tolist", None)  # numpy scalars and arrays, torch tensors
    if callable(tolist):
        return finite_json(tolist())
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def dumps_json(obj: Any, **kwargs: Any) -> str:
    """``json.dumps`` that always gives valid JSON: NaN/±inf → ``null`` (``allow_nan=False``)."""
    kwargs.pop("allow_nan", None)
    return json.dumps(finite_json(obj), allow_nan=False, **kwargs)
