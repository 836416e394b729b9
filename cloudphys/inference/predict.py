"""The prediction core: input items → SCOPE records → tokens (once) → latents and observables.

:func:`predict_with_members` is the core: it converts the items' structures to the SCOPE dialect the
model was trained on (:func:`prepare_items`), checks and tokenizes every string once
(:func:`~cloudphys.modeling.encoding.check_tokens`), runs the model (and an ensemble's members, on
the same tokens) over the good ones in batches and returns :class:`ItemPredictions` -- per-item
arrays of every observable and latent plus one error (or ``None``) per item, in input order. Nothing
is dropped: an input that cannot be read, converted or tokenized, or whose prediction is not finite,
keeps its place with its error and NaN values.

:func:`read_items` turns user inputs (one input or a list: files, folders, tables, JSON lines, ASE
formats, objects, SCOPE strings) into items through :func:`cloudphys.inputs.read_inputs` (the one
place that decides what a single input is); :func:`prepare_items` converts them with
:func:`cloudphys.inputs.to_records` (cached; the one place a default-dialect string is made
canonical). Observables are per mole of the cells described by ``n_atoms``. The user's front end is
:meth:`cloudphys.models.api.Model.predict`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..config.temperatures import parse_temperatures
from ..data.base import Examples
from ..modeling.core import predict_encoded, predict_encoded_members
from ..modeling.device import resolve_device
from ..modeling.encoding import check_tokens, encode
from ..modeling.model import ScopePhysicsModel, model_dialect
from ..scope.symmetry import DEFAULT_ANGLE_TOLERANCE, DEFAULT_SYMPREC

__all__ = [
    "ItemPredictions",
    "parse_temperatures",
    "predict_with_members",
    "prepare_items",
    "read_items",
]


def read_items(sources: Any, *, limits: Any = None) -> list[Any]:
    """Every input of ``sources`` (one input or a list of them) as :class:`cloudphys.inputs.InputItem`
    (errors recorded, never raised per item; order kept)."""
    from ..inputs import read_inputs

    return read_inputs(sources, limits=limits)


def _generator_table(dialect: str) -> Any:
    """CLOUD's generator table (fetched into the data directory) for the cloud dialect, else None."""
    if dialect != "cloud":
        return None
    from ..data.cloud import CLOUD_FILES
    from ..data.download import fetch

    return fetch(CLOUD_FILES["cloud/generator.json"], dataset="cloud")


def prepare_items(items: list[Any], dialect: str, *, workers: int = 1, generator_table: Any = None,
                  strings_per_atom: bool = False, allow_disordered: bool = False,
                  symprec: float | str = DEFAULT_SYMPREC,
                  angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE, geometry: bool = False) -> list[Any]:
    """SCOPE strings (``.scope``, ``.record``) for every item in place: structures converted to
    ``dialect``, given strings parsed (default-dialect ones made canonical by
    :func:`~cloudphys.inputs.to_records`; for a default-dialect model a cloud string too). Errors
    are recorded per item; returns ``items``.

    :param generator_table: CLOUD's table for converting structures to the cloud dialect (default:
        fetched into the data directory when a structure needs it).
    :param strings_per_atom: a SCOPE string given without ``n_atoms`` describes no cell; with this
        set it is predicted for one atom (``n_atoms`` = 1), else it is an error.
    :param allow_disordered: convert partial-occupancy structures as CLOUD's converter does.
    :param symprec: spglib's distance tolerance (Å) or ``"auto"`` for converting structures
        (:mod:`cloudphys.scope.symmetry`); ``angle_tolerance`` in degrees. An item whose symmetry is
        far lower than at a looser tolerance gets ``.symmetry_warning``.
    :param geometry: also give every item its geometric features (``.geometry``; for a model with
        ``encoder.geometric_features``): computed with the conversion and kept in the SCOPE cache
        beside the strings of items read from files (:func:`~cloudphys.inputs.to_records`).
    """
    from ..inputs import to_records

    if any(it.error is None and it.scope is None for it in items):
        table = generator_table if generator_table is not None or dialect != "cloud" else _generator_table(dialect)
        to_records(items, dialect=dialect, workers=workers, generator_table=table, allow_disordered=allow_disordered,
                   symprec=symprec, angle_tolerance=angle_tolerance, geometry=geometry)
    else:  # SCOPE strings only: parsed as given (the dialect only matters for converting structures,
        # and the cloud generator table is not needed -- nor fetched -- to parse cloud strings)
        to_records(items, dialect="default", workers=workers, geometry=geometry)
    for it in items:
        if it.error is None and it.record is not None and dialect == "default":
            it.scope = it.record.render()  # a cloud string read by a default-dialect model: its canonical string
        if it.error is None and it.n_atoms is None:
            if strings_per_atom:
                it.n_atoms = 1.0
            else:
                it.fail("the number of atoms per cell is unknown: give an n_atoms column/field with a SCOPE string")
    return items


