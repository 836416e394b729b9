"""The prediction core: input items → SCOPE records → tokens (once) → latents and observables.

:func:`predict_items` is the core: it converts the items' structures to the SCOPE dialect the model
was trained on, checks and tokenizes every string once (:func:`~cloudphys.training.batching.check_tokens`),
runs the model over the good ones in batches and returns an :class:`ItemPredictions` -- per-item arrays
of every observable and latent plus one error (or ``None``) per item, in input order. Nothing is
dropped: an input that cannot be read, converted or tokenized, or whose prediction is not finite,
keeps its place with its error and NaN values.

:func:`read_items` turns user inputs (files, folders, tables, JSON lines, ASE formats, objects,
SCOPE strings) into items through :func:`cloudphys.inputs.read_inputs`; :func:`predict_items`
converts them with :func:`cloudphys.inputs.to_records` (cached). Observables are per mole of the
cells described by ``n_atoms``. :func:`predict_files` is the file front end of ``cloudphys
predict`` (CSV rows, optional plot).
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..config.temperatures import parse_temperatures
from ..data.base import Examples
from ..errors import DataError
from ..scope.symmetry import DEFAULT_ANGLE_TOLERANCE, DEFAULT_SYMPREC
from ..training.batching import check_tokens, encode
from ..training.model import ScopePhysicsModel, model_dialect
from ..training.runtime import resolve_device
from .model import load_model, predict_encoded

__all__ = [
    "ItemPredictions",
    "parse_temperatures",
    "plot_curves",
    "predict_files",
    "predict_items",
    "predict_with_members",
    "read_items",
    "write_csv",
]


def read_items(sources: Any, *, limits: Any = None) -> list[Any]:
    """Every input of ``sources`` as :class:`cloudphys.inputs.InputItem` (errors recorded, never
    raised per item; order kept)."""
    from ..inputs import read_inputs

    return read_inputs(sources, limits=limits)


def _generator_table(dialect: str) -> Any:
    """CLOUD's generator table (fetched into the data directory) for the cloud dialect, else None."""
    if dialect != "cloud":
        return None
    from ..data.cloud import CLOUD_FILES
    from ..data.download import fetch

    return fetch(CLOUD_FILES["cloud/generator.json"], dataset="cloud")


def _convert(items: list[Any], dialect: str, workers: int = 1, symprec: float | str = DEFAULT_SYMPREC,
             angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE) -> None:
    """SCOPE strings (``.scope``) for every structure item (spglib at ``symprec`` Å or ``"auto"``,
    ``angle_tolerance`` degrees); given strings parsed. Errors per item."""
    from ..inputs import to_records

    if any(it.error is None and it.scope is None for it in items):
        to_records(items, dialect=dialect, workers=workers, generator_table=_generator_table(dialect),
                   symprec=symprec, angle_tolerance=angle_tolerance)
    else:  # SCOPE strings only: parsed as given (the dialect only matters for converting structures,
        # and the cloud generator table is not needed -- nor fetched -- to parse cloud strings)
        to_records(items, dialect="default", workers=workers)
    for it in items:
        if it.error is None and it.record is not None and dialect == "default":
            it.scope = it.record.render()  # canonical: every string of one crystal reads the same (issue 13)
        if it.error is None and it.n_atoms is None:
            it.fail("the number of atoms per cell is unknown: give an n_atoms column/field with a SCOPE string")


