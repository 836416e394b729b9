"""Prediction from files: structures (CIF/POSCAR), SCOPE CSVs, JSON-lines → one CSV row per (input, T).

Inputs (by extension):

* ``.csv`` -- a SCOPE column (``scope`` or ``cloud``), ``n_atoms``, optional ``id``;
* ``.jsonl`` / ``.jsonl.gz`` -- one object a line with ``id`` and a pymatgen ``structure``
  dict (as in phonondb-thermo's ``materials.jsonl.gz``); ``n_atoms`` if present, else the number of
  sites of the structure;
* anything else -- a structure file pymatgen reads (CIF, POSCAR, ...); ``n_atoms`` = its sites.

Structures are converted to the SCOPE dialect the model was trained on. Observables are per mole of
the cells described by ``n_atoms``. An input that cannot be read, converted or tokenized gives a
row with its ``error`` — nothing is dropped. A CSV or JSON-lines file that cannot be read (not
UTF-8, a corrupt or truncated gzip) keeps the rows read before the failure and adds one error row,
id = the file's path, saying from which line on and why.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from ..data.base import Examples
from ..errors import ConfigError, DataError
from ..scope.batch import READ_ERRORS, open_text, unreadable_message
from .data import encode
from .model import ScopePhysicsModel
from .trainer import predict_encoded, resolve_device

__all__ = ["PredictItem", "read_inputs", "parse_temperatures", "predict_items", "predict_files", "write_csv", "plot_curves"]


@dataclass
class PredictItem:
    """One input: an id, its source, and either a SCOPE string + n_atoms or an error."""

    id: str
    source: str
    scope: str | None = None
    n_atoms: float | None = None
    error: str | None = None
    structure: Any = None


def parse_temperatures(text: str | Sequence[float]) -> np.ndarray:
    """``"5:1000:5"`` (start:stop:step, stop included), ``"10,300"`` or ``"300"`` → K array."""
    if not isinstance(text, str):
        arr = np.asarray(text, dtype=np.float64)
    elif ":" in text:
        parts = text.split(":")
        if len(parts) not in (2, 3):
            raise ConfigError(f"temperatures {text!r}: use start:stop[:step]")
        start, stop = float(parts[0]), float(parts[1])
        step = float(parts[2]) if len(parts) == 3 else 1.0
        if step <= 0 or stop < start:
            raise ConfigError(f"temperatures {text!r}: need start <= stop and step > 0")
        arr = np.arange(start, stop + step * 1e-9, step)
    else:
        try:
            arr = np.asarray([float(t) for t in text.split(",") if t.strip()], dtype=np.float64)
        except ValueError as exc:
            raise ConfigError(f"temperatures {text!r}: {exc}") from exc
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr < 0):
        raise ConfigError(f"temperatures must be finite and >= 0 K, got {text!r}")
    return arr


@dataclass
class _Progress:
    """How many lines of a file have been read (for the error row if the rest cannot be)."""

    lines: int = 0


def _read_csv(path: Path, items: list[PredictItem], done: _Progress) -> None:
    name = path.name
    with open_text(path, newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        done.lines = reader.line_num
        col = next((c for c in ("scope", "cloud", "SCOPE") if c in cols), None)
        if col is None or "n_atoms" not in cols:
            items.append(PredictItem(id=name, source=str(path),
                                     error=f"CSV needs a 'scope' (or 'cloud') and an 'n_atoms' column; has {cols}"))
            return
        for k, row in enumerate(reader):
            done.lines = reader.line_num
            rid = row.get("id") or f"{name}:{k}"
            item = PredictItem(id=rid, source=str(path), scope=(row.get(col) or "").strip())
            try:
                item.n_atoms = float(row["n_atoms"])
                if not (math.isfinite(item.n_atoms) and item.n_atoms > 0):
                    raise ValueError("must be a positive number")
            except (TypeError, ValueError) as exc:
                item.error = f"bad n_atoms {row.get('n_atoms')!r}: {exc}"
            if not item.scope and item.error is None:
                item.error = "empty SCOPE string"
            items.append(item)


def _read_jsonl(path: Path, items: list[PredictItem], done: _Progress) -> None:
    name = path.name
    with open_text(path) as fh:
        for k, line in enumerate(fh):
            done.lines = k + 1
            if not line.strip():
                continue
            rid = f"{name}:{k}"
            try:
                obj = json.loads(line)
                rid = str(obj.get("id", rid))
                struct = obj["structure"]
                n = obj.get("n_atoms")
                n = float(n) if n is not None else float(len(struct.get("sites", [])))
                if not (math.isfinite(n) and n > 0):
                    raise ValueError(f"n_atoms must be a positive number, got {obj.get('n_atoms')!r}")
                items.append(PredictItem(id=rid, source=str(path), n_atoms=n, structure=struct))
            except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
                items.append(PredictItem(id=rid, source=str(path), error=f"bad JSON line: {type(exc).__name__}: {exc}"))


def read_inputs(paths: Iterable[str | Path]) -> list[PredictItem]:
    """Read every input file into :class:`PredictItem` (errors recorded, never raised per item).

    A CSV or JSON-lines file that cannot be read (see :data:`cloudphys.scope.batch.READ_ERRORS`)
    keeps the items read before the failure and adds one error item, id = the file's path.
    """
    items: list[PredictItem] = []
    for p in paths:
        path = Path(p)
        name = path.name
        if not path.exists():
            items.append(PredictItem(id=name, source=str(path), error="file not found"))
            continue
        lower = name.lower()
        if lower.endswith((".csv", ".csv.gz", ".jsonl", ".jsonl.gz")):
            done = _Progress()
            try:
                (_read_csv if lower.endswith((".csv", ".csv.gz")) else _read_jsonl)(path, items, done)
            except READ_ERRORS as exc:
                items.append(PredictItem(id=str(path), source=str(path), error=unreadable_message(path, done.lines, exc)))
        else:
            try:
                from pymatgen.core import Structure

                struct = Structure.from_file(str(path))
                items.append(PredictItem(id=name, source=str(path), n_atoms=float(len(struct)), structure=struct))
            except Exception as exc:  # noqa: BLE001 - any reader failure is this item's error
                items.append(PredictItem(id=name, source=str(path), error=f"cannot read structure: {type(exc).__name__}: {exc}"))
    return items


def model_dialect(model: ScopePhysicsModel) -> str:
    """The SCOPE dialect of the strings the model was trained on."""
    meta = model.meta
    if meta.get("dialect"):
        return str(meta["dialect"])
    data = (meta.get("config") or {}).get("data") or {}
    if "dialect" in data:
        return str(data["dialect"])
    return "cloud" if str(data.get("name", "")).startswith("cloud") else "default"


def _convert(items: list[PredictItem], dialect: str, workers: int = 1) -> None:
    todo = [it for it in items if it.error is None and it.scope is None and it.structure is not None]
    if not todo:
        return
    from ..data.cache import convert_structures

    table = None
    if dialect == "cloud":
        from ..data.cloud import CLOUD_FILES
        from ..data.download import fetch

        with open(fetch(CLOUD_FILES["cloud/generator.json"], dataset="cloud"), encoding="utf-8") as fh:
            table = json.load(fh)
    keys = [f"{k}" for k in range(len(todo))]
    ok, bad = convert_structures(list(zip(keys, [it.structure for it in todo])), dialect=dialect, workers=workers,
                                 generator_table=table)
    for key, it in zip(keys, todo):
        if key in ok:
            it.scope = ok[key]
        else:
            it.error = f"SCOPE conversion failed: {bad.get(key, 'no result')}"


def predict_items(
    model: ScopePhysicsModel,
    items: list[PredictItem],
    temperatures: np.ndarray,
    *,
    dialect: str | None = None,
    batch_size: int = 256,
    device: str = "auto",
    workers: int = 1,
) -> list[dict[str, Any]]:
    """Rows ``{id, source, scope, n_atoms, temperature, <observables>, <latents>, error}``."""
    _convert(items, dialect or model_dialect(model), workers)
    # Tokenize one at a time only where the batch fails, so one bad string cannot sink the rest.
    good = [it for it in items if it.error is None]
    from ..scope import parse
    from .data import tokenize

    for it in good:
        try:
            parse(it.scope)  # unknown tokens, wrong sections, impossible Wyckoff letters: this item's error
            tokenize(model.tokenizer, [it.scope], [it.id])
            model.featurize([it.scope], [it.n_atoms])
        except Exception as exc:  # noqa: BLE001 - recorded as this item's error
            it.error = f"{type(exc).__name__}: {exc}"
    good = [it for it in items if it.error is None]
    results: dict[int, tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]] = {}
    if good:
        ex = Examples(ids=[it.id for it in good], scope=[it.scope for it in good],  # type: ignore[misc]
                      n_atoms=np.asarray([it.n_atoms for it in good], dtype=np.float64),
                      temperatures=np.asarray(temperatures, dtype=np.float64))
        dev = resolve_device(device)
        model.to(dev)
        enc = encode(ex, model)
        preds, lats = predict_encoded(model, enc, batch_size=batch_size, device=dev)
        for k, it in enumerate(good):
            results[id(it)] = (preds, lats, k)
    obs_names = list(model.head.selected)
    lat_names: list[str] = []
    for spec in model.head.latents:
        lat_names += [spec.name] if spec.size == 1 else [f"{spec.name}_{i}" for i in range(spec.size)]
    rows: list[dict[str, Any]] = []
    for it in items:
        base = {"id": it.id, "source": it.source, "scope": it.scope, "n_atoms": it.n_atoms}
        if id(it) in results:
            preds, lats, k = results[id(it)]
            values = [preds[o][k] for o in obs_names] + [lats[spec.name][k] for spec in model.head.latents]
            if not all(np.isfinite(v).all() for v in values):  # never pass NaN along as a prediction
                it.error = "the model produced a non-finite value (NaN or inf) for this input"
                del results[id(it)]
        if id(it) not in results:
            rows.append({**base, "temperature": None, **{o: None for o in obs_names},
                         **{n: None for n in lat_names}, "error": it.error})
            continue
        preds, lats, k = results[id(it)]
        lat_vals: dict[str, float] = {}
        for spec in model.head.latents:
            v = np.asarray(lats[spec.name][k]).reshape(-1)
            if spec.size == 1:
                lat_vals[spec.name] = float(v[0])
            else:
                lat_vals.update({f"{spec.name}_{i}": float(x) for i, x in enumerate(v)})
        for j, T in enumerate(temperatures):
            rows.append({**base, "temperature": float(T), **{o: float(preds[o][k, j]) for o in obs_names},
                         **lat_vals, "error": None})
    return rows


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
    """Load a trained model, predict every input at ``temperatures``, write CSV / plot."""
    model = ScopePhysicsModel.from_pretrained(run_dir, registry=registry)
    T = parse_temperatures(temperatures)
    rows = predict_items(model, read_inputs(inputs), T, dialect=dialect, device=device, workers=workers)
    if out_csv is not None:
        write_csv(rows, out_csv)
    if plot is not None:
        plot_curves(rows, model, plot)
    return rows