@dataclass
class ItemPredictions:
    """What :func:`predict_with_members` returns per model (the user-facing result built on it is
    :class:`cloudphys.inference.result.Prediction`): one entry per input item, in input order.

    :ivar ids, sources, scope, errors: per item (``scope``: the string tokenized, ``None`` if there
        was none; ``errors``: ``None`` for a prediction, else why there is none).
    :ivar n_atoms: ``[N]`` atoms per cell (NaN where unknown).
    :ivar temperatures: ``[nT]`` K.
    :ivar observables: ``{name: [N, nT]}`` per mole of cells (NaN where ``errors`` is set).
    :ivar latents: ``{name: [N, *shape]}`` (NaN where ``errors`` is set).
    :ivar latent_sizes: ``{name: size}`` as the head declares them (for column names).
    """

    ids: list[str]
    sources: list[str]
    scope: list[str | None]
    n_atoms: np.ndarray
    temperatures: np.ndarray
    observables: dict[str, np.ndarray]
    latents: dict[str, np.ndarray]
    errors: list[str | None]
    latent_sizes: dict[str, int]

    def __len__(self) -> int:
        return len(self.ids)


def _check_items(model: ScopePhysicsModel, items: list[Any]) -> tuple[list[int], list[np.ndarray], list[Any]]:
    """Tokenize every pending item's string once; record why an item cannot be used as its error.

    :returns: positions of the good items, their token ids and their features (``None`` entries when
        the encoder takes no features).
    """
    pending = [k for k, it in enumerate(items) if it.error is None]
    # to_records parsed every string (.record) already: vocabulary and length remain to check
    tokens, reasons = check_tokens(model.tokenizer, [str(items[k].scope) for k in pending], validate=False)
    from ..inputs import item_geometry

    ready, ready_tokens, geos = [], [], []
    geometric = bool(getattr(model, "reads_geometry", False))
    for k, tok, why in zip(pending, tokens, reasons):
        it = items[k]
        if why is not None:
            it.fail(f"SCOPE string {why}")
            continue
        geo = item_geometry(it) if geometric else None  # cached / converted row, or computed now
        if geometric and geo is None:
            continue  # the item's error says why
        ready.append(k)
        ready_tokens.append(tok)
        geos.append(geo)
    if not ready:
        return [], [], []
    try:  # every row at once (the featurizer works row by row: the same numbers as one call per item)
        f = model.featurize([items[k].scope for k in ready], [items[k].n_atoms for k in ready],
                            geometry=np.stack(geos) if geometric else None)
    except Exception:  # some item fails: one call per item says which (its error), the others go on
        return _featurize_each(model, items, ready, ready_tokens, geos)
    if f is None:
        return ready, ready_tokens, [None] * len(ready)
    f = np.asarray(f)
    return ready, ready_tokens, [f[j] for j in range(len(ready))]


def _featurize_each(model: ScopePhysicsModel, items: list[Any], ready: list[int], tokens: list[np.ndarray],
                    geos: list[Any]) -> tuple[list[int], list[np.ndarray], list[Any]]:
    """:func:`_check_items`' features one item at a time, a failing item's exception its error."""
    good, good_tokens, feats = [], [], []
    for k, tok, geo in zip(ready, tokens, geos):
        it = items[k]
        try:  # composition features: an element the descriptors do not know is this item's error
            f = model.featurize([it.scope], [it.n_atoms], geometry=None if geo is None else geo[None])
        except Exception as exc:  # any featurizer failure is this item's error
            it.fail(f"{type(exc).__name__}: {exc}")
            continue
        good.append(k)
        good_tokens.append(tok)
        feats.append(None if f is None else np.asarray(f)[0])
    return good, good_tokens, feats


