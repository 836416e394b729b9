"""Structures from plain JSON values -- data never runs code.

pymatgen's ``Structure.from_dict`` decodes site properties with monty's ``MontyDecoder``, which
imports the module named by any ``@module`` key and calls its class's ``from_dict``: a structure
file could make the reader run code. This module reads the same documents (``Structure.as_dict()``,
ASE's JSON database format) as plain JSON: numbers, strings, lists, mappings. ``@module``/``@class``
keys are inert data here; the only encoded shapes understood are two fixed ones, decoded without
any import (a monty ``numpy`` array → its list, a pymatgen ``Magmom`` → its moment vector). Every
value is type-checked; a wrong one is a :class:`~cloudphys.errors.StructureError` naming the site
and the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ..errors import StructureError
from .elements import check_element
from .limits import Limits

__all__ = ["ase_json_frames", "plain_structure", "plain_value", "structure_from_plain"]

_OCCU_TOL = 1e-6


def plain_value(value: Any, depth: int = 0) -> Any:
    """A JSON value with the two known encoded shapes decoded; everything else kept as plain data."""
    if depth > 64:
        raise StructureError("a property is nested more than 64 levels deep")
    if isinstance(value, Mapping):
        mod, cls = value.get("@module"), value.get("@class")
        if mod == "numpy" and cls == "array" and isinstance(value.get("data"), list):
            return plain_value(value["data"], depth + 1)
        if cls == "Magmom" and isinstance(value.get("moment"), list):
            return [_number(v, "magmom") for v in value["moment"]]
        return {str(k): plain_value(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_value(v, depth + 1) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise StructureError(f"unexpected value of type {type(value).__name__}")


def _number(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise StructureError(f"{what} must be a number, got {v!r:.60}")
    f = float(v)
    if not math.isfinite(f):
        raise StructureError(f"{what} must be a finite number, got {v!r} (NaN or infinite)")
    return f


_NUMERIC = (int, float)
_isfinite = math.isfinite


def _vector(v: Any, what: str) -> list[float]:
    if type(v) is list and len(v) == 3:  # the fast path: three plain finite numbers (bool excluded)
        a, b, c = v
        if (type(a) in _NUMERIC and type(b) in _NUMERIC and type(c) in _NUMERIC
                and _isfinite(a) and _isfinite(b) and _isfinite(c)):
            return [float(a), float(b), float(c)]
    if not isinstance(v, list) or len(v) != 3:
        raise StructureError(f"{what} must be a list of 3 numbers, got {v!r:.80}")
    return [_number(x, what) for x in v]


def plain_structure(d: Any, limits: Limits) -> dict[str, Any]:
    """Validate a ``Structure.as_dict()``-shaped value into a plain dict (no pymatgen objects).

    Checked: a 3x3 finite lattice (``lattice.matrix`` or a bare matrix), 1..``max_atoms`` sites,
    each with a non-empty ``species`` list of ``{"element": str, "occu": number in (0, 1]}``
    (site total ≤ 1), optional numeric ``oxidation_state``/``spin``, and ``abc`` (fractional) or
    ``xyz`` (Cartesian, Å) coordinates. Returns the same shape with ``abc`` always present.
    """
    if not isinstance(d, Mapping):
        raise StructureError(f"a structure must be a JSON object, got {type(d).__name__}")
    if "lattice" not in d or "sites" not in d:
        missing = [k for k in ("lattice", "sites") if k not in d]
        raise StructureError(f"not a pymatgen Structure dict (missing {', '.join(map(repr, missing))})")
    lat = d["lattice"]
    matrix = lat.get("matrix") if isinstance(lat, Mapping) else lat
    if not isinstance(matrix, list) or len(matrix) != 3:
        raise StructureError(f"the lattice must be a 3x3 matrix of numbers (Å), got {matrix!r:.80}")
    m = [_vector(row, "a lattice row") for row in matrix]
    sites = d["sites"]
    if not isinstance(sites, list):
        raise StructureError(f"'sites' must be a list, got {type(sites).__name__}")
    if not sites:
        raise StructureError("the structure has no sites")
    if len(sites) > limits.max_atoms:
        raise limits.too_big("the number of sites", len(sites), "max_atoms")
    inv = None
    out_sites = []
    for i, site in enumerate(sites):
        if not isinstance(site, Mapping):
            raise StructureError(f"site {i} must be a JSON object, got {type(site).__name__}")
        species = site.get("species")
        if not isinstance(species, list) or not species:
            raise StructureError(f"site {i} has no species list")
        sp_out = []
        total = 0.0
        for sp in species:
            if not isinstance(sp, Mapping) or not isinstance(sp.get("element"), str):
                raise StructureError(f"site {i}: each species needs an 'element' string, got {sp!r:.80}")
            check_element(sp["element"], f"site {i}: element")  # never D -> H, Va -> V
            occu = _number(sp.get("occu", 1), f"site {i}: occupancy")
            if not 0 < occu <= 1 + _OCCU_TOL:
                raise StructureError(f"site {i}: invalid occupancy {occu!r} of {sp['element']} (must be in (0, 1])")
            total += occu
            entry: dict[str, Any] = {"element": sp["element"], "occu": occu}
            for key in ("oxidation_state", "spin"):
                if sp.get(key) is not None:
                    entry[key] = _number(sp[key], f"site {i}: {key}")
            sp_out.append(entry)
        if total > 1 + _OCCU_TOL:
            raise StructureError(f"site {i}: occupancies sum to {total:g} (more than one atom on the site)")
        if "abc" in site:
            abc = _vector(site["abc"], f"site {i}: fractional coordinates 'abc'")
        elif "xyz" in site:
            xyz = _vector(site["xyz"], f"site {i}: Cartesian coordinates 'xyz'")
            if inv is None:
                import numpy as np

                try:
                    inv = np.linalg.inv(np.asarray(m, dtype=float))
                except np.linalg.LinAlgError:
                    raise StructureError("the lattice is singular (its vectors are linearly dependent)") from None
            abc = [float(v) for v in np.asarray(xyz) @ inv]
        else:
            raise StructureError(f"site {i} has no coordinates ('abc' or 'xyz')")
        entry_site: dict[str, Any] = {"species": sp_out, "abc": abc}
        props = site.get("properties")
        if props is not None:
            if not isinstance(props, Mapping):
                raise StructureError(f"site {i}: 'properties' must be a JSON object")
            entry_site["properties"] = plain_value(props)
        if isinstance(site.get("label"), str):
            entry_site["label"] = site["label"]
        out_sites.append(entry_site)
    return {"lattice": {"matrix": m}, "sites": out_sites}


def structure_from_plain(d: Mapping[str, Any]) -> Any:
    """A pymatgen ``Structure`` from a dict validated by :func:`plain_structure` (constructors only)."""
    from pymatgen.core import DummySpecies, Element, Lattice, Species, Structure

    def species(sp: Mapping[str, Any]) -> Any:
        el, ox, spin = sp["element"], sp.get("oxidation_state"), sp.get("spin")
        try:
            if ox is None and spin is None:
                return Element(el)
            return Species(el, ox, spin=spin)
        except (ValueError, KeyError):
            try:
                return DummySpecies(el, ox or 0) if spin is None else DummySpecies(el, ox or 0, spin=spin)
            except Exception as exc:
                raise StructureError(f"{el!r} is not a chemical element or a dummy species ({exc})") from None

    sites = d["sites"]
    comps = [{species(sp): sp["occu"] for sp in s["species"]} for s in sites]
    keys: list[str] = []
    for s in sites:
        for k in s.get("properties") or {}:
            if k not in keys:
                keys.append(k)
    props = {k: [(s.get("properties") or {}).get(k) for s in sites] for k in keys}
    labels = [s.get("label") for s in sites]
    try:
        return Structure(Lattice(d["lattice"]["matrix"]), comps, [s["abc"] for s in sites],
                         site_properties=props or None, labels=labels if all(labels) else None)
    except StructureError:
        raise
    except Exception as exc:
        raise StructureError(f"cannot build the structure ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------------------------------
# ASE's JSON database format (ase.io.write("x.json", atoms)), read without ase's decoder
# ------------------------------------------------------------------------------------------

_DTYPES = {"float64", "float32", "int64", "int32", "int16", "int8", "uint8", "bool", "bool_"}


def _ase_decode(value: Any, limits: Limits, depth: int = 0) -> Any:
    if depth > 64:
        raise StructureError("nested more than 64 levels deep")
    if isinstance(value, Mapping):
        if "__ndarray__" in value:
            try:
                shape, dtype, data = value["__ndarray__"]
            except (TypeError, ValueError):
                raise StructureError("malformed __ndarray__ (expected [shape, dtype, data])") from None
            if dtype not in _DTYPES:
                raise StructureError(f"array dtype {dtype!r} is not a numeric type")
            if not isinstance(shape, list) or not all(isinstance(n, int) and n >= 0 for n in shape):
                raise StructureError(f"malformed array shape {shape!r:.60}")
            size = math.prod(shape)
            if not isinstance(data, list) or len(data) != size:
                raise StructureError(f"array of shape {shape} needs {size} values")
            import numpy as np

            try:
                return np.asarray(data, dtype=dtype).reshape(shape)
            except (TypeError, ValueError) as exc:
                raise StructureError(f"bad array values ({exc})") from None
        if value.get("__ase_objtype__") == "cell" and "array" in value:
            return _ase_decode(value["array"], limits, depth + 1)
        return {str(k): _ase_decode(v, limits, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_ase_decode(v, limits, depth + 1) for v in value]
    return value


def ase_json_frames(doc: Mapping[str, Any], limits: Limits) -> list[tuple[str, Any]]:
    """``(row id, ase.Atoms or StructureError)`` for each row of an ASE JSON database document."""
    from .limits import file_total_error

    ids = doc.get("ids")
    if not isinstance(ids, list):
        ids = [k for k in doc if str(k).isdigit()]
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    repeats = len(ids) - len({str(r) for r in ids})
    total = 0
    for k, rid in enumerate(ids):
        key = str(rid)
        if key in seen:  # a row listed again: a small file expanding itself; one error row for all repeats
            if repeats:
                out.append((f"{key}#{k}", StructureError(
                    f"row id {key} is listed again in 'ids' (entry {k}); each row is read once, the {repeats:,} "
                    "repeated entries of 'ids' are not read")))
                repeats = 0
            continue
        seen.add(key)
        try:
            row = doc.get(key)
            if not isinstance(row, Mapping):
                raise StructureError(f"row {rid} is missing")
            atoms = _ase_atoms(_ase_decode(row, limits), limits)
            if total + len(atoms) > limits.max_file_atoms:
                out.append((key, file_total_error(limits, f"rows {key} and the {len(ids) - k - 1} after it",
                                                  total + len(atoms))))
                break
            total += len(atoms)
            out.append((key, atoms))
        except StructureError as exc:
            out.append((key, exc))
    return out


def _ase_atoms(row: Mapping[str, Any], limits: Limits) -> Any:
    import numpy as np
    from ase import Atoms

    numbers = np.asarray(row.get("numbers", []))
    if numbers.ndim != 1 or numbers.size == 0:
        raise StructureError("the row has no atoms ('numbers')")
    if numbers.size > limits.max_atoms:
        raise limits.too_big("the number of atoms", int(numbers.size), "max_atoms")
    try:
        positions = np.asarray(row.get("positions"), dtype=np.float64).reshape(numbers.size, 3)
        cell = np.asarray(row.get("cell", np.zeros((3, 3))), dtype=np.float64).reshape(3, 3)
        pbc = np.asarray(row.get("pbc", [True, True, True]), dtype=bool).reshape(3)
        numbers = numbers.astype(np.int64)
        magmoms = row.get("initial_magmoms")
        magmoms = None if magmoms is None else np.asarray(magmoms, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StructureError(f"malformed numbers, positions, cell or pbc ({exc})") from None
    if not (np.isfinite(positions).all() and np.isfinite(cell).all()):
        raise StructureError("positions or cell have NaN or infinite values")
    return Atoms(numbers=numbers, positions=positions, cell=cell, pbc=pbc, magmoms=magmoms)