@dataclass
class ItemPredictions:
    """What :func:`predict_items` returns (the user-facing result built on it is
    :class:`cloudphys.inference.result.Prediction`): one entry per input item, in input order.

    :ivar ids, sources, scope, errors: per item (``scope``: the string tokenized, ``None`` if there
        was none; ``errors``: ``None`` for a prediction, else why there is none).
    :ivar n_atoms: ``[N]`` atoms per cell (NaN where unknown).
    :ivar temperatures: ``[nT]`` K.
    :ivar observables: ``{name: [N, nT]}`` per mole of cells (NaN where ``errors`` is set).
    :ivar latents: ``{name: [N, *shape]}`` (NaN where ``errors`` is set).
    :ivar latent_sizes: ``{name: size}`` as the head declares them (for column names).
    :ivar symmetry_warnings: per item, the low-symmetry warning of its conversion (or ``None``).
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
    symmetry_warnings: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self) -> list[dict[str, Any]]:
        """Rows ``{id, source, scope, n_atoms, temperature, <observables>, <latents>, error,
        symmetry_warning}``: one per (item, temperature) for a prediction, one with empty values for an error."""
        lat_names: list[str] = []
        for name, size in self.latent_sizes.items():
            lat_names += [name] if size == 1 else [f"{name}_{i}" for i in range(size)]
        rows: list[dict[str, Any]] = []
        for k, rid in enumerate(self.ids):
            n = float(self.n_atoms[k]) if np.isfinite(self.n_atoms[k]) else None
            base = {"id": rid, "source": self.sources[k], "scope": self.scope[k], "n_atoms": n}
            warn = self.symmetry_warnings[k] if k < len(self.symmetry_warnings) else None
            if self.errors[k] is not None:
                rows.append({**base, "temperature": None, **{o: None for o in self.observables},
                             **{c: None for c in lat_names}, "error": self.errors[k], "symmetry_warning": None})
                continue
            lat_vals: dict[str, float] = {}
            for name, size in self.latent_sizes.items():
                v = np.asarray(self.latents[name][k]).reshape(-1)
                if size == 1:
                    lat_vals[name] = float(v[0])
                else:
                    lat_vals.update({f"{name}_{i}": float(x) for i, x in enumerate(v)})
            for j, T in enumerate(self.temperatures):
                rows.append({**base, "temperature": float(T),
                             **{o: float(v[k, j]) for o, v in self.observables.items()}, **lat_vals, "error": None,
                             "symmetry_warning": warn})
        return rows


def _check_items(model: ScopePhysicsModel, items: list[Any]) -> tuple[list[int], list[np.ndarray], list[Any]]:
    """Tokenize every pending item's string once; record why an item cannot be used as its error.

    :returns: positions of the good items, their token ids and their features (``None`` entries when
        the encoder takes no features).
    """
    pending = [k for k, it in enumerate(items) if it.error is None]
    # to_records parsed every string (.record) already: vocabulary and length remain to check
    tokens, reasons = check_tokens(model.tokenizer, [str(items[k].scope) for k in pending], validate=False)
    good, good_tokens, feats = [], [], []
    for k, tok, why in zip(pending, tokens, reasons):
        it = items[k]
        if why is not None:
            it.fail(f"SCOPE string {why}")
            continue
        try:  # composition features: an element the descriptors do not know is this item's error
            f = model.featurize([it.scope], [it.n_atoms])
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


def predict_items(
    model: ScopePhysicsModel,
    items: list[Any],
    temperatures: np.ndarray | Sequence[float],
    *,
    observables: Sequence[str] | None = None,
    dialect: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    workers: int = 1,
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
) -> ItemPredictions:
    """Latents and observables (``observables``; default: every one the head declares) of every item.

    :param items: :class:`cloudphys.inputs.InputItem` (see :func:`read_items`).
    :param temperatures: K, ``[nT]``.
    :param symprec: spglib's tolerance (Å, or ``"auto"``) for converting structures; ``angle_tolerance`` in degrees.
    Structures are converted to ``dialect`` (default: the model's); each string is parsed and
    tokenized once. Never raises for one item: its error is recorded and the rest go on.
    """
    return predict_with_members(model, (), items, temperatures, observables=observables, dialect=dialect,
                                batch_size=batch_size, device=device, workers=workers, symprec=symprec,
                                angle_tolerance=angle_tolerance)[0]


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
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
) -> tuple[ItemPredictions, list[ItemPredictions]]:
    """:func:`predict_items` for ``model`` and for each of ``members`` (an ensemble's members), the
    inputs converted, parsed and tokenized once for all of them.

    A member whose tokenizer differs from ``model``'s gets its own tokenization. An item whose
    prediction is not finite for any of them carries that error (the arrays of the runs before it
    keep their values; callers mask by ``errors``).
    """
    temperatures = np.asarray(temperatures, dtype=np.float64)
    obs_names = list(observables) if observables is not None else [s.name for s in model.head.observables]
    _convert(items, dialect or model_dialect(model), workers, symprec, angle_tolerance)
    dev = resolve_device(device)
    enc_cache: dict[int, tuple[list[int], Any]] = {}

    def run(m: ScopePhysicsModel) -> ItemPredictions:
        key = id(model) if m is model or _same_inputs(m, model) else id(m)
        if key not in enc_cache:
            enc_cache[key] = _encode_items(m, items, temperatures, symprec, angle_tolerance)
        good, enc = enc_cache[key]
        return _run(m, items, good, enc, temperatures, obs_names, batch_size, dev)

    core = run(model)
    return core, [run(m) for m in members]


def _same_inputs(a: ScopePhysicsModel, b: ScopePhysicsModel) -> bool:
    """Do ``a`` and ``b`` read the same tokens and features (so one encoding serves both)?"""
    ta, tb = a.tokenizer, b.tokenizer
    ca, cb = getattr(a.encoder, "config", None), getattr(b.encoder, "config", None)
    return (ta.get_vocab() == tb.get_vocab() and ta.model_max_length == tb.model_max_length
            and all(getattr(ca, k, None) == getattr(cb, k, None) for k in ("composition_features", "feature_layout")))


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


def _run(model: ScopePhysicsModel, items: list[Any], good: list[int], enc: Any, temperatures: np.ndarray,
         obs_names: list[str], batch_size: int, dev: Any) -> ItemPredictions:
    """Run ``model`` over the encoded good items; NaN and the item's error where a value is not finite."""
    N, nT = len(items), len(temperatures)
    lat_sizes = {spec.name: int(spec.size) for spec in model.head.latents}
    preds: dict[str, np.ndarray] = {o: np.full((N, nT), np.nan) for o in obs_names}
    lats: dict[str, np.ndarray] = {}
    if enc is not None:
        model.to(dev)
        p, lat = predict_encoded(model, enc, batch_size=batch_size, device=dev, observables=obs_names)
        rows = np.asarray(good)
        for o in obs_names:
            preds[o][rows] = p[o]
        for name, v in lat.items():
            lats[name] = np.full((N, *v.shape[1:]), np.nan)
            lats[name][rows] = v
        for j, k in enumerate(good):  # never pass NaN along as a prediction
            finite = all(np.isfinite(p[o][j]).all() for o in obs_names)
            if not (finite and all(np.isfinite(v[j]).all() for v in lat.values())):
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
                           errors=[it.error for it in items], latent_sizes=lat_sizes,
                           symmetry_warnings=[getattr(it, "symmetry_warning", None) for it in items])


def write_csv(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write prediction rows (columns in the order of the first row)."""
    if not rows:
        raise DataError("no inputs to write")
    fields = list(rows[0])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})


def plot_curves(rows: list[dict[str, Any]], model: ScopePhysicsModel, path: str | Path, max_items: int = 12) -> None:
    """One panel per observable, one curve per input (first ``max_items``), units on the axes."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    obs = list(model.head.selected)
    by_id: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["error"] is None:
            by_id.setdefault(r["id"], []).append(r)
    ids = list(by_id)[:max_items]
    fig, axes = plt.subplots(1, len(obs), figsize=(4.2 * len(obs), 3.6), squeeze=False)
    for ax, o in zip(axes[0], obs):
        spec = model.head.observable(o)
        for rid in ids:
            pts = by_id[rid]
            T = [p["temperature"] for p in pts]
            y = [p[o] / (p["n_atoms"] if spec.extensive else 1.0) for p in pts]
            ax.plot(T, y, label=rid)
        unit = spec.unit or "dimensionless"
        ax.set_xlabel("temperature (K)")
        ax.set_ylabel(f"{o} ({unit} per mol-atom)" if spec.extensive else f"{o} ({unit})")
        ax.set_title(f"{o} — head {model.head.name}")
    if ids:
        axes[0][-1].legend(fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def predict_files(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    temperatures: str | Sequence[float],
    *,
    out_csv: str | Path | None = None,
    plot: str | Path | None = None,
    dialect: str | None = None,
    device: str = "auto",
    workers: int = 1,
    registry: Any = None,
) -> list[dict[str, Any]]:
    """Load a trained model, predict every input at ``temperatures`` (the head's selected
    observables), write CSV / plot; returns the rows (:meth:`ItemPredictions.rows`)."""
    model = load_model(run_dir, registry=registry)
    T = parse_temperatures(temperatures)
    pred = predict_items(model, read_items(inputs), T, observables=list(model.head.selected), dialect=dialect,
                         device=device, workers=workers)
    rows = pred.rows()
    if out_csv is not None:
        write_csv(rows, out_csv)
    if plot is not None:
        plot_curves(rows, model, plot)
    return rows
