"""Shipped pretrained models: the spec a plugin registers, checksums, and the built-in folder scan.

A shipped model is a folder (installed as package data) holding a model directory in the format
``cloudphys.load_model`` reads (one model, or an ensemble with ``member-K/``), plus

* ``model.json`` -- name, one-line summary, head, data set, licence, number of members;
* ``model_card.md`` -- data, licence, metrics with the command that measured them, units,
  intended use and limits (``cloudphys models info NAME`` prints it);
* ``SHA256SUMS`` -- ``sha256sum`` format, one line per file; verified before every load: a file
  that differs, is missing, or is present but unlisted gives a :class:`CheckpointError`.

Nothing here imports torch: listing models is cheap.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, PluginError

__all__ = ["ModelSpec", "CHECKSUM_FILE", "MODEL_JSON", "CARD_FILE", "write_checksums", "verify_checksums",
           "spec_from_folder", "shipped_folders", "SHIPPED_DIR"]

CHECKSUM_FILE = "SHA256SUMS"
MODEL_JSON = "model.json"
CARD_FILE = "model_card.md"
#: Where the built-in models live (package data of ``cloudphys.models``).
SHIPPED_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelSpec:
    """A pretrained model a plugin registers with ``register_models``.

    :param name: what ``cloudphys.load_model(name)`` takes, e.g. ``"cloud-debye"``.
    :param path: the model's folder (see the module docstring).
    :param summary: one line for ``cloudphys models``.
    :param head: the physics head's name (its plugin must be installed to load the model).
    :param licence: of the weights (and the data they were trained on).
    :param members: ensemble size (1: a single model).
    :param extra: anything else from ``model.json``.
    """

    name: str
    path: Path
    summary: str = ""
    head: str = ""
    licence: str = ""
    members: int = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        """Cheap registration check: the folder, its checksum file and card exist."""
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"model name must be a non-empty string, got {self.name!r}")
        p = Path(self.path)
        for needed in (CHECKSUM_FILE, CARD_FILE):
            if not (p / needed).is_file():
                raise ValueError(f"model {self.name!r}: {p / needed} is missing")

    @property
    def card(self) -> str:
        """The model card (Markdown)."""
        return (Path(self.path) / CARD_FILE).read_text(encoding="utf-8")

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "path": str(self.path), "summary": self.summary, "head": self.head,
                "licence": self.licence, "members": self.members, **self.extra}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUM_FILE
                  and "__pycache__" not in p.parts and not p.name.startswith("."))


def write_checksums(folder: str | Path) -> Path:
    """Write ``SHA256SUMS`` listing every file under ``folder`` (relative POSIX paths)."""
    folder = Path(folder)
    lines = [f"{_sha256(p)}  {p.relative_to(folder).as_posix()}" for p in _files(folder)]
    from ..outputs import write_text

    return write_text(folder / CHECKSUM_FILE, "\n".join(lines) + "\n")


def verify_checksums(folder: str | Path, name: str | None = None) -> None:
    """Check every file under ``folder`` against ``SHA256SUMS``; :class:`CheckpointError` on any difference."""
    folder = Path(folder)
    what = f"model {name!r} ({folder})" if name else str(folder)
    try:
        text = (folder / CHECKSUM_FILE).read_text(encoding="utf-8")
    except OSError as exc:
        raise CheckpointError(f"{what}: no readable {CHECKSUM_FILE} ({exc}); "
                              "refusing to load unverified weights") from exc
    listed: dict[str, str] = {}
    for k, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or Path(rel).is_absolute() or ".." in Path(rel).parts:
            raise CheckpointError(f"{what}: {CHECKSUM_FILE} line {k} is malformed: {line[:80]!r}")
        listed[rel] = digest.lower()
    present = {p.relative_to(folder).as_posix(): p for p in _files(folder)}
    missing = sorted(set(listed) - set(present))
    unlisted = sorted(set(present) - set(listed))
    bad = sorted(rel for rel in listed if rel in present and _sha256(present[rel]) != listed[rel])
    problems = []
    if bad:
        problems.append(f"checksum mismatch for {', '.join(bad)}")
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unlisted:
        problems.append(f"files not in {CHECKSUM_FILE}: {', '.join(unlisted)}")
    if problems:
        raise CheckpointError(f"{what} failed verification ({'; '.join(problems)}); the files were changed or "
                              "damaged -- reinstall cloudphys (or the plugin that ships the model)")


def spec_from_folder(folder: str | Path) -> ModelSpec:
    """A :class:`ModelSpec` from a shipped folder's ``model.json``."""
    folder = Path(folder)
    try:
        meta = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise PluginError(f"shipped model folder {folder}: unreadable {MODEL_JSON}: {exc}") from exc
    known = {"name", "summary", "head", "licence", "members"}
    return ModelSpec(name=str(meta.get("name") or folder.name), path=folder, summary=str(meta.get("summary", "")),
                     head=str(meta.get("head", "")), licence=str(meta.get("licence", "")),
                     members=int(meta.get("members", 1)), extra={k: v for k, v in meta.items() if k not in known})


def shipped_folders(root: str | Path = SHIPPED_DIR) -> list[Path]:
    """Sub-folders of ``root`` that hold a shipped model (a ``model.json``), sorted by name."""
    root = Path(root)
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / MODEL_JSON).is_file())
