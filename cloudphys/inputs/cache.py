"""Per-user cache of SCOPE strings converted from the structures of input files.

Converting thousands of structures with spglib takes a while, so :func:`~cloudphys.inputs.to_records`
keeps the strings of items read from files in ``$CLOUDPHYS_CACHE/scope/`` (default: the platform's
per-user cache directory, e.g. ``~/.cache/cloudphys/scope``). Nothing is ever written next to the
inputs or to the data directory, which may be read-only.

A cache file is keyed by the source file's content (SHA-256 of its bytes: a file replaced by another
with the same path, size and modification time -- ``cp -p``, unzip, ``touch -r`` -- is a new key), the converter
(a hash of the ``cloudphys.scope`` and ``cloudphys.inputs`` sources plus the spglib and pymatgen
versions) and every setting that changes a result (dialect, tolerances, ``allow_disordered``, the
per-item limits); any change makes a new key. Inside, item names map to strings and atom counts
(or to the conversion error; timeouts are never cached). A damaged cache file (not JSON, wrong
types, a string that does not parse, an ``n_atoms`` that is not a positive finite number) is never
fatal: the damaged entries are converted again and the file rewritten.
Converted items may also carry a low-symmetry warning (``warnings``).

Beside its string, an item may keep its standardised geometric features
(:func:`cloudphys.scope.geometry.geometric_features`, the row a model with
``encoder.geometric_features`` reads) or the reason there are none (``geometry`` section). Those rows
are trusted only while :func:`geometry_fingerprint` (a hash of the geometry and descriptor sources
and the pymatgen version) is the one they were computed with; otherwise, and for a damaged row (not
a list of :data:`~cloudphys.scope.geometry.N_GEOMETRIC_FEATURES` finite numbers), the features are
computed again -- the strings stay valid.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["ScopeCache", "cache_dir", "converter_fingerprint", "file_sha256", "geometry_fingerprint"]

_FORMAT = 4  # 4: content hash + symmetry warnings


def cache_dir() -> Path:
    """The cache directory: ``$CLOUDPHYS_CACHE`` if set, else the per-user cache directory."""
    env = os.environ.get("CLOUDPHYS_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cloudphys"))


_FINGERPRINT: str | None = None


def converter_fingerprint() -> str:
    """Hash of the reader and converter sources and the spglib/pymatgen versions (invalidation)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import importlib.metadata as md

        h = hashlib.sha256()
        here = Path(__file__).resolve().parent
        for root in (here.parent / "scope", here):
            for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.json")):
                if "__pycache__" in path.parts:
                    continue
                h.update(f"{root.name}/{path.relative_to(root).as_posix()}".encode())
                h.update(path.read_bytes())
        for dist in ("spglib", "pymatgen", "ase"):
            try:
                h.update(f"{dist}={md.version(dist)}".encode())
            except md.PackageNotFoundError:
                h.update(f"{dist}=none".encode())
        _FINGERPRINT = h.hexdigest()[:16]
    return _FINGERPRINT


_GEOMETRY_FINGERPRINT: str | None = None


def geometry_fingerprint() -> str:
    """Hash of the sources that compute geometric features (``cloudphys/scope/geometry.py`` and
    ``elements.py``) and the pymatgen version (masses, radii): cached geometry rows computed under
    another one are computed again. (How structures are read is in :func:`converter_fingerprint`.)"""
    global _GEOMETRY_FINGERPRINT
    if _GEOMETRY_FINGERPRINT is None:
        import importlib.metadata as md

        h = hashlib.sha256()
        scope = Path(__file__).resolve().parent.parent / "scope"
        for name in ("geometry.py", "elements.py"):
            h.update(name.encode())
            h.update((scope / name).read_bytes())
        try:
            h.update(f"pymatgen={md.version('pymatgen')}".encode())
        except md.PackageNotFoundError:
            h.update(b"pymatgen=none")
        _GEOMETRY_FINGERPRINT = h.hexdigest()[:16]
    return _GEOMETRY_FINGERPRINT


def _geometry_row(value: Any) -> list[float] | None:
    """A cached geometry row if it is sound (a list of N_GEOMETRIC_FEATURES finite numbers), else None."""
    from ..scope.geometry import N_GEOMETRIC_FEATURES

    if not isinstance(value, list) or len(value) != N_GEOMETRIC_FEATURES:
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value):
        return None
    return [float(v) for v in value]


