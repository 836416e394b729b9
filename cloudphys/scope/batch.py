"""Batch conversion of many structures to SCOPE strings, optionally over worker processes.

Every input gives exactly one :class:`ConversionResult`, in input order: either a string or an error
message naming the reason. Nothing is dropped.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import sys
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

from ..errors import CloudphysError, ScopeError
from .dialects import load_generator_table
from .record import DIALECTS
from .structure import from_structure, structure_from_text

__all__ = ["ConversionResult", "StructureText", "convert_many", "iter_inputs", "open_text", "read_error_reason",
           "unreadable_message", "READ_ERRORS", "STRUCTURE_SUFFIXES"]

#: File names read as single structures when a folder is given (besides POSCAR*/CONTCAR*).
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar")


@dataclass(frozen=True)
class ConversionResult:
    """One input's outcome: ``scope`` is the string, or ``None`` with ``error`` saying why."""

    id: str
    scope: str | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class StructureText:
    """A structure given as text (e.g. a CIF column of a CSV), parsed in the worker."""

    text: str
    fmt: str = "cif"


def _split_item(index: int, item: Any) -> tuple[str, Any]:
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], (str, int)):
        return str(item[0]), item[1]
    if isinstance(item, Mapping) and "structure" in item and "sites" not in item:
        return str(item.get("id", index)), item["structure"]
    if isinstance(item, (str, os.PathLike)):
        return str(item), item
    return str(index), item


@dataclass(frozen=True)
class _Settings:
    dialect: str
    table: Any  # GeneratorTable or None
    symprec: float
    angle_tolerance: float
    allow_disordered: bool


_SETTINGS: _Settings | None = None  # set in each worker by _worker_init


