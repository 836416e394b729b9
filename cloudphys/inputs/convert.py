"""``to_records``: the one converter from input items to SCOPE records (cached, in workers).

Structures go through :func:`cloudphys.scope.convert_many` (spglib, optional worker processes,
optional per-item watchdog); items read from files are looked up in / added to the per-user
:class:`~cloudphys.inputs.cache.ScopeCache`. Given SCOPE strings are parsed with
:func:`cloudphys.scope.parse`. Every item ends with ``.record`` and ``.scope`` set, or ``.error``.

With ``geometry=True`` (a model that reads geometric inputs, ``encoder.geometric_features``) every
item also gets ``.geometry``, its standardised geometric features
(:func:`cloudphys.scope.geometry.geometric_features`), or the reason there are none as its error:
computed where the structure is converted (in the workers too) and kept in the SCOPE cache beside the
string of an item read from a file, so predicting the same files again computes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from ..errors import CloudphysError, ConfigError, ScopeError
from ..scope import DIALECTS, convert_many, dialect_of, load_generator_table, parse, parse_cached
from ..scope.symmetry import DEFAULT_ANGLE_TOLERANCE, DEFAULT_SYMPREC, check_tolerances
from .cache import ScopeCache
from .items import InputItem
from .limits import Limits, as_limits

__all__ = ["convert_inputs", "item_geometry", "to_records"]


def to_records(
    items: Sequence[InputItem],
    *,
    dialect: str,
    workers: int = 1,
    cache: bool = True,
    generator_table: Any = None,
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    allow_disordered: bool = False,
    limits: Limits | dict[str, Any] | None = None,
    progress: bool = False,
    geometry: bool = False,
) -> list[InputItem]:
    """Fill ``.scope``, ``.record`` and ``.n_atoms`` (or ``.error``) of every item; returns ``items``.

    :param dialect: ``"default"`` or ``"cloud"`` -- the dialect of the strings converted from
        structures. Given SCOPE strings are parsed (``.record``); a given default-dialect string
        is replaced by its canonical rendering (``.record.render()``), whatever ``dialect`` is; a
        cloud-dialect string is kept as written (byte for byte).
    :param workers: processes for the spglib conversion (1: in this process).
    :param cache: look up / store the strings of items read from files in the per-user cache.
    :param generator_table: CLOUD's table for ``dialect="cloud"`` (a path or mapping; default
        ``$CLOUDPHYS_GENERATOR_TABLE``), loaded with :func:`cloudphys.scope.load_generator_table`.
    :param symprec: spglib's distance tolerance (Å) or ``"auto"`` (:mod:`cloudphys.scope.symmetry`);
        ``angle_tolerance`` in degrees. A structure whose symmetry is far lower than at a looser
        tolerance gets ``.symmetry_warning``.
    :param limits: per-item limits; ``max_seconds`` set runs conversion under a watchdog.
    :param geometry: also give every item ``.geometry`` (the ``[N_GEOMETRIC_FEATURES]`` standardised
        geometric features of its structure; computed with the conversion, in the workers too, and
        for items read from files kept in the cache beside their strings) or, where there are none,
        the reason as its error (:data:`~cloudphys.scope.geometry.NEEDS_STRUCTURE` for a SCOPE
        string given without a structure). Items given as objects are computed on every call.
    :raises ScopeError: an unknown dialect or a missing/invalid generator table (before any work).
    :raises ConfigError: a tolerance out of range (before any work).
    """
    if dialect not in DIALECTS:
        raise ScopeError(f"unknown SCOPE dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    symprec, angle_tolerance = check_tolerances(symprec, angle_tolerance, error=ConfigError)
    table = load_generator_table(generator_table) if dialect == "cloud" else None
    lim = as_limits(limits)
    for it in items:
        if it.error is None and it.scope is not None and it.record is None:
            try:
                it.record = parse(it.scope)
            except CloudphysError as exc:
                it.fail(f"not a SCOPE string: {exc}")
                continue
            if dialect_of(it.scope) == "default":  # read as its canonical string (issue 13); cloud strings as given
                it.scope = it.record.render()
    todo = [it for it in items if it.error is None and it.scope is None]
    if not todo:
        if geometry:
            _geometry_rest(items)
        return list(items)
    settings = {"dialect": dialect, "symprec": symprec, "angle_tolerance": angle_tolerance,
                "allow_disordered": bool(allow_disordered), "limits": asdict(lim) | {"max_seconds": None}}
    caches: dict[str, ScopeCache] = {}
    pending: list[InputItem] = []
    for it in todo:
        c = None
        if cache and it.source is not None:
            c = caches.get(it.source)
            if c is None:
                try:
                    c = caches[it.source] = ScopeCache(it.source, settings=settings)
                except OSError:
                    c = None
        if c is not None and not c.missing([_key(it)]):
            k = _key(it)
            _finish(it, c.scope.get(k), c.n_atoms.get(k), c.errors.get(k), c.warnings.get(k))
            if geometry and it.error is None:
                _cached_geometry(it, c)
        else:
            pending.append(it)
    new: dict[str, _NewEntries] = {}
    if pending:
        results = convert_many(
            [(it.id, _payload(it)) for it in pending], dialect=dialect, generator_table=table,
            symprec=symprec, angle_tolerance=angle_tolerance, workers=workers, progress=progress,
            allow_disordered=allow_disordered, timeout=lim.max_seconds, geometry=geometry,
        )
        for it, res in zip(pending, results):
            _finish(it, res.scope, res.n_atoms, res.error, res.symmetry_warning)
            if geometry and it.error is None:
                if res.geometry is not None:
                    it.geometry = np.asarray(res.geometry, dtype=np.float64)
                elif res.geometry_error is not None:
                    it.fail(res.geometry_error)
            if it.source in caches and not res.timed_out:
                e = new.setdefault(it.source, _NewEntries())
                k = _key(it)
                if res.error is None and res.scope is not None:
                    e.scope[k] = res.scope
                    if res.n_atoms is not None:
                        e.n_atoms[k] = float(res.n_atoms)
                    if res.symmetry_warning:
                        e.warnings[k] = res.symmetry_warning
                    if res.geometry is not None:
                        e.geometry[k] = list(res.geometry)
                    elif res.geometry_error is not None:
                        e.geometry_errors[k] = res.geometry_error
                else:
                    e.errors[k] = str(res.error)
    if geometry:  # cached strings without (sound) cached rows: computed here, then kept
        converted = {id(it) for it in pending}
        for it in todo:
            if it.error is None and it.geometry is None and it.source in caches and id(it) not in converted:
                row, why = _compute_geometry(it)
                e = new.setdefault(it.source, _NewEntries())
                if row is not None:
                    e.geometry[_key(it)] = [float(v) for v in row]
                elif why is not None:
                    e.geometry_errors[_key(it)] = why
        _geometry_rest(items)
    for src, e in new.items():
        caches[src].update(e.scope, e.n_atoms, e.errors, e.warnings, geometry=e.geometry,
                           geometry_errors=e.geometry_errors)
    return list(items)


class _NewEntries:
    """What one source file's cache gains in a call."""

    def __init__(self) -> None:
        self.scope: dict[str, str] = {}
        self.n_atoms: dict[str, float] = {}
        self.errors: dict[str, str] = {}
        self.warnings: dict[str, str] = {}
        self.geometry: dict[str, list[float]] = {}
        self.geometry_errors: dict[str, str] = {}


