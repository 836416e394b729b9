"""Batch conversion of many structures to SCOPE strings, optionally over worker processes.

Every input gives exactly one :class:`ConversionResult`, in input order: either a string or an error
message naming the reason. Nothing is dropped. Reading inputs (files, folders, tables) is
:mod:`cloudphys.inputs`' job; this module converts what it read. An item may be *deferred*: any
object with a ``load_structure()`` method is loaded in the worker (so parsing runs in parallel too).
With ``timeout`` set, conversion runs in worker processes and an item still running after
``timeout`` seconds is stopped (its worker is replaced) and reported.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import CloudphysError, ScopeError
from .generators import DIALECTS, load_generator_table
from .structure import analyze_cell
from .symmetry import DEFAULT_ANGLE_TOLERANCE, DEFAULT_SYMPREC, check_tolerances

__all__ = ["ConversionResult", "convert_many", "write_results"]


@dataclass(frozen=True)
class ConversionResult:
    """One input's outcome: ``scope`` is the string, or ``None`` with ``error`` saying why."""

    id: str
    scope: str | None
    error: str | None = None
    n_atoms: int | None = None  # atoms in the cell given
    timed_out: bool = False
    #: the symmetry found is far lower than at a looser tolerance (:mod:`cloudphys.scope.symmetry`)
    symmetry_warning: str | None = None
    #: with ``convert_many(geometry=True)``: the standardised geometric features of a converted
    #: structure (:func:`cloudphys.scope.geometry.geometric_features`), or why there are none
    geometry: tuple[float, ...] | None = None
    geometry_error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


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
    symprec: float | str
    angle_tolerance: float
    allow_disordered: bool
    geometry: bool = False


_SETTINGS: _Settings | None = None  # set in each worker by _worker_init


def _convert_one(job: tuple[str, Any], settings: _Settings | None = None) -> ConversionResult:
    ident, structure = job
    st = settings or _SETTINGS
    assert st is not None
    n_atoms = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pymatgen's parsers warn about every oddity
            if hasattr(structure, "load_for_conversion"):  # a plain P1 CIF: its cell, no Structure built
                structure = structure.load_for_conversion()
            elif hasattr(structure, "load_structure"):
                structure = structure.load_structure()
            n_atoms = _atom_count(structure)
            rec, sym, cell = analyze_cell(structure, st.symprec, st.angle_tolerance,
                                          allow_disordered=st.allow_disordered)
            scope = rec.render(st.dialect, st.table)
        geo, geo_error = _geometry(cell) if st.geometry else (None, None)  # the cell just read, not built again
        return ConversionResult(ident, scope, None, n_atoms, symmetry_warning=sym.warning, geometry=geo,
                                geometry_error=geo_error)
    except CloudphysError as exc:
        return ConversionResult(ident, None, str(exc), n_atoms)
    except Exception as exc:
        return ConversionResult(ident, None, f"{type(exc).__name__}: {exc}", n_atoms)


def _geometry(structure: Any) -> tuple[tuple[float, ...] | None, str | None]:
    """The standardised geometric features of a converted structure (or of its cell, from
    :func:`~cloudphys.scope.structure.analyze_cell`), or why there are none (the message
    :func:`cloudphys.inference.predict` gives an item)."""
    from .geometry import geometric_features

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return tuple(float(v) for v in geometric_features(structure)), None
    except Exception as exc:  # any failure is this item's reason, the batch goes on
        return None, f"no geometric features ({type(exc).__name__}: {exc})"


