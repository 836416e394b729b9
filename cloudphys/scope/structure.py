"""Crystal structure → :class:`ScopeRecord` with one direct spglib call.

The cell handed to spglib is built exactly as pymatgen's ``SpacegroupAnalyzer`` builds it (lattice
matrix, fractional coordinates as stored, one atom type per distinct site species numbered by first
appearance, magnetic moments when the structure carries them), so the space group and Wyckoff letters
are those of CLOUD's published converter; everything else is read from the same spglib result:

* Wyckoff multiplicity (conventional cell) = orbit size in the input cell × atoms in spglib's
  standardized conventional cell / atoms in the input cell (i.e. × V_conventional / V_input);
* composition = exact fraction of the atoms of each element, in order of first appearance (pymatgen's).

Disordered (partial-occupancy) structures are refused with :class:`~cloudphys.errors.StructureError`
unless ``allow_disordered=True``, which treats them as the published converter does: each distinct
site occupancy is one atom type for spglib and amounts are summed occupancies.

One module (about 490 lines) on purpose: building the spglib cell from each input kind, checking it
(overlapping atoms) and reading the record from spglib's result are one conversion path around
the private ``_Cell`` (only :func:`structure_cell` hands one out).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import StructureError
from . import _grammar as G
from .record import ScopeRecord, WyckoffSite
from .symmetry import (
    AUTO,
    DEFAULT_ANGLE_TOLERANCE,
    DEFAULT_SYMPREC,
    PUBLISHED_SYMPREC,
    SymmetryChoice,
    check_tolerances,
    choose_symmetry,
)

__all__ = ["analyze", "analyze_cell", "cell_from_symbols", "from_structure", "primitive_atoms", "read_structure",
           "structure_cell"]

_Z = {symbol: z for z, symbol in enumerate(G.ELEMENTS, start=1)}
_Z[G.DUMMY_SYMBOL] = 0  # pymatgen's DummySpecies("X"), ASE's atomic number 0


class _Cell:
    """What spglib needs plus the composition, in pymatgen's order."""

    __slots__ = ("amounts", "lattice", "magmoms", "positions", "type_species", "types")

    def __init__(self, lattice: Any, positions: Any, types: list[int], magmoms: list[Any] | None,
                 amounts: dict[str, Fraction | int], type_species: dict[int, dict[str, float]] | None = None) -> None:
        self.lattice = lattice
        self.positions = positions
        self.types = types
        self.magmoms = magmoms
        self.amounts = amounts
        #: atom type -> {element: occupancy} of a site of that type (what geometric features read)
        self.type_species = type_species or {}

    def __len__(self) -> int:
        return len(self.types)

    def spglib_cell(self) -> tuple[Any, ...]:
        if self.magmoms is not None:
            return (self.lattice, self.positions, self.types, self.magmoms)
        return (self.lattice, self.positions, self.types)


def _disordered(where: str) -> StructureError:
    return StructureError(
        f"disordered structure ({where} has partial or mixed occupancy); SCOPE strings describe ordered "
        "crystals -- order it first, or pass allow_disordered=True (CLI: --allow-disordered) to convert it "
        "as CLOUD's converter does (each distinct site occupancy one atom type, amounts summed)"
    )


def _frac(x: Any) -> Fraction | int:
    if isinstance(x, int):
        return x
    f = float(x)
    return 1 if f == 1.0 else Fraction(f)