def _primitive_atoms(model: ScopePhysicsModel, items: list[Any], symprec: float | str = DEFAULT_SYMPREC,
                     angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE) -> np.ndarray | None:
    """Atoms per primitive cell of each item's structure (NaN for a string: its cell as given), only
    for a head that declares the condition ``n_atoms_primitive`` (issue 12: debye-einstein); read at
    the tolerances the structure was converted with."""
    if "n_atoms_primitive" not in getattr(model.head, "conditions", ()):
        return None
    from ..scope import primitive_atoms

    out = np.full(len(items), np.nan)
    for j, it in enumerate(items):
        structure = it.structure
        if structure is not None:
            with contextlib.suppress(Exception):  # converted once already; a failure here keeps the given cell
                out[j] = float(primitive_atoms(structure, symprec, angle_tolerance))
    return out


def predict_with_members(
    model: ScopePhysicsModel,
    members: Sequence[ScopePhysicsModel],
    items: list[Any],
    temperatures: np.ndarray | Sequence[float],
    *,
    observables: Sequence[str] | None = None,
    dialect: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    workers: int = 1,
    generator_table: Any = None,
    strings_per_atom: bool = False,
    allow_disordered: bool = False,
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
) -> tuple[ItemPredictions, list[ItemPredictions]]:
    """Latents and observables (``observables``; default: every one the head declares) of every item
    for ``model`` and for each of ``members`` (an ensemble's members; may be empty), the inputs
    converted, parsed and tokenized once for all of them.

    :param items: :class:`cloudphys.inputs.InputItem` (see :func:`read_items`), prepared in place by
        :func:`prepare_items` (``dialect``, default the model's; ``generator_table``; ``strings_per_atom``).
    :param temperatures: K, ``[nT]``.

    When ``members`` are ``model``'s own ensemble members, each member's encoder runs once per batch
    (:func:`~cloudphys.modeling.core.predict_encoded_members`): the head reads the members' mean
    latents (``model``'s prediction) and each member's latents -- the same numbers as running them one
    after the other. A member whose tokenizer differs from ``model``'s gets its own tokenization. An item whose
    prediction is not finite for any of them carries that error (the arrays of the runs before it
    keep their values; callers mask by ``errors``).
    """
    temperatures = np.asarray(temperatures, dtype=np.float64)
    obs_names = list(observables) if observables is not None else [s.name for s in model.head.observables]
    prepare_items(items, dialect or model_dialect(model), workers=workers, generator_table=generator_table,
                  strings_per_atom=strings_per_atom, allow_disordered=allow_disordered, symprec=symprec,
                  angle_tolerance=angle_tolerance,
                  geometry=any(bool(getattr(m, "reads_geometry", False)) for m in (model, *members)))
    dev = resolve_device(device)
    enc_cache: dict[int, tuple[list[int], Any]] = {}

    def encoded(m: ScopePhysicsModel) -> tuple[list[int], Any]:
        key = id(model) if m is model or _same_inputs(m, model) else id(m)
        if key not in enc_cache:
            enc_cache[key] = _encode_items(m, items, temperatures, symprec, angle_tolerance)
        return enc_cache[key]

    if members and _members_of(model, members):
        good, enc = encoded(model)
        outs: list[Any] = [None] * (1 + len(members))
        if enc is not None:
            model.to(dev)
            head_errors: dict[int, str] = {}
            outs = predict_encoded_members(model, enc, batch_size=batch_size, device=dev, observables=obs_names,
                                           errors=head_errors)
            _fail_items(items, good, head_errors)
        results = [_collect(m, items, good, out, temperatures, obs_names) for m, out in zip([model, *members], outs)]
        return results[0], results[1:]

    def run(m: ScopePhysicsModel) -> ItemPredictions:
        good, enc = encoded(m)
        out = None
        if enc is not None:
            m.to(dev)
            head_errors: dict[int, str] = {}
            out = predict_encoded(m, enc, batch_size=batch_size, device=dev, observables=obs_names,
                                  errors=head_errors)
            _fail_items(items, good, head_errors)
        return _collect(m, items, good, out, temperatures, obs_names)

    core = run(model)
    return core, [run(m) for m in members]