def file_sha256(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """SHA-256 (hex) of the bytes of ``path`` (read in 1 MiB chunks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _safe_name(name: str) -> str:
    """A file name for the cache: the source's name with anything unusual replaced (readability only)."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in name)[:80] or "source"


def _parses(text: str) -> bool:
    from ..scope import parse_cached

    try:
        parse_cached(text)
    except Exception:  # any damage: the entry is converted again
        return False
    return True


class ScopeCache:
    """SCOPE strings converted from the structures of one source file.

    :param source: the file the structures come from (the SHA-256 of its bytes is the key).
    :param settings: everything else that changes a result (dialect, tolerances, limits...).
    :param root: cache directory (default :func:`cache_dir`).
    """

    def __init__(self, source: str | os.PathLike[str], *, settings: dict[str, Any],
                 root: str | os.PathLike[str] | None = None) -> None:
        src = Path(source).resolve()
        content = file_sha256(src)
        key = json.dumps([_FORMAT, content, converter_fingerprint(), settings], sort_keys=True, default=repr)
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        base = Path(root).expanduser() if root is not None else cache_dir()
        self.path = base / "scope" / f"{_safe_name(src.name)}.{settings.get('dialect', 'default')}.{digest}.json"
        self.scope: dict[str, str] = {}
        self.n_atoms: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.warnings: dict[str, str] = {}  # symmetry_warning of converted items that have one
        #: standardised geometric features of converted items, or why there are none (geometry_fingerprint)
        self.geometry: dict[str, list[float]] = {}
        self.geometry_errors: dict[str, str] = {}
        self._meta = {"sha256": content, "converter": converter_fingerprint(), "settings": settings,
                      "format": _FORMAT}
        self._read()

    def _read(self) -> None:
        """Load the cache file; whatever is damaged in it is left out (and so converted again)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                blob = json.load(fh)
        except (OSError, ValueError, RecursionError):
            return
        if not isinstance(blob, dict) or not isinstance(blob.get("meta"), dict):
            return
        if blob["meta"].get("sha256") != self._meta["sha256"] or blob["meta"].get("format") != _FORMAT:
            return  # another file's entries under this name: never used
        parts = [blob.get(k, {}) for k in ("scope", "errors", "n_atoms", "warnings")]
        if not all(isinstance(p, dict) for p in parts):
            return
        scope, errors, n_atoms, warnings = parts
        self.scope = {str(k): v for k, v in scope.items() if isinstance(v, str) and _parses(v)}
        self.errors = {str(k): v for k, v in errors.items() if isinstance(v, str) and str(k) not in self.scope}
        self.n_atoms = {str(k): float(v) for k, v in n_atoms.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v > 0}
        for k in [k for k in self.scope if k in n_atoms and k not in self.n_atoms]:  # a damaged count: redo
            del self.scope[k]
        self.warnings = {str(k): v for k, v in warnings.items() if isinstance(v, str) and str(k) in self.scope}
        geo = blob.get("geometry")
        self.geometry, self.geometry_errors = {}, {}
        if isinstance(geo, dict) and geo.get("fingerprint") == geometry_fingerprint():
            rows, errors = geo.get("rows"), geo.get("errors")
            for k, v in (rows.items() if isinstance(rows, dict) else ()):
                row = _geometry_row(v)
                if row is not None and str(k) in self.scope:  # a damaged row: computed again
                    self.geometry[str(k)] = row
            self.geometry_errors = {str(k): v for k, v in (errors.items() if isinstance(errors, dict) else ())
                                    if isinstance(v, str) and str(k) in self.scope and str(k) not in self.geometry}

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys among ``keys`` that have neither a string nor an error cached."""
        return [k for k in keys if k not in self.scope and k not in self.errors]

    def update(self, scope: dict[str, str], n_atoms: dict[str, float], errors: dict[str, str],
               warnings: dict[str, str] | None = None, *, geometry: dict[str, list[float]] | None = None,
               geometry_errors: dict[str, str] | None = None) -> None:
        """Add results (``warnings``: the symmetry warnings of converted items; ``geometry``: their
        standardised geometric features, ``geometry_errors``: why an item has none) and write the
        cache file atomically (silently skipped if not writable)."""
        self._read()  # merge with what a concurrent process may have written
        self.scope.update(scope)
        self.n_atoms.update(n_atoms)
        self.errors.update(errors)
        for key in scope:
            self.errors.pop(key, None)
            self.warnings.pop(key, None)
        for key in errors:  # an item that no longer converts has no geometry either
            self.geometry.pop(key, None)
            self.geometry_errors.pop(key, None)
        self.warnings.update(warnings or {})
        for key, row in (geometry or {}).items():
            if key in self.scope and _geometry_row(row) is not None:
                self.geometry[key] = [float(v) for v in row]
                self.geometry_errors.pop(key, None)
        for key, why in (geometry_errors or {}).items():
            if key in self.scope:
                self.geometry_errors[key] = why
                self.geometry.pop(key, None)
        blob = {"meta": self._meta, "scope": self.scope, "n_atoms": self.n_atoms, "errors": self.errors,
                "warnings": self.warnings}
        if self.geometry or self.geometry_errors:
            blob["geometry"] = {"fingerprint": geometry_fingerprint(), "rows": self.geometry,
                                "errors": self.geometry_errors}
        from ..outputs import atomic_write

        text = json.dumps(blob)  # one string, then one write: json.dump's many small writes cost more (same bytes)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.path, "w", fsync=False) as fh:  # a cache: no fsync
                fh.write(text)
        except OSError:
            pass