def _cell_from_pymatgen(structure: Any, allow_disordered: bool) -> _Cell:
    """Mirror of SpacegroupAnalyzer.__init__'s cell (types by site species, first appearance)."""
    type_of: dict[Any, int] = {}  # ordered sites: species → type
    mixed: list[Any] = []  # disordered sites: compositions compared with ==, as pymatgen does
    types: list[int] = []
    per_species: dict[Any, Fraction | int] = {}  # species → amount, in order of first appearance
    type_species: dict[int, dict[str, float]] = {}
    has_magmom = False
    for i, site in enumerate(structure):
        comp = site.species
        if len(comp) == 1:
            (key, amt), = comp.items()
            ordered = amt == 1
        else:
            ordered = False
        if ordered:
            t = type_of.get(key)
            if t is None:
                t = type_of[key] = len(type_of) + len(mixed) + 1
                type_species[t] = {key.symbol: 1.0}
            per_species[key] = per_species.get(key, 0) + 1
        else:
            if not allow_disordered:
                raise _disordered(f"site {i}")
            for c, tt in mixed:
                if c == comp:
                    t = tt
                    break
            else:
                t = len(type_of) + len(mixed) + 1
                mixed.append((comp, t))
                type_species[t] = {}
                for sp, amt in comp.items():
                    type_species[t][sp.symbol] = type_species[t].get(sp.symbol, 0.0) + float(amt)
            for sp, amt in comp.items():
                per_species[sp] = per_species.get(sp, 0) + _frac(amt)
        types.append(t)
        if not has_magmom and "magmom" in site.properties:
            has_magmom = True
    if not types:
        raise StructureError("the structure has no sites")
    amounts: dict[str, Fraction | int] = {}
    has_spin = False
    for sp, amt in per_species.items():
        el = sp.symbol
        if el not in _Z:
            raise StructureError(f"{sp!s} is not a chemical element (or the dummy species X)")
        amounts[el] = amounts.get(el, 0) + amt
        if type(sp).__name__ == "Species" and getattr(sp, "spin", None) is not None:
            has_spin = True
    magmoms = None
    if has_magmom or has_spin:
        magmoms = []
        for site in structure:
            if "magmom" in site.properties:
                magmoms.append(site.properties["magmom"])
            elif site.is_ordered and getattr(site.specie, "spin", None) is not None:
                magmoms.append(site.specie.spin)
            else:
                magmoms.append(0)
        magmoms = _magmom_values(magmoms)
    return _Cell(structure.lattice.matrix, structure.frac_coords, types, magmoms, amounts, type_species)


def _magmom_values(magmoms: list[Any]) -> list[Any]:
    out = []
    for m in magmoms:
        if isinstance(m, (list, tuple, np.ndarray)) or hasattr(m, "moment"):
            out.append(tuple(float(v) for v in getattr(m, "moment", m)))
        else:
            out.append(float(m))
    if out and isinstance(out[0], tuple):
        return [m if isinstance(m, tuple) else (0.0, 0.0, float(m)) for m in out]
    return out


def _cell_from_dict(d: Mapping[str, Any], allow_disordered: bool) -> _Cell:
    """A pymatgen ``Structure.as_dict()`` dict, without building pymatgen objects."""
    try:
        lattice = d["lattice"]
        matrix = lattice["matrix"] if isinstance(lattice, Mapping) else lattice
        sites = d["sites"]
        positions = [site["abc"] for site in sites]
    except (KeyError, TypeError) as exc:
        raise StructureError(f"not a pymatgen Structure dict (missing {exc})") from None
    type_of: dict[Any, int] = {}
    type_species: dict[int, dict[str, float]] = {}
    types: list[int] = []
    amounts: dict[str, Fraction | int] = {}
    magmoms: list[Any] = []
    any_magmom = False
    for i, site in enumerate(sites):
        species = site.get("species")
        if not species:
            raise StructureError(f"site {i} has no species")
        if (len(species) != 1 or species[0].get("occu", 1) != 1) and not allow_disordered:
            raise _disordered(f"site {i}")
        key = tuple(
            sorted((sp.get("element"), sp.get("oxidation_state"), sp.get("spin"), float(sp.get("occu", 1)))
                   for sp in species)
        )
        t = type_of.get(key)
        if t is None:
            t = type_of[key] = len(type_of) + 1
            type_species[t] = {}
            for el, _, _, occ in key:
                type_species[t][el] = type_species[t].get(el, 0.0) + occ
        types.append(t)
        for sp in species:
            el = sp.get("element")
            if el not in _Z:
                raise StructureError(f"site {i}: {el!r} is not a chemical element (or the dummy species X)")
            amounts[el] = amounts.get(el, 0) + _frac(sp.get("occu", 1))
        props = site.get("properties") or {}
        if "magmom" in props:
            any_magmom = True
            magmoms.append(props["magmom"])
        elif len(species) == 1 and species[0].get("spin") is not None:
            any_magmom = True
            magmoms.append(species[0]["spin"])
        else:
            magmoms.append(0)
    if not types:
        raise StructureError("the structure has no sites")
    return _Cell(matrix, positions, types, _magmom_values(magmoms) if any_magmom else None, amounts, type_species)


