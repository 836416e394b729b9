"""What a prediction returns: :class:`Prediction` (many structures) and :class:`StructurePrediction` (one).

Values are kept as arrays, one row per input structure, in input order; an input that failed keeps
its row (NaN values) and its ``error``. Observables are stored **per mole of the cell the user
gave** (``n_atoms`` atoms, the head's convention); :meth:`StructurePrediction.values` and the CSV
also give them **per mole of atoms** (extensive observables divided by ``n_atoms``).

Ensembles add a spread for every observable and latent: the members' standard deviation times a
calibration ``scale`` (fitted on the validation split, see :mod:`cloudphys.inference.uncertainty`;
1 when the model carries none) and the central interval ``value ± z(level)·std`` (90 % by default).

This module only arranges numbers; it imports neither torch nor a model. (It is a little over 400
lines: the columns, the rows, the CSV and the text table must agree, so they stay in one place.)
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from ..errors import DataError
from .units import per_atom_unit

__all__ = ["Quantity", "ItemInfo", "Prediction", "StructurePrediction", "parse_dos_grid", "check_dos_grid", "dos_edges",
           "total_dos_on_grid", "unit_slug", "column_name", "per_atom_unit",
           "quantities_from_head"]


@dataclass(frozen=True)
class Quantity:
    """Name, unit and basis of an observable or latent.

    :param extensive: ``True`` if the value is per mole of cells (scales with ``n_atoms``).
    :param lower, upper: physical bounds; central intervals are clipped to them (e.g. cv, s ≥ 0).
    :param upper_per_atom: a bound per atom of an extensive quantity (cv ≤ 3R per atom, harmonic).
    """

    name: str
    unit: str
    extensive: bool = False
    description: str = ""
    lower: float | None = None
    upper: float | None = None
    upper_per_atom: float | None = None


@dataclass(frozen=True)
class ItemInfo:
    """One input as given: its name, where it came from, its SCOPE string, atoms, error, and the
    low-symmetry warning of its conversion (:func:`cloudphys.scope.symmetry.low_symmetry_warning`)."""

    name: str
    source: str = ""
    scope: str | None = None
    n_atoms: float | None = None
    error: str | None = None
    symmetry_warning: str | None = None


def unit_slug(unit: str) -> str:
    """A unit as a column-name fragment: ``"J/(K*mol)"`` → ``"J_per_K_mol"``; ``""`` → ``""``."""
    s = unit.replace("·", "*").replace("/(", "_per_").replace("/", "_per_")
    for ch in "()*^ ":
        s = s.replace(ch, "_")
    return "_".join(p for p in s.split("_") if p)


def column_name(name: str, unit: str, basis: str | None = None, stat: str | None = None) -> str:
    """``cv`` + ``J/(K*mol)`` + ``atom`` → ``cv_J_per_K_mol_atom``; ``stat`` (``std``, ``lo90``) after the name."""
    parts = [name] + ([stat] if stat else []) + ([unit_slug(unit)] if unit_slug(unit) else [])
    if basis:
        parts[-1] = f"{parts[-1]}_{basis}" if unit_slug(unit) else f"{parts[-1]}_per_{basis}"
    return "_".join(parts)


def _z(level: float) -> float:
    """Half-width of the central ``level`` interval of a standard normal (0.9 → 1.6449)."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(0.5 + level / 2.0)


K_PER_THZ = 47.99243073366221  # mode temperature of 1 THz, K
#: phonopy's default frequency pitch of the total DOS (THz)
DEFAULT_DOS_STEP_THZ = 0.1


def parse_dos_grid(spec: str | float | Sequence[float] | None) -> np.ndarray | float | None:
    """``--dos-grid``: ``STEP`` (THz; 0 to the spectrum's top) or ``FMIN:FMAX:STEP`` (THz, FMAX included),
    as a step or an array of frequency points; ``None`` passes."""
    if spec is None:
        return None
    if isinstance(spec, (int, float)):
        parts = [float(spec)]
    elif isinstance(spec, str):
        try:
            parts = [float(x) for x in spec.split(":")]
        except ValueError:
            raise DataError(f"--dos-grid {spec!r}: give STEP or FMIN:FMAX:STEP in THz, e.g. 0.1 or 0:20:0.05") from None
    else:
        return check_dos_grid(np.asarray(spec, dtype=np.float64))
    if len(parts) == 1:
        if not (math.isfinite(parts[0]) and parts[0] > 0):
            raise DataError(f"--dos-grid {spec!r}: the step must be a positive number of THz")
        return parts[0]
    if len(parts) != 3:
        raise DataError(f"--dos-grid {spec!r}: give STEP or FMIN:FMAX:STEP in THz, e.g. 0.1 or 0:20:0.05")
    lo, hi, step = parts
    if not all(math.isfinite(v) for v in parts) or step <= 0 or hi <= lo:
        raise DataError(f"--dos-grid {spec!r}: need FMIN < FMAX and STEP > 0 (THz, finite)")
    count = int(math.floor((hi - lo) / step + 1e-9)) + 1
    if count > 1_000_000:
        raise DataError(f"--dos-grid {spec!r}: {count:,} points; at most 1,000,000")
    return check_dos_grid(lo + step * np.arange(count))


def check_dos_grid(grid: np.ndarray) -> np.ndarray:
    """An equally spaced, increasing frequency grid (THz) of at least 2 finite points, or a DataError."""
    g = np.asarray(grid, dtype=np.float64).reshape(-1)
    if g.size < 2 or not np.all(np.isfinite(g)):
        raise DataError("a DOS grid needs at least 2 finite frequency points (THz)")
    d = np.diff(g)
    if not (d > 0).all() or not np.allclose(d, d[0], rtol=1e-6, atol=0):
        raise DataError("a DOS grid must be equally spaced and increasing (frequency points in THz)")
    return g


