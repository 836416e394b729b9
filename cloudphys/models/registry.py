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
           "spec_from_folder", "shipped_folders", "SHIPPED_DIR", "check_model_meta", "RESERVED_META_KEYS"]

CHECKSUM_FILE = "SHA256SUMS"
MODEL_JSON = "model.json"
CARD_FILE = "model_card.md"
#: Where the built-in models live (package data of ``cloudphys.models``).
SHIPPED_DIR = Path(__file__).resolve().parent


#: ``model.json`` keys cloudphys writes from the run itself; user ``meta`` may not set them.
RESERVED_META_KEYS = ("name", "members", "weights_dtype")
_META_KEY = r"[A-Za-z_][A-Za-z0-9_.-]{0,63}"
_META_LIMITS = {"keys": 64, "text": 10_000, "list": 100, "bytes": 64 * 1024}


def check_model_meta(meta: Any, what: str = "--meta") -> dict[str, Any]:
    """``meta`` (extra ``model.json`` fields) as a flat JSON object, or :class:`ConfigError`.

    Allowed: at most 64 keys matching ``[A-Za-z_][A-Za-z0-9_.-]*`` (none of
    :data:`RESERVED_META_KEYS`), each value a string (<= 10,000 characters), a finite number, a
    boolean, ``null`` or a list of at most 100 of those; 64 KiB of JSON in all. Nothing nested deeper.
    """
    import math
    import re

    from ..errors import ConfigError

    if not isinstance(meta, dict):
        raise ConfigError(f"{what}: must be a JSON object of model.json fields (e.g. {{\"summary\": \"...\"}}), "
                          f"got a {type(meta).__name__}")
    if len(meta) > _META_LIMITS["keys"]:
        raise ConfigError(f"{what}: {len(meta)} fields, more than {_META_LIMITS['keys']}")

    def scalar(key: str, v: Any, where: str) -> None:
        if v is None or isinstance(v, bool) or isinstance(v, int):
            return
        if isinstance(v, float):
            if not math.isfinite(v):
                raise ConfigError(f"{what}: {where} is {v!r}; numbers must be finite")
            return
        if isinstance(v, str):
            if len(v) > _META_LIMITS["text"]:
                raise ConfigError(f"{what}: {where} has {len(v):,} characters, more than {_META_LIMITS['text']:,}")
            return
        raise ConfigError(f"{what}: {where} is a {type(v).__name__}; values are strings, numbers, booleans, null "
                          "or lists of them (the object is flat: nothing nested deeper)")

    for key, v in meta.items():
        if not isinstance(key, str) or not re.fullmatch(_META_KEY, key):
            raise ConfigError(f"{what}: field name {str(key)[:40]!r} is not a plain name ([A-Za-z_][A-Za-z0-9_.-]*)")
        if key in RESERVED_META_KEYS:
            raise ConfigError(f"{what}: field {key!r} is written by cloudphys from the run; remove it")
        if isinstance(v, list):
            if len(v) > _META_LIMITS["list"]:
                raise ConfigError(f"{what}: {key!r} lists {len(v)} values, more than {_META_LIMITS['list']}")
            for k, item in enumerate(v):
                scalar(key, item, f"{key}[{k}]")
        else:
            scalar(key, v, repr(key))
    size = len(json.dumps(meta))
    if size > _META_LIMITS["bytes"]:
        raise ConfigError(f"{what}: {size:,} bytes of JSON, more than {_META_LIMITS['bytes']:,}")
    return dict(meta)


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