def _species_types(numbers: Iterable[Any]) -> tuple[list[int], dict[str, Fraction | int], dict[int, dict[str, float]]]:
    """spglib atom types from atomic numbers (numbered by first appearance; 0 is a dummy atom), the
    number of atoms of each element and the element of each type."""
    type_of: dict[int, int] = {}
    type_species: dict[int, dict[str, float]] = {}
    types = []
    amounts: dict[str, Fraction | int] = {}
    for i, z in enumerate(numbers):
        z = int(z)
        if not 0 <= z <= len(G.ELEMENTS):
            raise StructureError(f"atom {i}: atomic number {z} is not a chemical element")
        el = G.ELEMENTS[z - 1] if z else G.DUMMY_SYMBOL
        t = type_of.get(z)
        if t is None:
            t = type_of[z] = len(type_of) + 1
            type_species[t] = {el: 1.0}
        types.append(t)
        amounts[el] = amounts.get(el, 0) + 1
    return types, amounts, type_species


def cell_from_symbols(lattice: Any, frac_coords: Any, symbols: Sequence[str]) -> _Cell | None:
    """The cell :func:`structure_cell` builds from the ordered pymatgen ``Structure(Lattice(lattice),
    symbols, frac_coords)`` (plain element symbols, every site fully occupied, no magnetic moments),
    built without the ``Structure`` (what the direct CIF reader hands the converter); ``None`` for a
    symbol that is not an element here (the ``Structure`` then says why)."""
    type_of: dict[str, int] = {}
    type_species: dict[int, dict[str, float]] = {}
    types: list[int] = []
    amounts: dict[str, Fraction | int] = {}
    for el in symbols:
        t = type_of.get(el)
        if t is None:
            if el not in _Z or el == G.DUMMY_SYMBOL:
                return None
            t = type_of[el] = len(type_of) + 1
            type_species[t] = {el: 1.0}
        types.append(t)
        amounts[el] = amounts.get(el, 0) + 1
    if not types:
        return None
    return _Cell(lattice, frac_coords, types, None, amounts, type_species)


def _cell_from_ase(atoms: Any) -> _Cell:
    numbers = [int(z) for z in atoms.numbers]
    if not numbers:
        raise StructureError("the structure has no atoms")
    types, amounts, type_species = _species_types(numbers)
    magmoms = None
    if atoms.has("initial_magmoms"):
        magmoms = _magmom_values(list(atoms.get_initial_magnetic_moments()))
    return _Cell(np.asarray(atoms.cell), atoms.get_scaled_positions(wrap=False), types, magmoms, amounts, type_species)


def _cell_from_tuple(cell: Sequence[Any]) -> _Cell:
    lattice, positions, numbers = cell[0], cell[1], cell[2]
    types, amounts, type_species = _species_types(numbers)
    if not types:
        raise StructureError("the structure has no atoms")
    magmoms = _magmom_values(list(cell[3])) if len(cell) > 3 and cell[3] is not None else None
    return _Cell(lattice, positions, types, magmoms, amounts, type_species)


_MONTY_NAMES = re.compile(r"json|mson|yaml|yml", re.IGNORECASE)


def read_structure(path: str | os.PathLike[str]) -> Any:
    """Read a CIF/POSCAR (any format pymatgen reads) into a pymatgen ``Structure``."""
    p = Path(path)
    if not p.is_file():
        raise StructureError(f"{p}: no such file")
    if _MONTY_NAMES.search(p.name):  # pymatgen decodes these with monty, which imports modules named in the file
        raise StructureError(f"{p}: JSON/YAML structure files are read as plain data by cloudphys.inputs.read_inputs, "
                             "never through pymatgen's decoder (which can import code named in the file)")
    from pymatgen.core import Structure

    try:
        return Structure.from_file(str(p))
    except Exception as exc:
        raise StructureError(f"{p}: cannot read a structure ({type(exc).__name__}: {exc})") from exc