def _cached_geometry(it: InputItem, c: ScopeCache) -> None:
    """The item's geometry row (or its reason) from the cache, if it holds a sound one."""
    k = _key(it)
    if k in c.geometry:
        it.geometry = np.asarray(c.geometry[k], dtype=np.float64)
    elif k in c.geometry_errors:
        it.fail(c.geometry_errors[k])


def _compute_geometry(it: InputItem) -> tuple[np.ndarray | None, str | None]:
    """Compute the item's geometry here: ``(row, None)`` (also set as ``.geometry``), or ``(None,
    reason)`` with the item failed for a reason worth keeping (``(None, None)``: the structure could
    not be read, or there is none -- the item's error says why)."""
    from ..scope.geometry import NEEDS_STRUCTURE, geometric_features

    if it.raw is None and it._structure is None:
        it.fail(NEEDS_STRUCTURE)
        return None, None
    structure = it.structure  # parsed on first use (a parse failure is the item's error)
    if structure is None:
        if it.error is None:
            it.fail(NEEDS_STRUCTURE)
        return None, None
    try:
        row = geometric_features(structure)
    except Exception as exc:  # any failure is this item's error, the rest of the batch goes on
        why = f"no geometric features ({type(exc).__name__}: {exc})"
        it.fail(why)
        return None, why
    it.geometry = row
    return row, None


def _geometry_rest(items: Sequence[InputItem]) -> None:
    """Every good item still without ``.geometry`` (given SCOPE strings, objects converted before):
    computed here, not cached."""
    for it in items:
        if it.error is None and it.geometry is None:
            _compute_geometry(it)


def item_geometry(it: InputItem) -> np.ndarray | None:
    """The item's standardised geometric features: ``.geometry`` if :func:`to_records` gave it one,
    else computed now (and set); ``None`` with the item's error set where there are none."""
    if it.error is None and it.geometry is None:
        _compute_geometry(it)
    return it.geometry if it.error is None else None


def _key(it: InputItem) -> str:
    """The item's place inside its source file (``:LINE``, ``@K``, or ``""`` for the whole file), so a
    file named by another path (relative, absolute, a link) finds the same cache entries."""
    src = it.source or ""
    return it.name.removeprefix(src)


def _payload(it: InputItem) -> Any:
    s = it._structure
    return s if s is not None else it.raw


def _finish(it: InputItem, scope: str | None, n_atoms: float | None, error: str | None,
            symmetry_warning: str | None = None) -> None:
    if error is not None or scope is None:
        it.fail(error or "the converter returned no string")
        return
    it.scope = scope
    it.symmetry_warning = symmetry_warning
    if it.n_atoms is None and n_atoms is not None:
        it.n_atoms = float(n_atoms)
    try:  # the cached parse: featurizing reads the same string's record again (parse_cached)
        it.record = parse_cached(scope)
    except CloudphysError as exc:  # pragma: no cover - the converter renders parseable strings
        it.fail(f"internal error: the converted string does not parse ({exc})")


def convert_inputs(sources: Any, *, dialect: str = "default", generator_table: Any = None,
                   limits: Limits | dict[str, Any] | None = None, column: str | None = None,
                   **kwargs: Any) -> list[InputItem]:
    """:func:`~cloudphys.inputs.read_inputs` then :func:`to_records` (the dialect and the generator
    table are checked before anything is read)."""
    from .items import read_inputs

    if dialect not in DIALECTS:
        raise ScopeError(f"unknown SCOPE dialect {dialect!r}; choose one of {', '.join(DIALECTS)}")
    table = load_generator_table(generator_table) if dialect == "cloud" else None
    lim = as_limits(limits)
    items = read_inputs(sources, limits=lim, column=column)
    return to_records(items, dialect=dialect, generator_table=table, limits=lim, **kwargs)