def _fail_items(items: list[Any], good: list[int], head_errors: dict[int, str]) -> None:
    """Give the items whose head outputs broke the contract (``predict_encoded(errors=...)``) their error."""
    for j, problem in head_errors.items():
        if items[good[j]].error is None:
            items[good[j]].fail(problem)


def _members_of(model: ScopePhysicsModel, members: Sequence[ScopePhysicsModel]) -> bool:
    """Whether ``members`` are exactly ``model``'s ensemble members (its encoders, its head, its inputs)."""
    own = getattr(model.encoder, "members", None)
    return (own is not None and hasattr(model.encoder, "member_latents") and len(own) == len(members)
            and all(m.encoder is e and m.head is model.head and _same_inputs(m, model) for m, e in zip(members, own)))


def _same_inputs(a: ScopePhysicsModel, b: ScopePhysicsModel) -> bool:
    """Do ``a`` and ``b`` read the same tokens and features (so one encoding serves both)?"""
    ta, tb = a.tokenizer, b.tokenizer
    ca, cb = getattr(a.encoder, "config", None), getattr(b.encoder, "config", None)
    return (ta.get_vocab() == tb.get_vocab() and ta.model_max_length == tb.model_max_length
            and all(getattr(ca, k, None) == getattr(cb, k, None)
                    for k in ("composition_features", "feature_layout", "geometric_features")))


def _encode_items(model: ScopePhysicsModel, items: list[Any], temperatures: np.ndarray,
                  symprec: float | str = DEFAULT_SYMPREC,
                  angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE) -> tuple[list[int], Any]:
    """The good items' positions and their encoding (tokens, features, conditions); ``None`` if none."""
    good, tokens, feats = _check_items(model, items)
    if not good:
        return good, None
    ex = Examples(ids=[items[k].id for k in good], scope=[str(items[k].scope) for k in good],  # type: ignore[misc]
                  n_atoms=np.asarray([items[k].n_atoms for k in good], dtype=np.float64), temperatures=temperatures,
                  n_atoms_primitive=_primitive_atoms(model, [items[k] for k in good], symprec,
                                                     angle_tolerance))  # issue 12 (S2)
    features = None if feats[0] is None else np.stack(feats)
    return good, encode(ex, model, tokens=tokens, features=features)


def _collect(model: ScopePhysicsModel, items: list[Any], good: list[int],
             out: tuple[dict[str, np.ndarray], dict[str, np.ndarray]] | None, temperatures: np.ndarray,
             obs_names: list[str]) -> ItemPredictions:
    """Place the predictions ``out`` of the good items in input order; NaN and the item's error where a
    value is not finite."""
    N, nT = len(items), len(temperatures)
    lat_sizes = {spec.name: int(spec.size) for spec in model.head.latents}
    preds: dict[str, np.ndarray] = {o: np.full((N, nT), np.nan) for o in obs_names}
    lats: dict[str, np.ndarray] = {}
    if out is not None:
        p, lat = out
        rows = np.asarray(good)
        for o in obs_names:
            preds[o][rows] = p[o]
        for name, v in lat.items():
            lats[name] = np.full((N, *v.shape[1:]), np.nan)
            lats[name][rows] = v
        finite = np.ones(len(good), dtype=bool)  # per good item: every value finite (one check per array)
        for arr in (*(p[o] for o in obs_names), *lat.values()):
            a = np.asarray(arr)
            finite &= np.isfinite(a.reshape(len(a), -1)).all(axis=1)
        for j, k in enumerate(good):  # never pass NaN along as a prediction
            if items[k].error is None and not finite[j]:
                items[k].fail("the model produced a non-finite value (NaN or inf) for this input")
            if items[k].error is not None:
                for arr in (*preds.values(), *lats.values()):
                    arr[k] = np.nan
    for name, size in lat_sizes.items():
        lats.setdefault(name, np.full((N,) if size == 1 else (N, size), np.nan))
    n_atoms = np.asarray([np.nan if it.n_atoms is None else float(it.n_atoms) for it in items], dtype=np.float64)
    return ItemPredictions(ids=[it.id for it in items], sources=[it.source or it.name for it in items],
                           scope=[it.scope for it in items],
                           n_atoms=n_atoms, temperatures=temperatures, observables=preds, latents=lats,
                           errors=[it.error for it in items], latent_sizes=lat_sizes)