def structure_from_text(text: str, fmt: str = "cif") -> Any:
    """Parse CIF (or POSCAR with ``fmt="poscar"``) text into a pymatgen ``Structure``."""
    from pymatgen.core import Structure

    try:
        return Structure.from_str(text, fmt=fmt)  # type: ignore[arg-type]
    except Exception as exc:
        raise StructureError(f"cannot read a structure from {fmt} text ({type(exc).__name__}: {exc})") from exc


def _derives_from(obj: Any, module: str) -> bool:
    """Whether a class in ``type(obj)``'s MRO lives in ``module`` (no import of that package)."""
    return any(cls.__module__.startswith(module) for cls in type(obj).__mro__)


def structure_cell(structure: Any, *, allow_disordered: bool = False) -> _Cell:
    """The spglib cell and composition of any supported input (see :func:`from_structure`); a cell
    this function built already is returned as it is (:func:`analyze_cell` hands its cell on, so the
    geometric features of a converted structure do not build it again)."""
    if isinstance(structure, _Cell):
        return structure
    if isinstance(structure, Mapping):
        return _cell_from_dict(structure, allow_disordered)
    if isinstance(structure, (str, os.PathLike)):
        return _cell_from_pymatgen(read_structure(structure), allow_disordered)
    if _derives_from(structure, "pymatgen.core") and hasattr(structure, "frac_coords"):
        return _cell_from_pymatgen(structure, allow_disordered)
    if _derives_from(structure, "ase.atoms") and hasattr(structure, "get_scaled_positions"):
        return _cell_from_ase(structure)
    if isinstance(structure, (tuple, list)) and len(structure) in (3, 4):
        return _cell_from_tuple(structure)
    raise StructureError(
        f"cannot convert a {type(structure).__module__}.{type(structure).__name__}: expected a pymatgen "
        "Structure, an ASE Atoms, a path to a CIF/POSCAR file, a Structure.as_dict() dict or a spglib "
        "cell (lattice, fractional positions, atomic numbers)"
    )


#: Atoms closer than this (Å, periodic images included), or than ``symprec``, are overlapping:
#: spglib would silently merge them. No real crystal comes close (the shortest bond, H-H, is 0.74 Å).
MIN_DISTANCE = 0.1
_MAX_FRACTIONAL = 1e6  # beyond this a float64 fractional coordinate no longer locates an atom