def _convert_one(job: tuple[str, Any], settings: _Settings | None = None) -> ConversionResult:
    ident, structure = job
    st = settings or _SETTINGS
    assert st is not None
    try:
        if isinstance(structure, _Failure):
            return ConversionResult(ident, None, structure.message)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen's CIF parser warns about every oddity
            if isinstance(structure, StructureText):
                structure = structure_from_text(structure.text, structure.fmt)
            rec = from_structure(structure, st.symprec, st.angle_tolerance, allow_disordered=st.allow_disordered)
        return ConversionResult(ident, rec.render(st.dialect, st.table), None)
    except CloudphysError as exc:
        return ConversionResult(ident, None, str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad structure must not stop a batch
        return ConversionResult(ident, None, f"{type(exc).__name__}: {exc}")


def _worker_init(settings: _Settings) -> None:
    global _SETTINGS
    _SETTINGS = settings
    # Worker processes must not oversubscribe the cores the pool already uses.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def convert_many(
    items: Iterable[Any],
    *,
    dialect: str = "default",
    generator_table: Any = None,
    symprec: float = 0.01,
    angle_tolerance: float = 5,
    workers: int = 1,
    progress: bool = True,
    allow_disordered: bool = False,
    chunksize: int | None = None,
) -> list[ConversionResult]:
    """Convert many structures; one result per input, in input order.

    :param items: each an ``(id, structure)`` pair, a mapping with ``id`` and ``structure`` (a row of
        phonondb's ``materials.jsonl.gz``), a path (its id), or a bare structure (id = its index).
        A structure is anything :func:`~cloudphys.scope.from_structure` accepts, or a
        :class:`StructureText`.
    :param dialect: ``"default"`` or ``"cloud"`` (then ``generator_table`` or
        ``$CLOUDPHYS_GENERATOR_TABLE`` is required; checked before any work starts).
    :param symprec: spglib distance tolerance in Å; ``angle_tolerance`` in degrees.
    :param workers: processes; 1 converts in this process.
    :param progress: show a progress bar (on stderr, only when it is a terminal).
    :param allow_disordered: see :func:`~cloudphys.scope.from_structure`.
    """
    if dialect not in DIALECTS:
        raise ScopeError(f"unknown SCOPE dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    table = load_generator_table(generator_table) if dialect == "cloud" else None
    if not (isinstance(symprec, (int, float)) and symprec > 0):
        raise ScopeError(f"symprec must be a positive number of Å, got {symprec!r}")
    settings = _Settings(dialect, table, float(symprec), float(angle_tolerance), bool(allow_disordered))
    jobs = [_split_item(i, item) for i, item in enumerate(items)]
    if not jobs:
        return []
    workers = max(1, int(workers))
    bar = _progress(len(jobs), progress)
    results: list[ConversionResult] = []
    try:
        if workers == 1 or len(jobs) == 1:
            for job in jobs:
                results.append(_convert_one(job, settings))
                bar.update(1)
        else:
            import multiprocessing as mp

            size = chunksize or max(1, min(64, len(jobs) // (workers * 8)))
            with mp.get_context().Pool(workers, initializer=_worker_init, initargs=(settings,)) as pool:
                for res in pool.imap(_convert_one, jobs, chunksize=size):
                    results.append(res)
                    bar.update(1)
    finally:
        bar.close()
    if len(results) != len(jobs):  # pragma: no cover - imap yields one result per job
        raise ScopeError(f"internal error: {len(jobs)} inputs but {len(results)} results")
    return results


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, enabled: bool) -> Any:
    if not enabled or total < 50 or not sys.stderr.isatty():
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="structure", desc="SCOPE", file=sys.stderr)


# --------------------------------------------------------------------------------------------
# inputs for the CLI: files, folders, JSON lines, CSV with a CIF column
# --------------------------------------------------------------------------------------------

def open_text(path: Path, newline: str | None = None) -> io.TextIOBase:
    """A UTF-8 text file, gunzipped on the fly if its name ends in ``.gz``."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline=newline)  # type: ignore[return-value]
    return open(path, encoding="utf-8", newline=newline)  # type: ignore[return-value]


#: What reading an input file can raise: not UTF-8, a corrupt or truncated gzip, an unreadable
#: file (permissions, a folder, I/O), a malformed CSV (e.g. a NUL byte).
READ_ERRORS: tuple[type[BaseException], ...] = (UnicodeDecodeError, OSError, EOFError, zlib.error, csv.Error)


def read_error_reason(exc: BaseException) -> str:
    """A short reason for one of :data:`READ_ERRORS` (without the file name)."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte 0x{exc.object[exc.start]:02x} cannot be decoded); save it as UTF-8"
    if isinstance(exc, gzip.BadGzipFile):
        return f"not a valid gzip file ({exc})"
    if isinstance(exc, EOFError):
        return "the gzip file is truncated (the compressed data ends before its end-of-stream marker)"
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data ({exc})"
    if isinstance(exc, csv.Error):
        return f"malformed CSV ({exc})"
    if isinstance(exc, IsADirectoryError):
        return "it is a folder, not a file"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror[0].lower() + exc.strerror[1:]
    return f"{type(exc).__name__}: {exc}"


def unreadable_message(path: Path, lines_read: int, exc: BaseException) -> str:
    """The error of an input file that could not be read from line ``lines_read + 1`` on."""
    reason = read_error_reason(exc)
    if lines_read == 0:
        return f"{path}: cannot read the file: {reason}"
    return f"{path}: cannot read from line {lines_read + 1} on: {reason} (lines 1-{lines_read} were read)"


def _unreadable(path: Path, lines_read: int, exc: BaseException) -> tuple[str, _Failure]:
    """The one error row for an input file that could not be read (from ``lines_read + 1`` on)."""
    return str(path), _Failure(unreadable_message(path, lines_read, exc))


def _stem_suffix(path: Path) -> str:
    name = path.name.lower()
    return name[:-3] if name.endswith(".gz") else name


_LOOKED_FOR = ", ".join([f"*{s}" for s in STRUCTURE_SUFFIXES] + ["POSCAR*", "CONTCAR*"]) + ", in any case, recursively"


def _is_structure_file(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith(STRUCTURE_SUFFIXES) or name.startswith(("poscar", "contcar"))


def iter_inputs(paths: Sequence[str | os.PathLike[str]]) -> Iterator[tuple[str, Any]]:
    """``(id, structure)`` pairs from files, folders, JSON lines and CSVs, in the given order.

    * a CIF/POSCAR file: id = its path;
    * a folder: its CIF/POSCAR files (recursively, sorted by path); a folder without any is one
      failed input naming the file patterns looked for;
    * ``*.jsonl[.gz]``: one JSON object a line with ``id`` and ``structure`` (a pymatgen
      ``Structure.as_dict()``); a line that is not valid JSON becomes an input whose conversion fails;
    * ``*.csv[.gz]``: a ``cif`` column; id = the ``material_id`` or ``id`` column, else ``FILE:ROW``.

    A JSON-lines or CSV file that cannot be read (not UTF-8, corrupt or truncated gzip) gives the
    inputs read before the failure and then one failed input, id = the file, saying from which line on
    and why.
    """
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            try:
                files = sorted(p for p in path.rglob("*") if p.is_file() and _is_structure_file(p))
            except OSError as exc:
                yield str(path), _Failure(f"{path}: cannot list the folder: {read_error_reason(exc)}")
                continue
            if not files:
                yield str(path), _Failure(f"{path}: the folder has no structure files (looked for {_LOOKED_FOR})")
            for p in files:
                yield str(p), p
            continue
        if not path.exists():
            yield str(path), _Failure(f"{path}: no such file or folder")
            continue
        kind = _stem_suffix(path)
        if kind.endswith((".jsonl", ".ndjson")):
            yield from _iter_jsonl(path)
        elif kind.endswith(".csv"):
            yield from _iter_csv(path)
        else:
            yield str(path), path


@dataclass(frozen=True)
class _Failure:
    """An input that could not even be read; converting it yields its message as the error."""

    message: str


def _iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    lines_read = 0
    try:
        with open_text(path) as fh:
            for lineno, line in enumerate(fh, start=1):
                lines_read = lineno
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    yield where, _Failure(f"{where}: not valid JSON ({exc})")
                    continue
                if not isinstance(row, dict) or "structure" not in row:
                    yield where, _Failure(f"{where}: expected an object with 'id' and 'structure'")
                    continue
                yield str(row.get("id", where)), row["structure"]
    except READ_ERRORS as exc:
        yield _unreadable(path, lines_read, exc)


def _iter_csv(path: Path) -> Iterator[tuple[str, Any]]:
    csv.field_size_limit(1 << 30)
    lines_read = 0
    try:
        with open_text(path) as fh:
            reader = csv.DictReader(fh)
            fields = reader.fieldnames or []
            lines_read = reader.line_num
            if "cif" not in fields:
                yield str(path), _Failure(f"{path}: a CSV input needs a 'cif' column (has {', '.join(fields)})")
                return
            id_col = next((c for c in ("material_id", "id") if c in fields), None)
            for row_no, row in enumerate(reader, start=1):
                lines_read = reader.line_num
                ident = row.get(id_col) if id_col else None
                yield (ident or f"{path}:{row_no}"), StructureText(row["cif"] or "", "cif")
    except READ_ERRORS as exc:
        yield _unreadable(path, lines_read, exc)


def convert_inputs(
    paths: Sequence[str | os.PathLike[str]], **kwargs: Any
) -> list[ConversionResult]:
    """:func:`convert_many` over :func:`iter_inputs`; unreadable inputs give error rows."""
    return convert_many(list(iter_inputs(paths)), **kwargs)


def write_results(results: Sequence[ConversionResult], out: str | os.PathLike[str] | None) -> None:
    """Write ``id, scope, error`` rows as CSV (stdout or ``*.csv``) or JSON lines (``*.jsonl``)."""
    if out is not None and str(out).endswith(".jsonl"):
        with open(out, "w", encoding="utf-8") as fh:
            for r in results:
                fh.write(json.dumps({"id": r.id, "scope": r.scope, "error": r.error}) + "\n")
        return
    fh = open(out, "w", encoding="utf-8", newline="") if out is not None else sys.stdout
    try:
        w = csv.writer(fh)
        w.writerow(["id", "scope", "error"])
        for r in results:
            w.writerow([r.id, r.scope or "", r.error or ""])
    finally:
        if out is not None:
            fh.close()


__all__ += ["convert_inputs", "write_results"]