def _atom_count(structure: Any) -> int | None:
    try:
        if isinstance(structure, Mapping):
            return len(structure["sites"])
        return len(structure)
    except (TypeError, KeyError):
        return None


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
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    workers: int = 1,
    progress: bool = True,
    allow_disordered: bool = False,
    chunksize: int | None = None,
    timeout: float | None = None,
    geometry: bool = False,
) -> list[ConversionResult]:
    """Convert many structures; one result per input, in input order.

    :param items: each an ``(id, structure)`` pair, a mapping with ``id`` and ``structure`` (a row of
        phonondb's ``materials.jsonl.gz``), a path (its id), or a bare structure (id = its index).
        A structure is anything :func:`~cloudphys.scope.from_structure` accepts, or an object
        with a ``load_structure()`` method returning one (called in the worker; a
        ``load_for_conversion()`` method, if it has one, instead: the direct CIF reader's cell).
    :param dialect: ``"default"`` or ``"cloud"`` (then ``generator_table`` or
        ``$CLOUDPHYS_GENERATOR_TABLE`` is required; checked before any work starts).
    :param symprec: spglib distance tolerance in Å, or ``"auto"`` (see :mod:`cloudphys.scope.symmetry`);
        ``angle_tolerance`` in degrees. Checked before any work starts.
    :param workers: processes; 1 converts in this process.
    :param progress: show a progress bar (on stderr, only when it is a terminal).
    :param allow_disordered: see :func:`~cloudphys.scope.from_structure`.
    :param timeout: seconds one item may take (``None``: no watchdog). When set, items run in
        ``workers`` processes; one still running ``timeout`` s after its turn came is stopped and
        gets an error row (``timed_out=True``), its worker replaced, and the batch goes on.
    :param geometry: also compute each converted structure's standardised geometric features
        (``.geometry``, or ``.geometry_error``; :func:`cloudphys.scope.geometry.geometric_features`)
        where it is converted -- in the workers, on the structure they loaded.
    """
    if dialect not in DIALECTS:
        raise ScopeError(f"unknown SCOPE dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    table = load_generator_table(generator_table) if dialect == "cloud" else None
    symprec, angle_tolerance = check_tolerances(symprec, angle_tolerance, error=ScopeError)
    settings = _Settings(dialect, table, symprec, angle_tolerance, bool(allow_disordered), bool(geometry))
    jobs = [_split_item(i, item) for i, item in enumerate(items)]
    if not jobs:
        return []
    workers = max(1, int(workers))
    bar = _progress(len(jobs), progress)
    results: list[ConversionResult] = []
    try:
        if timeout is not None:
            results = _convert_watched(jobs, settings, workers, float(timeout), bar)
        elif workers == 1 or len(jobs) == 1:
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


def _convert_watched(jobs: list[tuple[str, Any]], settings: _Settings, workers: int, timeout: float,
                     bar: Any) -> list[ConversionResult]:
    """Items in worker processes, in order, each waited for at most ``timeout`` s."""
    import multiprocessing as mp

    if not (timeout > 0):
        raise ScopeError(f"the per-item timeout must be a positive number of seconds, got {timeout!r}")
    results: list[ConversionResult] = []
    ctx = mp.get_context()
    window = max(2, 4 * workers)
    while len(results) < len(jobs):
        pool = ctx.Pool(workers, initializer=_worker_init, initargs=(settings,))
        try:
            start = len(results)
            waiting = {}
            nxt = start
            while len(results) < len(jobs):
                i = len(results)
                while nxt < len(jobs) and nxt - i < window:
                    waiting[nxt] = pool.apply_async(_convert_one, (jobs[nxt],))
                    nxt += 1
                try:
                    res = waiting.pop(i).get(timeout=timeout)
                except mp.TimeoutError:
                    results.append(ConversionResult(
                        jobs[i][0], None, f"conversion took longer than {timeout:g} s and was stopped (max_seconds; "
                        "raise it with --item-timeout)", timed_out=True))
                    bar.update(1)
                    break  # a fresh pool: the stuck worker is killed, the items after it are resubmitted
                results.append(res)
                bar.update(1)
        finally:
            pool.terminate()
            pool.join()
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


def write_results(results: Sequence[Any], out: str | os.PathLike[str] | None, *,
                  spreadsheet_safe: bool = True) -> None:
    """Write ``id, scope, error, symmetry_warning`` rows as CSV (stdout or ``*.csv``) or JSON lines (``*.jsonl``).

    ``results``: :class:`ConversionResult` or :class:`cloudphys.inputs.InputItem` (anything with
    ``id``, ``scope`` and ``error``; ``symmetry_warning`` if it has one); a failed one's scope is left
    empty, and its error does not repeat the id beside it (``nope.cif: no such file`` → ``no such file``).
    A file is written atomically (:mod:`cloudphys.outputs`); text is always encodable
    (:func:`~cloudphys.outputs.clean_text`) and, in CSV with ``spreadsheet_safe``, neutralised by OWASP's
    rule (:func:`~cloudphys.outputs.text_cell`).
    """
    from ..outputs import atomic_write, clean_text, text_cell

    def reason(r: Any) -> str | None:
        err, prefix = r.error, f"{r.id}: "
        return err[len(prefix):] if err is not None and err.startswith(prefix) and len(err) > len(prefix) else err

    if out is not None and str(out).endswith(".jsonl"):
        with atomic_write(out, "w", encoding="utf-8") as fh:
            for r in results:
                scope = clean_text(r.scope) if r.error is None and r.scope is not None else None
                warn = getattr(r, "symmetry_warning", None)
                fh.write(json.dumps({"id": clean_text(r.id), "scope": scope,
                                     "error": None if r.error is None else clean_text(reason(r)),
                                     "symmetry_warning": None if warn is None else clean_text(warn)}) + "\n")
        return

    def write(fh: Any) -> None:
        w = csv.writer(fh)
        w.writerow(["id", "scope", "error", "symmetry_warning"])
        for r in results:
            w.writerow([text_cell(r.id, spreadsheet_safe),
                        text_cell((r.scope or "") if r.error is None else "", spreadsheet_safe),
                        text_cell(reason(r) or "", spreadsheet_safe),
                        text_cell(getattr(r, "symmetry_warning", None) or "", spreadsheet_safe)])

    if out is None:
        write(sys.stdout)
        return
    with atomic_write(out, "w", encoding="utf-8", newline="") as fh:
        write(fh)