def _check_cell(cell: _Cell, symprec: float = 0.0) -> None:
    """Refuse what spglib would crash on (NaN, inf: segfault) or silently get wrong (overlaps)."""
    try:
        lattice = np.asarray(cell.lattice, dtype=np.float64)
        positions = np.asarray(cell.positions, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise StructureError(f"the lattice and the coordinates must be numbers ({exc})") from None
    if lattice.shape != (3, 3):
        raise StructureError(f"the lattice must be a 3x3 matrix (Å), got shape {lattice.shape}")
    if positions.ndim != 2 or positions.shape[1] != 3:
        raise StructureError(f"fractional coordinates must have shape (atoms, 3), got {positions.shape}")
    if len(positions) != len(cell.types):
        raise StructureError(f"{len(positions)} coordinates but {len(cell.types)} atoms")
    if not np.isfinite(lattice).all():
        raise StructureError(f"the lattice has NaN or infinite entries: {lattice.tolist()}")
    if not np.isfinite(positions).all():
        bad = np.flatnonzero(~np.isfinite(positions).all(axis=1))
        raise StructureError(f"atom {bad[0]} has NaN or infinite coordinates {positions[bad[0]].tolist()}")
    if len(positions) and np.abs(positions).max() > _MAX_FRACTIONAL:
        big = np.flatnonzero((np.abs(positions) > _MAX_FRACTIONAL).any(axis=1))
        raise StructureError(
            f"atom {big[0]} has fractional coordinates {positions[big[0]].tolist()} too large to place it"
        )
    # 3x3 geometry in plain Python (cheaper than numpy calls at this size)
    (a1, a2, a3), (b1, b2, b3), (c1, c2, c3) = lattice.tolist()
    crosses = (  # b×c, c×a, a×b: |b_k| = |cross_k| / V are the reciprocal vector lengths
        (b2 * c3 - b3 * c2, b3 * c1 - b1 * c3, b1 * c2 - b2 * c1),
        (c2 * a3 - c3 * a2, c3 * a1 - c1 * a3, c1 * a2 - c2 * a1),
        (a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1),
    )
    volume = abs(a1 * crosses[0][0] + a2 * crosses[0][1] + a3 * crosses[0][2])
    lengths = [math.sqrt(x * x + y * y + z * z) for x, y, z in ((a1, a2, a3), (b1, b2, b3), (c1, c2, c3))]
    if not math.isfinite(volume) or volume <= 1e-8 * max(lengths[0] * lengths[1] * lengths[2], 1e-300):
        raise StructureError(
            f"the lattice has zero volume ({volume:.3g} Å^3; vectors of length "
            f"{', '.join(f'{x:.3g}' for x in lengths)} Å "
            "are degenerate) -- a crystal (and spglib) needs three independent lattice vectors"
        )
    if cell.magmoms is not None and not np.isfinite(np.asarray(cell.magmoms, dtype=np.float64)).all():
        raise StructureError("magnetic moments must be finite numbers")
    limit = max(MIN_DISTANCE, symprec)
    recip = [math.sqrt(x * x + y * y + z * z) / volume for x, y, z in crosses]
    i, j, d = _overlapping_pair(lattice, positions, limit, recip_lengths=recip)
    if d < limit:
        what = f"atom {i} overlaps its own periodic image" if i == j else f"atoms {i} and {j} overlap"
        raise StructureError(f"{what}: {d:.3g} Å apart, less than {limit:g} Å (spglib cannot tell them apart)")


def _overlapping_pair(lattice: np.ndarray, positions: np.ndarray, limit: float, block: int = 512,
                      recip_lengths: Sequence[float] | None = None) -> tuple[int, int, float]:
    """The closest pair of atoms among those closer than ``limit`` Å (periodic images included), or
    ``(0, 0, inf)`` if none is. One image per pair instead of :func:`_closest_pair`'s 27.

    Two atoms closer than ``limit`` differ by at most ``w_k = limit·|b_k|`` in fractional coordinate k
    (``b_k``: reciprocal vectors). When every ``w_k < 1/2`` the only image that close is the nearest one
    in every coordinate (the rounded fractional difference), so every pair is measured at that image
    alone; cells thinner than ``2·limit`` fall back to :func:`_closest_pair`.
    """
    if recip_lengths is None:
        recip_lengths = np.linalg.norm(np.linalg.inv(lattice), axis=0).tolist()
    w = [limit * x + 1e-12 for x in recip_lengths]
    if max(w) >= 0.5:
        return _closest_pair(lattice, positions)
    if len(positions) < 2:
        return (0, 0, float("inf"))
    n = len(positions)
    best = (0, 0, float("inf"))
    limit2 = limit * limit
    for start in range(0, n, block):
        a = positions[start : start + block]
        diff = positions[None, :, :] - a[:, None, :]  # [b, n, 3]
        diff -= np.rint(diff)  # the nearest image in every coordinate: the only one that can be that close
        cart = diff @ lattice
        d2 = (cart * cart).sum(-1)
        if start == 0 and n <= block:
            np.fill_diagonal(d2, np.inf)  # the atom itself
        else:
            rows = np.arange(len(a))
            d2[rows, start + rows] = np.inf
        k = int(np.argmin(d2))
        if d2.flat[k] < limit2:
            r, c = divmod(k, n)
            dist = math.sqrt(float(d2.flat[k]))
            if dist < best[2]:
                best = (start + r, c, dist)
    return best


def _closest_pair(lattice: np.ndarray, positions: np.ndarray) -> tuple[int, int, float]:
    """The closest pair of atoms (``i == j``: an atom and its own image) over the 27 nearest cells."""
    frac = positions - np.floor(positions)
    shifts = np.array([(a, b, c) for a in (-1, 0, 1) for b in (-1, 0, 1) for c in (-1, 0, 1)], dtype=np.float64)
    images = shifts @ lattice  # [27, 3] Å
    cart = frac @ lattice
    n = len(cart)
    block = max(1, 1_000_000 // (27 * n))  # rows per chunk: at most ~24 MB of differences
    best = (0, 0, float("inf"))
    for start in range(0, n, block):
        a = cart[start : start + block]
        diff = a[:, None, None, :] - cart[None, :, None, :] - images[None, None, :, :]  # [b, n, 27, 3]
        dist = np.sqrt((diff * diff).sum(-1))
        rows = np.arange(len(a))
        dist[rows, start + rows, 13] = np.inf  # the atom itself, same cell
        k = int(np.argmin(dist))
        r, c, _ = np.unravel_index(k, dist.shape)
        if dist.flat[k] < best[2]:
            best = (start + int(r), int(c), float(dist.flat[k]))
    return best


def _spglib(cell: _Cell, symprec: float, angle_tolerance: float) -> Any:
    import spglib

    try:
        ds = spglib.get_symmetry_dataset(cell.spglib_cell(), symprec=symprec, angle_tolerance=angle_tolerance)
    except Exception as exc:  # spglib's error types vary across versions
        raise StructureError(f"spglib cannot determine the symmetry: {exc}") from None
    if ds is None:
        raise StructureError(
            "spglib cannot determine the symmetry (overlapping atoms, a degenerate lattice or "
            f"too strict a tolerance; symprec={symprec})"
        )
    return ds


def _dataset(cell: _Cell, symprec: float, angle_tolerance: float) -> Any:
    _check_cell(cell, symprec)
    return _spglib(cell, symprec, angle_tolerance)


def _symmetry(cell: _Cell, symprec: float | str, angle_tolerance: float) -> SymmetryChoice:
    """spglib's reading at ``symprec`` (Å) or ``"auto"`` (see :mod:`cloudphys.scope.symmetry`)."""
    _check_cell(cell, PUBLISHED_SYMPREC if symprec == AUTO else float(symprec))
    lattice = np.asarray(cell.lattice, dtype=np.float64)
    positions = np.asarray(cell.positions, dtype=np.float64)

    def closest(limit: float) -> float:
        return _overlapping_pair(lattice, positions, limit)[2]

    return choose_symmetry(lattice, positions, lambda t: _spglib(cell, t, angle_tolerance), symprec,
                           closest=closest)


def analyze(
    structure: Any,
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    *,
    allow_disordered: bool = False,
    canonical: bool = False,
) -> tuple[ScopeRecord, SymmetryChoice]:
    """:func:`from_structure`'s record and the :class:`~cloudphys.scope.symmetry.SymmetryChoice` it
    was read from (the tolerance used, the RMS displacement to the symmetrized structure, and the
    low-symmetry warning, if any). Arguments and errors as :func:`from_structure`'s."""
    return analyze_cell(structure, symprec, angle_tolerance, allow_disordered=allow_disordered,
                        canonical=canonical)[:2]


def analyze_cell(
    structure: Any,
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    *,
    allow_disordered: bool = False,
    canonical: bool = False,
) -> tuple[ScopeRecord, SymmetryChoice, _Cell]:
    """:func:`analyze`'s record and symmetry, and the cell they were read from (what
    :func:`structure_cell` builds; give it back to :func:`structure_cell` -- e.g. to
    :func:`cloudphys.scope.geometry.geometric_features` -- instead of building it again). The cell of
    a structure that converts is the same with or without ``allow_disordered``."""
    symprec, angle_tolerance = check_tolerances(symprec, angle_tolerance, error=StructureError)
    try:
        cell = structure_cell(structure, allow_disordered=allow_disordered)
        choice = _symmetry(cell, symprec, angle_tolerance)
        record = _record(cell, choice.dataset)
        return (record.canonical() if canonical else record), choice, cell
    except StructureError as exc:
        where = os.fspath(structure) if isinstance(structure, (str, os.PathLike)) else None
        if where is None or str(exc).startswith(where):
            raise
        raise StructureError(f"{where}: {exc}") from None  # name the file


def from_structure(
    structure: Any,
    symprec: float | str = DEFAULT_SYMPREC,
    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE,
    *,
    allow_disordered: bool = False,
    canonical: bool = False,
) -> ScopeRecord:
    """The SCOPE record of a crystal structure.

    :param structure: a pymatgen ``Structure``, an ASE ``Atoms``, a path to a CIF/POSCAR file, a
        pymatgen ``Structure.as_dict()`` dict (as in phonondb's ``materials.jsonl.gz``), or a spglib
        cell ``(lattice, fractional positions, atomic numbers)``.
    :param symprec: spglib's distance tolerance in Å (CLOUD's converter: 0.01), or ``"auto"`` (the
        default): 0.01 Å for a structure that satisfies its symmetry exactly, a looser tolerance (up
        to 0.2 Å, RMS displacement to the symmetrized structure at most 0.1 Å) for a noisy one such
        as an ML-relaxed structure (:mod:`cloudphys.scope.symmetry`).
    :param angle_tolerance: spglib's angle tolerance in degrees (pymatgen's default 5).
    :param allow_disordered: convert partial-occupancy structures as CLOUD's converter does
        instead of raising.
    :param canonical: return :meth:`ScopeRecord.canonical` (the same record for every cell, origin,
        site order and setting of the crystal). Default ``False``: the record as spglib reads this
        cell (sites and elements in order of first appearance), which ``render("cloud")`` writes
        exactly as CLOUD's converter does; ``render()`` (default dialect) is canonical either way.

    Raises :class:`~cloudphys.errors.StructureError` naming the reason when the input cannot be
    converted (unreadable, disordered, no element, spglib finds no symmetry, a tolerance out of range).
    """
    return analyze(structure, symprec, angle_tolerance, allow_disordered=allow_disordered, canonical=canonical)[0]


def primitive_atoms(structure: Any, symprec: float | str = DEFAULT_SYMPREC,
                    angle_tolerance: float = DEFAULT_ANGLE_TOLERANCE) -> int:
    """Atoms per primitive cell of ``structure`` (any input of :func:`from_structure`): spglib's
    standardized conventional cell's atoms divided by its lattice points, read at the same tolerance
    as :func:`from_structure`'s. Exact and the same for every
    cell of the crystal, unlike :attr:`ScopeRecord.sites_per_primitive_cell`, a lower bound where two
    orbits share a Wyckoff letter. Raises :class:`~cloudphys.errors.StructureError` like ``from_structure``."""
    symprec, angle_tolerance = check_tolerances(symprec, angle_tolerance, error=StructureError)
    ds = _symmetry(structure_cell(structure), symprec, angle_tolerance).dataset
    return len(ds.std_types) // G.lattice_points(int(ds.number))


def _record(cell: _Cell, ds: Any) -> ScopeRecord:
    number = int(ds.number)
    n_in = len(cell.types)
    n_std = len(ds.std_types)
    # crystallographic_orbits, not equivalent_atoms: the latter uses only the operations found in the
    # input cell and can split one orbit of the primitive cell in two (mp-757343: 8f read as two 4f)
    equivalent = ds.crystallographic_orbits
    orbit = np.bincount(equivalent, minlength=n_in)
    sites: list[WyckoffSite] = []
    seen: set[str] = set()
    for i, letter in enumerate(ds.wyckoffs):
        if letter in seen:
            continue
        seen.add(letter)
        num = int(orbit[equivalent[i]]) * n_std
        if num % n_in:
            raise StructureError(
                f"inconsistent spglib result: orbit of atom {i} gives a non-integer multiplicity "
                f"{num}/{n_in} for Wyckoff letter {letter!r}"
            )
        sites.append(WyckoffSite(num // n_in, letter))
    total = sum(cell.amounts.values())
    comp = tuple((el, Fraction(amt) / total) for el, amt in cell.amounts.items())
    return ScopeRecord(number, tuple(sites), comp)