def dos_edges(dos: dict[str, np.ndarray]) -> np.ndarray:
    """Bin edges (THz) ``[N, K+1]`` of a :attr:`Prediction.dos`: its ``edges_THz``, else from its equal-bin
    centres ``theta_K`` (bins on (0, θ_max], centre k at (k + ½)·θ_max/K)."""
    if "edges_THz" in dos:
        return np.asarray(dos["edges_THz"], dtype=np.float64)
    theta = np.asarray(dos["theta_K"], dtype=np.float64) / K_PER_THZ
    width = 2.0 * theta[:, :1]  # the first centre is half a bin above 0
    return width * np.arange(theta.shape[1] + 1)


def total_dos_on_grid(modes: np.ndarray, edges: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The histogram DOS (``modes[N, K]`` in bins ``edges[N, K+1]``, THz) as phonopy's total DOS on ``grid``
    (THz, equal spacing h): states per THz at f_j = the modes in [f_j − h/2, f_j + h/2] divided by h,
    from the exact cumulative DOS. Σ_j dos_j·h is every mode inside the grid's cells (3·n_atoms when the
    grid covers the spectrum). NaN rows stay NaN."""
    g = check_dos_grid(grid)
    h = float(g[1] - g[0])
    cells = np.concatenate([g - h / 2, [g[-1] + h / 2]])
    out = np.full((len(modes), len(g)), np.nan)
    for i in range(len(modes)):
        m, e = np.asarray(modes[i], dtype=np.float64), np.asarray(edges[i], dtype=np.float64)
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(e))):
            continue
        cum = np.interp(cells, e, np.concatenate([[0.0], np.cumsum(m)]), left=0.0, right=float(m.sum()))
        out[i] = np.diff(cum) / h
    return out


@dataclass
class Prediction:
    """Predictions for a list of structures at common temperatures.

    :param temperatures: K, shape ``[nT]``.
    :param items: one :class:`ItemInfo` per input, in input order (failed ones included).
    :param observables: ``{name: [N, nT]}`` per mole of the given cell (NaN for failed items; per mole
        of atoms for an item whose ``n_atoms`` is ``None``, a SCOPE string given without a cell).
    :param quantities: ``{name: Quantity}`` for every observable and latent.
    :param latents: ``{name: [N, *shape]}`` (θ_D in K, ...).
    :param member_std: members' standard deviation of each observable/latent (ensembles), same shapes.
    :param scale: calibration factor applied to ``member_std`` (1: uncalibrated).
    :param level: nominal coverage of the central interval.
    :param dos: ``{"theta_K": [N, K], "modes": [N, K] per cell, "modes_std": ...}`` for DOS heads.
    :param zero_point: zero-point energy u(T = 0) per mole of the given cell, J/mol, shape ``[N]``.
    :param geometry: for a model that reads geometric inputs (``encoder.geometric_features``), the
        standardised geometric features of each item's structure, ``[N, N_GEOMETRIC_FEATURES]``
        (NaN rows for failed items); ``None`` otherwise.
    """

    temperatures: np.ndarray
    items: list[ItemInfo]
    observables: dict[str, np.ndarray]
    quantities: dict[str, Quantity]
    latents: dict[str, np.ndarray] = field(default_factory=dict)
    member_std: dict[str, np.ndarray] | None = None
    scale: float = 1.0
    level: float = 0.9
    calibration: dict[str, Any] | None = None
    dos: dict[str, np.ndarray] | None = None
    zero_point: np.ndarray | None = None
    model: str = ""
    head: str = ""
    members: int = 1
    geometry: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.temperatures = np.asarray(self.temperatures, dtype=np.float64).reshape(-1)
        n = len(self.items)
        for name, arr in {**self.observables, **self.latents}.items():
            if len(arr) != n:
                raise ValueError(f"{name}: {len(arr)} rows for {n} items")

    # -- collection protocol -------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator["StructurePrediction"]:
        return (StructurePrediction(self, i) for i in range(len(self.items)))

    def __getitem__(self, key: int | str) -> "StructurePrediction":
        if isinstance(key, str):
            for i, it in enumerate(self.items):
                if it.name == key:
                    return StructurePrediction(self, i)
            raise KeyError(f"no input named {key!r}")
        return StructurePrediction(self, range(len(self.items))[key])

    @property
    def errors(self) -> dict[str, str]:
        """``{name: error}`` of every input that failed."""
        return {it.name: it.error for it in self.items if it.error}

    @property
    def ok(self) -> list["StructurePrediction"]:
        return [s for s in self if s.error is None]

    @property
    def is_ensemble(self) -> bool:
        return self.member_std is not None

    def combined(self, other: "Prediction", name: str | None = None) -> "Prediction":
        """This prediction with the observables (and scalar latents) of ``other`` -- another model's
        prediction of the same inputs at the same temperatures -- added where their names are new
        (``cloudphys predict --with MODEL``, e.g. ``p_unstable`` beside a curve model's curves).

        An input that fails in either keeps its row with both errors; spreads of the added quantities
        come from ``other`` where both are ensembles (NaN where only this one is).
        """
        if len(other.items) != len(self.items) or not np.array_equal(other.temperatures, self.temperatures):
            raise DataError("cannot combine predictions of different inputs or temperatures")
        label = name or other.model or "the second model"
        new_obs = [k for k in other.observables if k not in self.observables]
        new_lat = [k for k in other.latents if k not in self.latents and k not in new_obs
                   and np.asarray(other.latents[k]).ndim == 1]
        items = []
        for mine, theirs in zip(self.items, other.items):
            err = mine.error
            if theirs.error and theirs.error != mine.error:
                err = f"{err}; " if err else ""
                err += f"{label}: {theirs.error}"
            items.append(ItemInfo(mine.name, mine.source, mine.scope, mine.n_atoms, err, mine.symmetry_warning))
        spreads = None
        if self.member_std is not None:
            spreads = dict(self.member_std)
            for k in (*new_obs, *new_lat):
                theirs = other.std(k)
                arr = other.observables[k] if k in other.observables else other.latents[k]
                spreads[k] = theirs / self.scale if theirs is not None else np.full(np.shape(arr), np.nan)
        bad = np.asarray([it.error is not None for it in items], dtype=bool)

        def masked(a: np.ndarray) -> np.ndarray:
            a = np.array(a, dtype=np.float64, copy=True)
            a[bad] = np.nan
            return a

        return Prediction(
            temperatures=self.temperatures, items=items,
            observables={**{k: masked(v) for k, v in self.observables.items()},
                         **{k: masked(other.observables[k]) for k in new_obs}},
            quantities={**self.quantities, **{k: other.quantities[k] for k in (*new_obs, *new_lat)
                                              if k in other.quantities}},
            latents={**self.latents, **{k: masked(other.latents[k]) for k in new_lat}},
            member_std=spreads, scale=self.scale, level=self.level, calibration=self.calibration, dos=self.dos,
            zero_point=self.zero_point, model=f"{self.model} + {label}", head=f"{self.head} + {other.head}",
            members=self.members,
        )

    # -- spreads -------------------------------------------------------------------------
    def std(self, name: str) -> np.ndarray | None:
        """Calibrated standard deviation of ``name`` (per cell for observables), or ``None``."""
        if self.member_std is None or name not in self.member_std:
            return None
        return self.scale * self.member_std[name]

    def interval(self, name: str) -> tuple[np.ndarray, np.ndarray] | None:
        """Central ``level`` interval ``(lower, upper)`` of ``name``, or ``None`` without an ensemble."""
        sd = self.std(name)
        if sd is None:
            return None
        mid = self.observables[name] if name in self.observables else self.latents[name]
        half = _z(self.level) * sd
        lo, hi = mid - half, mid + half
        q = self.quantities.get(name)
        if q is not None and q.lower is not None:  # a heat capacity or entropy is never negative
            lo = np.maximum(lo, q.lower)
        if q is not None and q.upper is not None:
            hi = np.minimum(hi, q.upper)
        if q is not None and q.upper_per_atom is not None:  # harmonic cv never exceeds 3R per atom
            n = np.asarray([it.n_atoms or 1.0 for it in self.items], dtype=np.float64)
            hi = np.minimum(hi, q.upper_per_atom * n.reshape((-1,) + (1,) * (hi.ndim - 1)))
        return lo, hi

    # -- tables --------------------------------------------------------------------------
    def columns(self, observables: Sequence[str] | None = None) -> list[str]:
        """Column names of :meth:`rows`, units in the names."""
        cols = ["id", "source", "scope", "n_atoms", "temperature_K"]
        pct = int(round(self.level * 100))
        for o in observables or list(self.observables):
            q = self.quantities[o]
            for basis in (("cell", "atom") if q.extensive else (None,)):
                cols.append(column_name(o, q.unit, basis))
                if self.is_ensemble:
                    cols += [column_name(o, q.unit, basis, s) for s in ("std", f"lo{pct}", f"hi{pct}")]
        for name in self._scalar_latents():
            q = self.quantities[name]
            cols.append(column_name(name, q.unit))
            if self.is_ensemble:
                cols += [column_name(name, q.unit, None, s) for s in ("std", f"lo{pct}", f"hi{pct}")]
        return cols + ["error", "symmetry_warning"]

    def _scalar_latents(self) -> list[str]:
        return [k for k, v in self.latents.items() if v.ndim == 1]

    def _numbers(self, obs: Sequence[str]) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """The numeric columns of :meth:`columns` (after ``temperature_K``), computed once per column:
        ``(per-temperature [N, nT] arrays, per-item [N] arrays)``; NaN where a row has no value
        (a failed item, per cell of a SCOPE string without ``n_atoms``)."""
        n = np.asarray([float(it.n_atoms) if it.n_atoms else np.nan for it in self.items], dtype=np.float64)
        known = np.isfinite(n)[:, None]
        atom_div = np.where(known, n[:, None], 1.0)
        cell_div = np.where(known, 1.0, np.nan)
        failed = np.asarray([it.error is not None for it in self.items], dtype=bool)
        per_t: list[np.ndarray] = []
        for o in obs:
            q = self.quantities[o]
            band = self.interval(o)
            sd = self.std(o)
            for basis in (("cell", "atom") if q.extensive else (None,)):
                div = atom_div if basis == "atom" else cell_div if basis == "cell" else 1.0
                per_t.append(self.observables[o] / div)
                if band is not None and sd is not None:
                    per_t += [sd / div, band[0] / div, band[1] / div]
        per_item: list[np.ndarray] = []
        for name in self._scalar_latents():
            per_item.append(np.asarray(self.latents[name], dtype=np.float64))
            band = self.interval(name)
            sd = self.std(name)
            if band is not None and sd is not None:
                per_item += [np.asarray(sd, dtype=np.float64), band[0], band[1]]
        if failed.any():  # a failed item's row carries no values at all
            per_t = [np.where(failed[:, None], np.nan, a) for a in per_t]
            per_item = [np.where(failed, np.nan, a) for a in per_item]
        return per_t, per_item

    def _check_observables(self, observables: Sequence[str] | None) -> list[str]:
        obs = list(observables or self.observables)
        unknown = [o for o in obs if o not in self.observables]
        if unknown:
            raise DataError(f"observable(s) {unknown} not predicted; available: {sorted(self.observables)}")
        return obs

    def _row_index(self) -> tuple[np.ndarray, np.ndarray]:
        """``(item, temperature)`` index of every table row: ``nT`` rows per predicted item, one row
        (temperature index ``-1``) per failed item, in input order."""
        nT = len(self.temperatures)
        failed = np.asarray([it.error is not None for it in self.items], dtype=bool)
        reps = np.where(failed, 1, nT).astype(np.int64)
        ii = np.repeat(np.arange(len(self.items)), reps)
        starts = np.concatenate([[0], np.cumsum(reps)[:-1]]) if len(reps) else np.zeros(0, dtype=np.int64)
        jj = np.arange(len(ii)) - np.repeat(starts, reps)
        jj[failed[ii]] = -1
        return ii, jj

    def column_arrays(self, observables: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """Every column of :meth:`columns` as one array over the rows (numbers float64 with NaN for
        no value; ``id``/``source``/``scope``/``error`` object arrays, ``None`` for no value)."""
        obs = self._check_observables(observables)
        cols = self.columns(obs)
        ii, jj = self._row_index()
        per_t, per_item = self._numbers(obs)
        ok = jj >= 0
        jsafe = np.where(ok, jj, 0)
        text = {k: np.asarray([getattr(it, k) for it in self.items] + [None], dtype=object)[:-1]
                for k in ("name", "source", "scope", "error", "symmetry_warning")}
        n = np.asarray([np.nan if it.n_atoms is None else float(it.n_atoms) for it in self.items], dtype=np.float64)
        temps = self.temperatures[jsafe] if len(ii) else np.zeros(0)
        out: dict[str, np.ndarray] = {"id": text["name"][ii], "source": text["source"][ii],
                                      "scope": text["scope"][ii], "n_atoms": n[ii],
                                      "temperature_K": np.where(ok, temps, np.nan)}
        numeric = cols[5:-2]  # after temperature_K, before error and symmetry_warning
        for name, arr in zip(numeric, [a[ii, jsafe] for a in per_t] + [a[ii] for a in per_item]):
            out[name] = np.where(ok, arr, np.nan)
        out["error"] = text["error"][ii]
        out["symmetry_warning"] = text["symmetry_warning"][ii]
        return out

    def rows(self, observables: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One dict per (structure, temperature); a failed structure gives one row with its error
        (``None`` where a row has no value)."""
        arrays = self.column_arrays(observables)
        cols = list(arrays)
        lists = [[None if (isinstance(v, float) and math.isnan(v)) else v for v in arrays[c].tolist()] for c in cols]
        return [dict(zip(cols, r)) for r in zip(*lists)]

    def metadata(self, observables: Sequence[str] | None = None, *, spreadsheet_safe: bool = True) -> dict[str, Any]:
        """What the CSV's JSON sidecar holds: model, head, ensemble size, spread and calibration, the
        units and meaning of every column, the inputs that failed (see ``docs/usage.md``)."""
        from ..outputs import clean_text

        obs = self._check_observables(observables)
        pct = int(round(self.level * 100))
        columns: dict[str, dict[str, Any]] = {
            "id": {"meaning": "the input's id (file, FILE:LINE, an id column, or the formula of an object)"},
            "source": {"meaning": "the file the input came from"},
            "scope": {"meaning": "the SCOPE string the model read"},
            "n_atoms": {"meaning": "atoms in the cell given", "unit": "1"},
            "temperature_K": {"meaning": "temperature", "unit": "K"}}
        for o in obs:
            q = self.quantities[o]
            for basis in (("cell", "atom") if q.extensive else (None,)):
                unit = per_atom_unit(q.unit) if basis == "atom" else q.unit
                columns[column_name(o, q.unit, basis)] = {"quantity": o, "unit": unit, "basis": basis,
                                                          "meaning": q.description or o}
                if self.is_ensemble:
                    for st in ("std", f"lo{pct}", f"hi{pct}"):
                        columns[column_name(o, q.unit, basis, st)] = {"quantity": o, "unit": unit, "basis": basis,
                                                                      "statistic": st}
        for name in self._scalar_latents():
            q = self.quantities[name]
            columns[column_name(name, q.unit)] = {"quantity": name, "unit": q.unit, "meaning": q.description or name}
            if self.is_ensemble:
                for st in ("std", f"lo{pct}", f"hi{pct}"):
                    columns[column_name(name, q.unit, None, st)] = {"quantity": name, "unit": q.unit, "statistic": st}
        columns["error"] = {"meaning": "why the input has no prediction (empty: predicted)"}
        columns["symmetry_warning"] = {"meaning": "the symmetry read from the structure is far lower than at a looser "
                                                  "spglib tolerance (a noisy structure?); empty: no warning"}
        cal = self.calibration
        spread = None
        if self.is_ensemble:
            spread = {"std": f"members' standard deviation x {self.scale:.6g}", "scale": self.scale,
                      "level": self.level, "interval": f"lo{pct}/hi{pct}: central {self.level:.0%} interval",
                      "calibrated": bool(cal),
                      "calibrated_on": (cal or {}).get("fitted_on") if cal else None}
        return {
            "format": "cloudphys-prediction", "format_version": 1,
            "model": clean_text(self.model), "head": clean_text(self.head), "members": self.members,
            "ensemble": self.is_ensemble, "spread": spread,
            "bases": {"cell": "per mole of the cell given (n_atoms atoms)", "atom": "per mole of atoms"},
            "temperatures_K": [float(t) for t in self.temperatures],
            "columns": columns, "inputs": len(self.items), "failed": len(self.errors),
            "errors": {clean_text(k): clean_text(v) for k, v in self.errors.items()},
            "spreadsheet_safe": bool(spreadsheet_safe),
            "empty_cell": "no value (a failed input's row; per cell of a SCOPE string given without n_atoms)",
        }

    def header(self) -> str:
        """A one-line summary of the table (model, head, bases, spread) -- the CSV itself starts with its
        column names; the full metadata goes to the JSON sidecar (:meth:`metadata`)."""
        cal = f"calibrated on {self.calibration.get('fitted_on', 'val')}" if self.calibration else "uncalibrated"
        spread = (f"{self.members}-member ensemble; std = members' std x {self.scale:.4g} ({cal}); "
                  f"lo/hi = central {self.level:.0%} interval" if self.is_ensemble else "single model (no spread)")
        return (f"cloudphys prediction: model {self.model or '?'}, head {self.head or '?'}; "
                "_cell = per mole of the cell given (n_atoms atoms), _atom = per mole of atoms; "
                f"temperature in K; {spread}")

    def write_csv(self, fh: Any, observables: Sequence[str] | None = None, *, spreadsheet_safe: bool = True) -> None:
        """Write the table to the text stream ``fh``: the column names first, then one row per
        (input, temperature) -- one row for a failed input. Linear in the rows; floats to 8
        significant digits; empty cell = no value; text cells through
        :func:`cloudphys.outputs.text_cell` (encodable; ``spreadsheet_safe``: OWASP's neutralisation)."""
        _write_table(self, fh, self._check_observables(observables), spreadsheet_safe)

    def to_csv(self, path: str | Path, observables: Sequence[str] | None = None, *, metadata: bool = True,
               spreadsheet_safe: bool = True) -> Path:
        """Write :meth:`write_csv`'s table to ``path`` and (``metadata``) :meth:`metadata` to the JSON
        sidecar ``path + ".json"``, each atomically (a crash leaves the previous file whole)."""
        from ..outputs import atomic_write, sidecar_path, write_json

        path = Path(path)
        with atomic_write(path, "w", newline="", encoding="utf-8") as fh:
            self.write_csv(fh, observables, spreadsheet_safe=spreadsheet_safe)
        if metadata:
            write_json(sidecar_path(path), self.metadata(observables, spreadsheet_safe=spreadsheet_safe))
        return path

    def to_pandas(self, observables: Sequence[str] | None = None) -> Any:
        """The rows of :meth:`to_csv` as a ``pandas.DataFrame`` (needs pandas); NaN / ``None`` for no
        value; text as given (no neutralisation: it is not a file)."""
        try:
            import pandas as pd
        except ImportError as exc:
            raise ImportError("Prediction.to_pandas() needs pandas: pip install pandas") from exc
        arrays = self.column_arrays(observables)
        return pd.DataFrame(arrays, columns=list(arrays))

    def dos_grid(self, grid: str | float | Sequence[float] | None = None) -> np.ndarray:
        """The frequency points (THz) of :meth:`total_dos`: ``grid`` as given (points, ``FMIN:FMAX:STEP``),
        or 0 up past the highest predicted frequency in steps of ``grid`` (THz; default 0.1, phonopy's pitch)."""
        if self.dos is None:
            raise DataError(f"head {self.head!r} has no density of states (only DOS heads such as phonon-dos do)")
        spec = parse_dos_grid(grid)
        if isinstance(spec, np.ndarray):
            return spec
        step = DEFAULT_DOS_STEP_THZ if spec is None else float(spec)
        top = np.nanmax(dos_edges(self.dos)[:, -1]) if len(self) else 1.0
        top = float(top) if np.isfinite(top) else 1.0
        count = int(math.ceil(top / step)) + 1
        if count > 1_000_000:
            raise DataError(f"a DOS grid of step {step:g} THz up to {top:g} THz has {count:,} points; "
                            "at most 1,000,000")
        return step * np.arange(count)

    def total_dos(self, grid: str | float | Sequence[float] | None = None) -> dict[str, np.ndarray]:
        """The predicted phonon DOS in phonopy's total-DOS convention, on a frequency grid.

        :param grid: frequency points (THz, equally spaced), ``"FMIN:FMAX:STEP"``, or a step (THz) from 0
            past the highest frequency; default 0.1 THz (phonopy's pitch).
        :returns: ``{"frequency_THz": [G], "dos_cell": [N, G] states/THz per given cell, "dos_atom": [N, G]
            states/THz per atom}``: the model's histogram DOS averaged over cells of the grid's spacing
            around each point (exact), so Σ dos·step = 3·n_atoms (3 per atom) when the grid covers the
            spectrum; NaN for failed inputs (``dos_cell`` also where a SCOPE string came without ``n_atoms``).
        """
        g = self.dos_grid(grid)
        assert self.dos is not None
        per_cell = total_dos_on_grid(self.dos["modes"], dos_edges(self.dos), g)
        n = np.array([np.nan if it.n_atoms is None or it.error is not None else float(it.n_atoms)
                      for it in self.items])
        given = np.array([it.n_atoms is not None for it in self.items])
        per_atom = np.where(given[:, None], per_cell / np.where(given, n, 1.0)[:, None], per_cell)
        per_cell = np.where(given[:, None], per_cell, np.nan)
        bad = np.array([it.error is not None for it in self.items])
        per_cell[bad], per_atom[bad] = np.nan, np.nan
        return {"frequency_THz": g, "dos_cell": per_cell, "dos_atom": per_atom}

    def dos_rows(self, grid: str | float | Sequence[float] | None = None) -> list[dict[str, Any]]:
        """:meth:`total_dos` as rows: one per (structure, frequency point); one error row per failed input."""
        d = self.total_dos(grid)
        out: list[dict[str, Any]] = []
        for i, it in enumerate(self.items):
            if it.error is not None:
                out.append({"id": it.name, "frequency_THz": None, "dos_states_per_THz_cell": None,
                            "dos_states_per_THz_atom": None, "error": it.error})
                continue
            for j, f in enumerate(d["frequency_THz"]):
                cell = d["dos_cell"][i, j]
                out.append({"id": it.name, "frequency_THz": float(f),
                            "dos_states_per_THz_cell": None if not np.isfinite(cell) else float(cell),
                            "dos_states_per_THz_atom": float(d["dos_atom"][i, j]), "error": None})
        return out

    def dos_to_csv(self, path: str | Path, *, grid: str | float | Sequence[float] | None = None, metadata: bool = True,
                   spreadsheet_safe: bool = True) -> Path:
        """Write :meth:`dos_rows` (column names first) atomically, and (``metadata``) a JSON sidecar
        ``path + ".json"`` saying what the columns are."""
        from ..outputs import atomic_write, clean_text, sidecar_path, text_cell, write_json

        path = Path(path)
        rows = self.dos_rows(grid)
        cols = ["id", "frequency_THz", "dos_states_per_THz_cell", "dos_states_per_THz_atom", "error"]
        with atomic_write(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.writer(fh)
            w.writerow(cols)
            for r in rows:
                w.writerow([text_cell(r[k], spreadsheet_safe) if k in ("id", "error") else _cell(r[k]) for k in cols])
        if metadata:
            g = self.dos_grid(grid)
            write_json(sidecar_path(path), {
                "format": "cloudphys-dos", "format_version": 2, "model": clean_text(self.model),
                "head": clean_text(self.head),
                "meaning": "predicted phonon DOS in phonopy's total-DOS convention: states per THz per given cell "
                           "(and per atom) at each frequency, the model's histogram DOS averaged over the grid cell "
                           "[f - step/2, f + step/2]; sum(dos) * step = 3 * n_atoms (3 per atom) over a grid that "
                           "covers the spectrum",
                "grid_THz": {"first": float(g[0]), "last": float(g[-1]), "step": float(g[1] - g[0]), "points": len(g)},
                "columns": {"frequency_THz": {"unit": "THz"}, "dos_states_per_THz_cell": {"unit": "1/THz"},
                            "dos_states_per_THz_atom": {"unit": "1/THz"}},
                "errors": {clean_text(k): clean_text(v) for k, v in self.errors.items()},
                "spreadsheet_safe": bool(spreadsheet_safe)})
        return path

    def plot(self, path: str | Path, **kwargs: Any) -> Any:
        """Plot the curves (see :func:`cloudphys.inference.plot.plot_prediction`); returns the figure."""
        from .plot import plot_prediction

        return plot_prediction(self, path, **kwargs)

    def __repr__(self) -> str:
        return _table(self)


class StructurePrediction:
    """One structure of a :class:`Prediction` (a view: values are not copied)."""

    def __init__(self, parent: Prediction, index: int) -> None:
        self._p, self._i = parent, index
        info = parent.items[index]
        self.name, self.source, self.scope, self.n_atoms, self.error = (
            info.name, info.source, info.scope, info.n_atoms, info.error)
        self.symmetry_warning = info.symmetry_warning

    @property
    def temperatures(self) -> np.ndarray:
        return self._p.temperatures

    @property
    def observable_names(self) -> list[str]:
        return list(self._p.observables)

    @property
    def zero_point_energy(self) -> float | None:
        """u(T = 0) per mole of the given cell (J/mol), if predicted."""
        zp = self._p.zero_point
        return None if zp is None or self.error is not None else float(zp[self._i])

    def _div(self, name: str, basis: str) -> float:
        """Divisor from stored values (per given cell; per atom when ``n_atoms`` is None) to ``basis``."""
        if basis not in ("cell", "atom"):
            raise ValueError(f"basis must be 'cell' or 'atom', got {basis!r}")
        q = self._p.quantities[name]
        if not q.extensive:
            return 1.0
        if self.n_atoms is None:  # a SCOPE string without n_atoms: per atom known, per cell not
            return 1.0 if basis == "atom" else math.nan
        return float(self.n_atoms) if basis == "atom" else 1.0

    def values(self, name: str, basis: str = "atom") -> np.ndarray:
        """Observable ``name`` over the temperatures, per mole of atoms (default) or of the given cell."""
        return self._p.observables[name][self._i] / self._div(name, basis)

    def std(self, name: str, basis: str = "atom") -> np.ndarray | None:
        sd = self._p.std(name)
        if sd is None:
            return None
        return sd[self._i] / (self._div(name, basis) if name in self._p.observables else 1.0)

    def interval(self, name: str, basis: str = "atom") -> tuple[np.ndarray, np.ndarray] | None:
        band = self._p.interval(name)
        if band is None:
            return None
        d = self._div(name, basis) if name in self._p.observables else 1.0
        return band[0][self._i] / d, band[1][self._i] / d

    def __getitem__(self, name: str) -> np.ndarray:
        """Observable per mole of atoms, or a latent (e.g. ``s["theta_D"]``, K)."""
        if name in self._p.observables:
            return self.values(name)
        if name in self._p.latents:
            return self._p.latents[name][self._i]
        raise KeyError(f"{name!r}: not an observable {sorted(self._p.observables)} or latent {sorted(self._p.latents)}")

    @property
    def latents(self) -> dict[str, np.ndarray]:
        return {k: v[self._i] for k, v in self._p.latents.items()}

    @property
    def dos(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None] | None:
        """``(mode temperatures K, modes per atom, their std or None)`` for DOS heads, else ``None``."""
        d = self._p.dos
        if d is None or self.error is not None:
            return None
        n = float(self.n_atoms or 1.0)
        sd = d.get("modes_std")
        return d["theta_K"][self._i], d["modes"][self._i] / n, None if sd is None else sd[self._i] / n

    def total_dos(self, grid: str | float | Sequence[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(frequency THz, states/THz per given cell, states/THz per atom) on ``grid``
        (:meth:`Prediction.total_dos`; the default grid runs to this structure's highest frequency)."""
        if self._p.dos is None or self.error is not None:
            raise DataError(f"{self.name}: no DOS (" + (self.error or f"head {self._p.head!r} has none") + ")")
        if grid is None or not isinstance(parse_dos_grid(grid), np.ndarray):
            step = DEFAULT_DOS_STEP_THZ if grid is None else float(parse_dos_grid(grid))  # type: ignore[arg-type]
            top = float(dos_edges(self._p.dos)[self._i, -1])
            g = step * np.arange(int(math.ceil(top / step)) + 1)
        else:
            g = parse_dos_grid(grid)  # type: ignore[assignment]
        e = dos_edges(self._p.dos)[self._i : self._i + 1]
        cell = total_dos_on_grid(self._p.dos["modes"][self._i : self._i + 1], e, g)[0]
        n = float(self.n_atoms) if self.n_atoms is not None else 1.0
        return g, (cell if self.n_atoms is not None else np.full_like(cell, np.nan)), cell / n

    def __repr__(self) -> str:
        return _table(self._p, [self._i])


def _cell(v: Any) -> Any:
    """A CSV cell: empty for None, floats to 8 significant digits (the model computes in float32)."""
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.8g}"
    return v


_G8 = "{:.8g}".format


#: numeric cells rendered per block by :func:`_write_table` (bounds its memory: ~70 bytes a cell, ~9 MB)
_BLOCK_CELLS = 1 << 17


def _padded(texts: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """``texts`` as rows of 8-byte words (NUL-padded) and the mask of their bytes, both ``uint64``."""
    width = -(-max((len(t) for t in texts), default=0) // 8) * 8
    buf = np.zeros((len(texts), width), dtype=np.uint8)
    mask = np.zeros((len(texts), width), dtype=bool)
    for k, t in enumerate(texts):
        buf[k, : len(t)] = np.frombuffer(t, dtype=np.uint8)
        mask[k, : len(t)] = True
    return buf.view(np.uint64), mask.view(np.uint64)


def _write_table(p: Prediction, fh: Any, obs: list[str], spreadsheet_safe: bool) -> None:
    """The CSV of :meth:`Prediction.write_csv`, block by block of whole items: the text cells of an
    item quoted once, its per-item numbers formatted once, and every per-temperature number of the
    block rendered at once by :func:`cloudphys.numtext.g8_words` (the text of ``f"{x:.8g}"``)."""
    import io

    from ..numtext import g8_words
    from ..outputs import text_cell

    cols = p.columns(obs)
    buf = io.StringIO()
    quote = csv.writer(buf)
    quote.writerow(cols)
    fh.write(buf.getvalue())
    per_t, per_item = p._numbers(obs)
    T = np.asarray(p.temperatures, dtype=np.float64)
    nT = len(T)
    n_commas = len(cols) - 5  # an error row: temperature_K ... the last number empty, then error, symmetry_warning
    items_lat = np.stack(per_item, axis=-1) if per_item else np.zeros((len(p.items), 0))
    n_num = 1 + len(per_t)  # temperature_K and the per-temperature columns
    per_block = max(1, _BLOCK_CELLS // max(1, nT * n_num))

    def quoted(cells: list[Any]) -> str:
        buf.seek(0)
        buf.truncate()
        quote.writerow(cells)
        return buf.getvalue()

    for a in range(0, len(p.items), per_block):
        items = p.items[a : a + per_block]
        heads: list[bytes] = []
        tails: list[bytes] = []
        failed = np.zeros(len(items), dtype=bool)
        for k, it in enumerate(items):
            prefix = quoted([text_cell(it.name, spreadsheet_safe), text_cell(it.source, spreadsheet_safe),
                             text_cell(it.scope, spreadsheet_safe), _cell(it.n_atoms)])[:-2]
            if it.error is not None:
                failed[k] = True
                err = quoted([text_cell(it.error, spreadsheet_safe), text_cell(it.symmetry_warning, spreadsheet_safe)])
                heads.append((prefix + "," * n_commas + err).encode("utf-8"))
                tails.append(b"")
                continue
            warn = quoted([text_cell(it.symmetry_warning, spreadsheet_safe)])[:-2] if it.symmetry_warning else ""
            tail = "".join("," + ("" if math.isnan(v) else _G8(v)) for v in items_lat[a + k].tolist())
            heads.append(prefix.encode("utf-8"))
            tails.append((tail + ",," + warn + "\r\n").encode("utf-8"))
        reps = np.where(failed, 1, nT)
        ii = np.repeat(np.arange(len(items)), reps)  # the block's rows: item (in the block), temperature
        starts = np.cumsum(reps) - reps
        jj = np.arange(len(ii)) - np.repeat(starts, reps)
        jj[failed[ii]] = 0
        values = np.empty((len(ii), n_num), dtype=np.float64)
        values[:, 0] = T[jj] if nT else np.nan
        for c, arr in enumerate(per_t, start=1):
            values[:, c] = arr[a + ii, jj] if nT else np.nan
        head, hmask = _padded(heads)
        tail_w, tmask = _padded(tails)
        wh, wn, wt = head.shape[1], 4 * n_num, tail_w.shape[1]
        words = np.empty((len(ii), wh + wn + wt), dtype=np.uint64)
        keep = np.empty_like(words)
        g8_words(values, out=(words[:, wh : wh + wn].reshape(len(ii), n_num, 4),
                              keep[:, wh : wh + wn].reshape(len(ii), n_num, 4)))
        keep[failed[ii], wh : wh + wn] = 0
        np.take(head, ii, axis=0, out=words[:, :wh])
        np.take(hmask, ii, axis=0, out=keep[:, :wh])
        np.take(tail_w, ii, axis=0, out=words[:, wh + wn :])
        np.take(tmask, ii, axis=0, out=keep[:, wh + wn :])
        fh.write(words.view(np.uint8)[keep.view(bool)].tobytes().decode("utf-8"))


def _fmt(x: float, sd: float | None = None) -> str:
    if not math.isfinite(x):
        return "nan"
    s = f"{x:.4g}" if abs(x) < 1e5 else f"{x:.3e}"
    if sd is None or not math.isfinite(sd):
        return s
    e = f"{sd:.2g}"
    return f"{s}±{sd:.0f}" if "e" in e else f"{s}±{e}"


def _table(p: Prediction, indices: Sequence[int] | None = None) -> str:
    """A compact text table: per structure its latents, then observables per mole of atoms at a few T
    (ids and errors through :func:`~cloudphys.outputs.clean_text`: printing never raises)."""
    from ..outputs import clean_text

    idx = list(range(len(p.items))) if indices is None else list(indices)
    max_items, max_T = (1, 10) if len(idx) == 1 else (5, 4)
    kind = f"{p.members}-member ensemble, value±std" if p.is_ensemble else "single model"
    lines = [f"<Prediction: {len(p.items)} structure(s), {len(p.errors)} failed; model {p.model or '?'} "
             f"(head {p.head or '?'}, {kind}); {len(p.temperatures)} temperatures>"]
    cols = list(p.observables)
    units = [f"{o} [{per_atom_unit(p.quantities[o].unit) if p.quantities[o].extensive else p.quantities[o].unit}]"
             for o in cols]
    tsel = np.unique(np.linspace(0, len(p.temperatures) - 1, min(max_T, len(p.temperatures))).round().astype(int))
    for i in idx[:max_items]:
        s = StructurePrediction(p, i)
        if s.error is not None:
            lines.append(f"  {clean_text(s.name)}: ERROR {clean_text(s.error)}")
            continue
        lat = ", ".join(f"{k} = {_fmt(float(v), None if s.std(k) is None else float(s.std(k)))} {p.quantities[k].unit}"
                        for k, v in s.latents.items() if np.ndim(v) == 0)
        cell = f"n_atoms {s.n_atoms:g}" if s.n_atoms else "no cell given: per atom only"
        lines.append(f"  {clean_text(s.name)} ({cell}{', ' + lat if lat else ''})")
        if s.symmetry_warning:
            lines.append(f"    WARNING {clean_text(s.symmetry_warning)}")
        lines.append("    " + "T [K]".rjust(8) + "".join(u.rjust(22) for u in units))
        for j in tsel:
            vals = []
            for o in cols:
                sd = s.std(o)
                vals.append(_fmt(float(s.values(o)[j]), None if sd is None else float(sd[j])).rjust(22))
            lines.append("    " + f"{p.temperatures[j]:8g}" + "".join(vals))
    if len(idx) > max_items:
        lines.append(f"  ... and {len(idx) - max_items} more (iterate, or .to_csv() / .to_pandas())")
    return "\n".join(lines)


def quantities_from_head(head: Any) -> dict[str, Quantity]:
    """``{name: Quantity}`` for every observable and latent a head declares."""
    out = {o.name: Quantity(o.name, o.unit, bool(o.extensive), o.description, lower=NON_NEGATIVE.get(o.name),
                            upper_per_atom=DULONG_PETIT if (o.name == "cv" and o.extensive) else None)
           for o in head.observables}
    for o in head.observables:  # a probability (e.g. p_unstable): intervals stay inside [0, 1]
        if getattr(o, "kind", "curve") == "probability":
            out[o.name] = Quantity(o.name, o.unit, False, o.description, lower=0.0, upper=1.0)
    out.update({s.name: Quantity(s.name, s.unit, False, s.description, lower=s.lower, upper=s.upper)
                for s in head.latents})
    return out


#: Observables that are non-negative for every harmonic head (heat capacity, vibrational entropy).
NON_NEGATIVE = {"cv": 0.0, "s": 0.0}
#: 3R in J/(K·mol): the harmonic heat capacity of one mole of atoms never exceeds it (Dulong–Petit).
DULONG_PETIT = 3 * 8.314462618
