"""Per-user cache of SCOPE strings converted from structures.

Converting thousands of structures with spglib takes a while, so loaders that start from
structures (``phonondb-thermo``, CSV files of structures) keep the strings in
``$CLOUDPHYS_CACHE/scope/`` (default: the platform's per-user cache directory, e.g.
``~/.cache/cloudphys/scope``). Nothing is ever written to the data directory, which may be
read-only.

A cache file is keyed by the source file (resolved path, size, modification time), the converter
(a hash of the ``cloudphys.scope`` sources plus the spglib version), the dialect and ``symprec``;
any change makes a new key. Inside, ids map to strings (or to the conversion error). Only ids that
are asked for are converted, so a ``limit`` in a test converts only a few structures.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Sequence

__all__ = ["cache_dir", "converter_fingerprint", "ScopeCache", "convert_structures"]


def cache_dir() -> Path:
    """The cache directory: ``$CLOUDPHYS_CACHE`` if set, else the per-user cache directory."""
    env = os.environ.get("CLOUDPHYS_CACHE")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cloudphys"))


_FINGERPRINT: str | None = None


def converter_fingerprint() -> str:
    """Hash of the SCOPE converter's source files and the spglib version (cache invalidation)."""
    global _FINGERPRINT
    if _FINGERPRINT is None:
        import importlib.metadata as md

        h = hashlib.sha256()
        try:
            import cloudphys.scope as scope_pkg

            for root in map(Path, getattr(scope_pkg, "__path__", [])):
                for path in sorted(root.rglob("*.py")) + sorted(root.rglob("*.json")):
                    if "__pycache__" in path.parts:
                        continue
                    h.update(path.relative_to(root).as_posix().encode())
                    h.update(path.read_bytes())
        except ImportError:
            h.update(b"no-scope")
        for dist in ("spglib", "pymatgen"):
            try:
                h.update(f"{dist}={md.version(dist)}".encode())
            except md.PackageNotFoundError:
                h.update(f"{dist}=none".encode())
        _FINGERPRINT = h.hexdigest()[:16]
    return _FINGERPRINT


class ScopeCache:
    """SCOPE strings converted from the structures of one source file.

    :param source: the file the structures come from (its path, size and mtime form the key).
    :param dialect: SCOPE dialect of the strings.
    :param symprec: spglib tolerance used for conversion (Å).
    :param root: cache directory (default :func:`cache_dir`).
    """

    def __init__(self, source: str | os.PathLike[str], *, dialect: str = "default", symprec: float = 0.01,
                 root: str | os.PathLike[str] | None = None) -> None:
        src = Path(source).resolve()
        st = src.stat()
        key = json.dumps(
            [str(src), st.st_size, st.st_mtime_ns, converter_fingerprint(), dialect, repr(float(symprec))]
        )
        digest = hashlib.sha256(key.encode()).hexdigest()[:24]
        base = Path(root).expanduser() if root is not None else cache_dir()
        self.path = base / "scope" / f"{src.name}.{dialect}.{digest}.json"
        self.dialect = dialect
        self.symprec = float(symprec)
        self.scope: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self._meta = {"source": str(src), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                      "converter": converter_fingerprint(), "dialect": dialect, "symprec": self.symprec}
        self._read()

    def _read(self) -> None:
        try:
            with open(self.path, encoding="utf-8") as fh:
                blob = json.load(fh)
        except (OSError, ValueError):
            return
        if isinstance(blob, dict):
            self.scope = dict(blob.get("scope", {}))
            self.errors = dict(blob.get("errors", {}))

    def missing(self, ids: Iterable[str]) -> list[str]:
        """The ids among ``ids`` that have neither a string nor an error cached."""
        return [i for i in ids if i not in self.scope and i not in self.errors]

    def update(self, scope: dict[str, str], errors: dict[str, str]) -> None:
        """Add results and write the cache file atomically (silently skipped if not writable)."""
        self._read()  # merge with what a concurrent process may have written
        self.scope.update(scope)
        self.errors.update(errors)
        for key in scope:
            self.errors.pop(key, None)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".scope.", suffix=".json", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump({"meta": self._meta, "scope": self.scope, "errors": self.errors}, fh)
            os.replace(tmp, self.path)
        except OSError:
            pass


def convert_structures(
    items: Sequence[tuple[str, Any]],
    *,
    dialect: str = "default",
    symprec: float = 0.01,
    workers: int = 1,
    progress: bool = False,
    generator_table: Any = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Convert ``(id, structure)`` pairs to SCOPE strings with :func:`cloudphys.scope.convert_many`.

    :returns: ``(scope, errors)``: id → string for successes, id → message for failures.
    """
    if not items:
        return {}, {}
    from .. import scope as scope_mod

    results = scope_mod.convert_many(
        list(items), dialect=dialect, generator_table=generator_table, symprec=symprec, workers=workers,
        progress=progress,
    )
    ok: dict[str, str] = {}
    bad: dict[str, str] = {}
    for (given_id, _), res in zip(items, results):
        rid = getattr(res, "id", None)
        rid = str(rid) if rid is not None else given_id
        if getattr(res, "error", None):
            bad[rid] = str(res.error)
        elif getattr(res, "scope", None):
            ok[rid] = str(res.scope)
        else:
            bad[rid] = "converter returned no string"
    return ok, bad
