"""What a saved model declares about itself: the format number and the ensemble manifest.

Shared by training (which writes them) and loading (:func:`cloudphys.modeling.load_core`).
No pickles anywhere: :func:`refuse_pickles` guards every directory that is read.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._version import __version__
from ..encoders.pretrained import PICKLE_SUFFIXES, refuse_pickles
from ..errors import CheckpointError

__all__ = [
    "ENSEMBLE_FILE",
    "FORMAT_VERSION",
    "PICKLE_SUFFIXES",
    "check_format",
    "is_ensemble_dir",
    "read_manifest",
    "refuse_pickles",
    "write_manifest",
]

#: Format of what cloudphys writes (model directories, ``ensemble.json``). 1: cloudphys 0.1 runs
#: (no ``format`` key); 2: the model records ``format``, ``dialect`` and ``tokenizer``.
FORMAT_VERSION = 2


def check_format(what: str | Path, found: Any, saved_by: Any = None) -> int:
    """The format number of ``what`` (a missing one is 1); :class:`CheckpointError` if it is newer
    than :data:`FORMAT_VERSION` or not a positive integer."""
    fmt = 1 if found is None else found
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise CheckpointError(f"{what}: format {found!r} is not a positive integer; the files are corrupt")
    if fmt > FORMAT_VERSION:
        by = f"cloudphys {saved_by}" if saved_by else "a newer cloudphys"
        raise CheckpointError(
            f"{what} was saved by {by} with format {fmt}; this cloudphys ({__version__}) reads formats "
            f"<= {FORMAT_VERSION}: upgrade cloudphys (pip install -U cloudphys) to load it"
        )
    return fmt


#: The file that marks a directory as an ensemble run.
ENSEMBLE_FILE = "ensemble.json"


def is_ensemble_dir(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble run directory."""
    return (Path(path) / ENSEMBLE_FILE).is_file()


def write_manifest(out: Path, members: Sequence[str], seeds: Sequence[int], complete: Sequence[str]) -> None:
    """Write ``ensemble.json`` atomically (temporary file + rename)."""
    tmp = out / (ENSEMBLE_FILE + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, "members": list(members), "seeds": list(seeds),
                               "complete": list(complete)}, indent=2))
    tmp.replace(out / ENSEMBLE_FILE)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed ``ensemble.json`` of an ensemble run (validated)."""
    path = Path(path)
    try:
        data = json.loads((path / ENSEMBLE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / ENSEMBLE_FILE} is unreadable or corrupt: {exc}") from exc
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise CheckpointError(f"{path / ENSEMBLE_FILE} must list its members' directories under 'members'")
    for m in members:
        if Path(m).is_absolute() or ".." in Path(m).parts:
            raise CheckpointError(f"{path / ENSEMBLE_FILE}: member {m!r} must be a directory inside {path}")
    complete = data.get("complete", members)
    if not isinstance(complete, list):
        raise CheckpointError(f"{path / ENSEMBLE_FILE}: 'complete' must be a list")
    return {"format": data.get("format", 1), "members": members, "seeds": data.get("seeds", []), "complete": complete}
