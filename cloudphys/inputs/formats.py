"""Readers of structure files: CIF, POSCAR/CONTCAR, pymatgen JSON, ASE extxyz / traj / JSON.

Reading happens in two steps so that conversion can run in worker processes and within limits:

1. :func:`read_structure_file` (in the calling process) reads the file within the byte budget and
   splits it into items -- one per CIF data block, per extxyz frame, per trajectory frame, per
   ASE-database row -- each a :class:`DeferredStructure` (text still to be parsed), a validated
   plain dict, an ``ase.Atoms`` or the item's error;
2. :meth:`DeferredStructure.load_structure` (in the worker) parses one item after checking what
   makes parsers slow: symmetry operations and sites of a CIF block, the atom count of a POSCAR.

No reader imports a module named by the data or calls a ``from_dict`` (see :mod:`.plain`).

One module (about 410 lines) on purpose: it is the one place that knows file formats, and every
reader shares the same two-step deferral and the same :class:`~.limits.Limits` budget checks.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import StructureError
from .elements import ISOTOPES, check_element, cif_symbol_element
from .limits import InputLimitError, Limits, file_total_error
from .plain import ase_json_frames, plain_structure
from .textio import is_gzip_name, loads_json, read_text

__all__ = [
    "LOOKED_FOR",
    "STRUCTURE_PREFIXES",
    "STRUCTURE_SUFFIXES",
    "DeferredStructure",
    "parse_cif_block",
    "read_structure_file",
    "split_cif_blocks",
    "structure_kind",
]

#: File names read as structures (also with ``.gz`` appended, except ``.traj``), in a folder or given.
STRUCTURE_SUFFIXES: tuple[str, ...] = (".cif", ".mcif", ".vasp", ".poscar", ".json", ".extxyz", ".xyz", ".traj")
#: ... and names starting with these (any case): VASP's fixed file names.
STRUCTURE_PREFIXES: tuple[str, ...] = ("POSCAR", "CONTCAR")
LOOKED_FOR = (", ".join([f"*{s}" for s in STRUCTURE_SUFFIXES] + [f"{p}*" for p in STRUCTURE_PREFIXES])
              + " (and .gz), in any case, recursively")


def structure_kind(path: Path | str) -> str | None:
    """``cif``, ``poscar``, ``json``, ``extxyz``, ``traj`` or ``None`` (not a structure file name)."""
    name = Path(path).name.lower()
    gz = name.endswith(".gz")
    base = name[:-3] if gz else name
    if base.endswith((".cif", ".mcif")):
        return "cif"
    if base.endswith(".json"):
        return "json"
    if base.endswith((".extxyz", ".xyz")):
        return "extxyz"
    if base.endswith(".traj"):
        return None if gz else "traj"
    if base.endswith((".vasp", ".poscar")) or base.startswith(tuple(p.lower() for p in STRUCTURE_PREFIXES)):
        return "poscar"
    return None


@dataclass(frozen=True)
class DeferredStructure:
    """Structure text read within the byte budget, parsed by :meth:`load_structure` (picklable).

    :param kind: ``cif`` (one data block), ``poscar``, ``extxyz`` (one frame) or ``file`` (any other
        format pymatgen reads; ``text`` is then the path).
    :param path: a file holding just this structure, read again (within the budget) when loading,
        so that a folder of many files is not held in memory; ``text`` is then empty.
    """

    kind: str
    text: str
    limits: Limits
    path: str | None = None

    def load_structure(self) -> Any:
        """The pymatgen ``Structure`` (or ``ase.Atoms``); :class:`StructureError` naming the reason."""
        return self._load(cell=False)

    def load_for_conversion(self) -> Any:
        """What the converter reads (:func:`cloudphys.scope.convert_many`): :meth:`load_structure`'s
        structure, or for a plain P1 CIF its cell (:func:`cloudphys.scope.structure.structure_cell`'s,
        the same lattice, coordinates, types and amounts) read without building the ``Structure``."""
        return self._load(cell=True)

    def _load(self, *, cell: bool) -> Any:
        if self.path is not None and not self.text:
            from .textio import READ_ERRORS, read_error_reason

            try:
                text, size = read_text(self.path, self.limits.max_bytes)
            except READ_ERRORS as exc:
                raise StructureError(f"cannot read the file: {read_error_reason(exc)}") from None
            if text is None:
                raise self.limits.too_big("the file", size, "max_bytes")
            return DeferredStructure(self.kind, text, self.limits)._load(cell=cell)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pymatgen's parsers warn about every oddity
                if self.kind == "cif":
                    s = _parse_cif_block(self.text, self.limits, cell=cell)
                elif self.kind == "poscar":
                    s = _parse_poscar(self.text, self.limits)
                elif self.kind == "extxyz":
                    s = _parse_extxyz_frame(self.text, self.limits)
                elif self.kind == "file":
                    s = _parse_other(self.text)
                else:  # pragma: no cover - constructed only here
                    raise StructureError(f"unknown structure kind {self.kind!r}")
        except InputLimitError:
            raise
        except StructureError as exc:
            if str(exc).startswith("cannot read"):
                raise
            raise StructureError(f"cannot read a structure: {exc}") from None
        n = len(s)
        if n > self.limits.max_atoms:
            raise self.limits.too_big("the number of atoms", n, "max_atoms")
        return s


# ------------------------------------------------------------------------------------------
# CIF: blocks, bounded parse, occupancies
# ------------------------------------------------------------------------------------------

_DATA_RE = re.compile(r"^[ \t]*data_(\S*)", re.IGNORECASE | re.MULTILINE)
_OPS_TAGS = ("_symmetry_equiv_pos_as_xyz", "_space_group_symop_operation_xyz", "_space_group_symop.operation_xyz",
             "_symmetry_equiv.pos_as_xyz", "_space_group_symop_magn_operation.xyz",
             "_space_group_symop_magn_operation_xyz")
_CENTERING_TAGS = ("_space_group_symop_magn_centering.xyz", "_space_group_symop_magn_centering_xyz")
_SITE_TAGS = ("_atom_site_fract_x", "_atom_site.fract_x", "_atom_site_cartn_x", "_atom_site.cartn_x",
              "_atom_site_label", "_atom_site.label")
_OCCU_TAGS = ("_atom_site_occupancy", "_atom_site.occupancy")
_NUM_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?(\(\d+\))?$")


def split_cif_blocks(text: str) -> list[tuple[int, str, str]]:
    """``(first line, block name, block text)`` for each ``data_`` block (none: the whole text)."""
    starts = [(m.start(), m.group(1)) for m in _DATA_RE.finditer(text)]
    if not starts:
        return [(1, "", text)]
    out = []
    for k, (pos, name) in enumerate(starts):
        end = starts[k + 1][0] if k + 1 < len(starts) else len(text)
        out.append((text.count("\n", 0, pos) + 1, name, text[pos:end]))
    return out


def _loop_len(data: dict[str, Any], tags: tuple[str, ...]) -> int | None:
    for t in tags:
        if t in data:
            v = data[t]
            return len(v) if isinstance(v, list) else 1
    return None


def parse_cif_block(text: str, limits: Limits) -> Any:
    """One CIF data block → pymatgen ``Structure``, refusing what pymatgen would silently get wrong
    (a negative, zero or non-numeric occupancy: pymatgen drops the site) or take minutes on (more
    than ``max_symops`` symmetry operations, more than ``max_atoms`` sites or symmetry images)."""
    return _parse_cif_block(text, limits, cell=False)


def _parse_cif_block(text: str, limits: Limits, *, cell: bool) -> Any:
    """:func:`parse_cif_block`; with ``cell``, a plain P1 block read directly gives the converter's
    cell of its structure instead (:meth:`_P1Parts.cell`: the same cell, no ``Structure`` built)."""
    from pymatgen.io.cif import CifFile, CifParser

    try:
        cif = CifFile.from_str(text)
    except Exception as exc:
        raise StructureError(f"not a readable CIF ({type(exc).__name__}: {exc})") from None
    blocks = list(cif.data.values())
    if not blocks:
        raise StructureError("no CIF data block")
    data = blocks[0].data
    n_ops = _loop_len(data, _OPS_TAGS) or 1
    n_ops *= _loop_len(data, _CENTERING_TAGS) or 1
    if n_ops > limits.max_symops:
        raise limits.too_big("the number of symmetry operations", n_ops, "max_symops")
    n_sites = _loop_len(data, _SITE_TAGS) or 0
    if n_sites > limits.max_atoms:
        raise limits.too_big("the number of atom sites", n_sites, "max_atoms")
    if n_sites * n_ops > 2 * limits.max_atoms:
        raise limits.too_big(f"sites x symmetry operations ({n_sites} x {n_ops})", n_sites * n_ops, "max_atoms")
    occ_tag = next((t for t in _OCCU_TAGS if t in data), None)
    if occ_tag is not None:
        labels = data.get("_atom_site_label") or data.get("_atom_site.label") or []
        values = data[occ_tag] if isinstance(data[occ_tag], list) else [data[occ_tag]]
        for k, raw in enumerate(values):
            v = str(raw).strip()
            if v in ("?", "."):
                continue
            label = labels[k] if isinstance(labels, list) and k < len(labels) else f"#{k + 1}"
            occ = float(v.split("(")[0]) if _NUM_RE.match(v) else math.nan
            if not (math.isfinite(occ) and 0 < occ <= 1 + 1e-3):
                raise StructureError(f"site {label}: invalid occupancy {v!r} (must be a number in (0, 1]; "
                                     "pymatgen would drop the site)")
    expected = _cif_elements(data)
    if len(blocks) == 1 and FAST_CIF:
        parts = _plain_p1_parts(data)
        if parts is not None:
            direct = parts.cell() if cell else None
            return direct if direct is not None else parts.structure()
    try:
        parser = CifParser(io.StringIO(text))
        structures = parser.parse_structures(primitive=False, on_error="raise")
    except StructureError:
        raise
    except Exception as exc:
        raise StructureError(f"cannot read a structure ({type(exc).__name__}: {exc})") from None
    if not structures:
        raise StructureError("the CIF block has no structure pymatgen can build")
    got = {sp.symbol for sp in structures[0].composition}
    if expected and got != expected:  # pymatgen reinterpreted a symbol (NO3 -> N, ...) or dropped a site
        raise StructureError(f"the CIF names the elements {', '.join(sorted(expected))} but pymatgen read "
                             f"{', '.join(sorted(got)) or 'none'}; write each site's element symbol plainly")
    return structures[0]


#: read the common CIF (P1, ordered, plain numbers, as pymatgen and most databases write one) directly
#: (:func:`_plain_p1_structure`); ``False`` sends every CIF through pymatgen's ``CifParser`` (tests)
FAST_CIF = True
_PLAIN_FLOAT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_SYMBOL = re.compile(r"^[A-Z][a-z]?$")
_P1_SITE_TAGS = frozenset({"_atom_site_type_symbol", "_atom_site_label", "_atom_site_symmetry_multiplicity",
                           "_atom_site_fract_x", "_atom_site_fract_y", "_atom_site_fract_z", "_atom_site_occupancy"})
_CELL_TAGS = ("_cell_length_a", "_cell_length_b", "_cell_length_c", "_cell_angle_alpha", "_cell_angle_beta",
              "_cell_angle_gamma")


def _plain_p1_parts(data: dict[str, Any]) -> _P1Parts | None:
    """The parts of the pymatgen ``Structure`` that ``CifParser(...).parse_structures(primitive=False)``
    builds from ``data`` (one parsed CIF block), read directly -- or ``None`` when the block is anything but the
    plain common case: the one symmetry operation ``x, y, z``; a cell and fractional coordinates
    written as plain numbers (no uncertainties); each site's type symbol a plain element symbol with
    an electronegativity; occupancies absent or 1; no oxidation states, magnetic or other
    ``_atom_site`` data; no two sites within 2e-4 (fractional) of each other. Same lattice, sites,
    order, coordinates and labels as pymatgen's (its 1/3 and 2/3 rounding, ``x - floor(x)`` wrap and
    sort by electronegativity); ``tests/test_cif_fast.py`` checks the equality on the shared data's CIFs.
    It skips pymatgen's symmetry expansion and site matching (~2/3 of reading such a file)."""
    ops = [t for t in _OPS_TAGS + _CENTERING_TAGS if t in data]
    if ops not in (["_symmetry_equiv_pos_as_xyz"], ["_space_group_symop_operation_xyz"]):
        return None
    op = data[ops[0]]
    op = op if isinstance(op, list) else [op]
    if len(op) != 1 or "".join(str(op[0]).split()).lower() != "x,y,z":
        return None
    site_tags = {t for t in data if t.startswith("_atom_site")}
    if not site_tags <= _P1_SITE_TAGS or any(t.startswith("_atom_type") or "magn" in t or "moment" in t for t in data):
        return None
    cols = {t: data[t] if isinstance(data[t], list) else [data[t]] for t in site_tags}
    labels = cols.get("_atom_site_label")
    symbols = cols.get("_atom_site_type_symbol")
    if labels is None or symbols is None or not all(t in cols for t in ("_atom_site_fract_x", "_atom_site_fract_y",
                                                                        "_atom_site_fract_z")):
        return None
    n = len(labels)
    if n == 0 or any(len(v) != n for v in cols.values()):
        return None
    if not all(isinstance(data.get(t), str) and _PLAIN_FLOAT.match(data[t]) for t in _CELL_TAGS):
        return None
    xyz = [cols[f"_atom_site_fract_{c}"] for c in "xyz"]
    if not all(isinstance(v, str) and _PLAIN_FLOAT.match(v) for col in xyz for v in col):
        return None
    if any(not (isinstance(v, str) and _PLAIN_FLOAT.match(v) and float(v) == 1.0)
           for v in cols.get("_atom_site_occupancy", ())):
        return None
    from pymatgen.core import Element, Lattice

    if not all(isinstance(s, str) and _SYMBOL.match(s) and Element.is_valid_symbol(s) for s in symbols):
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pymatgen warns of the elements without an electronegativity
        electroneg = {s: Element(s).X for s in set(symbols)}
    if any(math.isnan(x) for x in electroneg.values()):  # pymatgen's sort is then order-dependent
        return None
    import numpy as np

    raw = np.array([[float(v) for v in col] for col in xyz], dtype=np.float64).T
    if not np.isfinite(raw).all():
        return None
    with np.errstate(all="ignore"):  # pymatgen's rounding of 0.3333 / 0.6667 to 1/3, 2/3 (its frac_tolerance)
        for frac in (1 / 3, 2 / 3):
            raw[np.abs(raw / frac - 1) <= 1e-4] = frac
    if n > 1:
        d = raw[:, None, :] - raw[None, :, :]
        d -= np.round(d)
        close = (np.abs(d) < 2e-4).all(axis=-1)
        np.fill_diagonal(close, False)
        if close.any():  # pymatgen would merge them: its rules, not ours
            return None
    lattice = Lattice.from_parameters(*(float(data[t]) for t in _CELL_TAGS))
    if min(_axis_plane_spacings(lattice.matrix)) < 0.02:
        return None  # pymatgen's thin-cell refusal, with its message
    coords = raw - np.floor(raw)
    # get_sorted_structure()'s order: by electronegativity, then symbol, stable
    order = sorted(range(n), key=lambda i: (electroneg[symbols[i]], symbols[i]))
    return _P1Parts(lattice, [symbols[i] for i in order], coords[order], [str(labels[i]) for i in order])


@dataclass(frozen=True)
class _P1Parts:
    """What :func:`_plain_p1_parts` read: the pymatgen ``Lattice``, the sites' element symbols,
    fractional coordinates ``[N, 3]`` and labels, in pymatgen's order."""

    lattice: Any
    symbols: list[str]
    coords: Any
    labels: list[str]

    def structure(self) -> Any:
        """The pymatgen ``Structure`` (what ``CifParser`` builds)."""
        from pymatgen.core import Structure

        return Structure(self.lattice, self.symbols, self.coords, labels=self.labels)

    def cell(self) -> Any:
        """The converter's cell of :meth:`structure` built without the ``Structure``
        (:func:`cloudphys.scope.structure.cell_from_symbols`; ``None`` where it cannot say the same)."""
        from ..scope.structure import cell_from_symbols

        return cell_from_symbols(self.lattice.matrix, self.coords, self.symbols)


def _plain_p1_structure(data: dict[str, Any]) -> Any:
    """The pymatgen ``Structure`` of :func:`_plain_p1_parts`, or ``None`` where it reads none."""
    parts = _plain_p1_parts(data)
    return None if parts is None else parts.structure()


def _axis_plane_spacings(matrix: Any) -> list[float]:
    """``[lattice.d_hkl(h) for h in (100), (010), (001)]`` of the pymatgen ``Lattice`` with this
    ``matrix``, by pymatgen's own operations in its order (the same bits; ``tests/test_cif_fast.py``
    checks it) without the two lattices ``d_hkl`` builds on each call."""
    import numpy as np

    reciprocal = np.linalg.inv(np.asarray(matrix, dtype=np.float64)).T * 2 * np.pi  # Lattice.reciprocal_lattice
    crystallographic = reciprocal / (2 * np.pi)  # .reciprocal_lattice_crystallographic
    g_star = np.dot(crystallographic, crystallographic.T)  # its metric_tensor
    return [1 / ((np.dot(np.dot(hkl, g_star), hkl.T)) ** (1 / 2))
            for hkl in (np.array((1, 0, 0)), np.array((0, 1, 0)), np.array((0, 0, 1)))]


_TYPE_TAGS = ("_atom_site_type_symbol", "_atom_site.type_symbol")
_LABEL_TAGS = ("_atom_site_label", "_atom_site.label")


def _cif_elements(data: dict[str, Any]) -> set[str]:
    """The elements a CIF block's sites name (type symbols, else labels), each checked by
    :func:`~.elements.cif_symbol_element` (an unknown or pseudo symbol is an error naming it)."""
    tag = next((t for t in _TYPE_TAGS if t in data), None)
    label = tag is None
    tag = tag or next((t for t in _LABEL_TAGS if t in data), None)
    if tag is None:
        return set()
    values = data[tag] if isinstance(data[tag], list) else [data[tag]]
    out = {cif_symbol_element(str(v), label=label) for v in values}
    out.discard(None)
    return out  # type: ignore[return-value]


# ------------------------------------------------------------------------------------------
# POSCAR, extxyz, other pymatgen formats
# ------------------------------------------------------------------------------------------

def _poscar_atoms(text: str) -> int | None:
    lines = text.splitlines()[5:7]
    for line in lines:
        parts = line.split()
        if parts and all(p.lstrip("+").isdigit() for p in parts):
            return sum(int(p) for p in parts)
    return None


def _parse_poscar(text: str, limits: Limits) -> Any:
    n = _poscar_atoms(text)
    if n is not None and n > limits.max_atoms:
        raise limits.too_big("the number of atoms", n, "max_atoms")
    from pymatgen.io.vasp import Poscar

    lines = text.splitlines()
    symbols = lines[5].split() if len(lines) > 5 else []
    if symbols and not all(t.lstrip("+").isdigit() for t in symbols):  # VASP 5: the species line
        for t in symbols:
            check_element(t.split("/")[0].split("_")[0], "POSCAR species")
    elif lines:  # VASP 4: pymatgen may take the species from the comment line
        for t in lines[0].split():
            if t in ISOTOPES:
                check_element(t, "POSCAR comment-line species")
    try:
        return Poscar.from_str(text, read_velocities=False).structure
    except Exception as exc:
        raise StructureError(f"cannot read a structure: not a POSCAR ({type(exc).__name__}: {exc})") from None


def _parse_extxyz_frame(text: str, limits: Limits) -> Any:
    from ase.io import read

    try:
        return read(io.StringIO(text), format="extxyz", index=0)
    except Exception as exc:
        raise StructureError(f"cannot read a structure: not an extxyz frame ({type(exc).__name__}: {exc})") from None


_UNSAFE_NAME = re.compile(r"json|yaml|yml|mson", re.IGNORECASE)


def _parse_other(path: str) -> Any:
    from pymatgen.core import Structure

    try:
        return Structure.from_file(path)
    except Exception as exc:
        raise StructureError(f"cannot read a structure ({type(exc).__name__}: {exc})") from None


# ------------------------------------------------------------------------------------------
# one file → items
# ------------------------------------------------------------------------------------------

def _split_extxyz(text: str, limits: Limits) -> list[tuple[int, Any]]:
    lines = text.splitlines(keepends=True)
    out: list[tuple[int, Any]] = []
    i = total = 0
    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        head = lines[i].strip()
        try:
            n = int(head)
        except ValueError:
            out.append((i + 1, StructureError(f"line {i + 1}: expected the atom count of a frame, got {head!r:.40}; "
                                              "the rest of the file cannot be read")))
            return out
        if n <= 0 or n > limits.max_atoms:
            err = (limits.too_big("the atom count of the frame", n, "max_atoms") if n > 0
                   else StructureError(f"a frame must have at least one atom, got {n}"))
            out.append((i + 1, StructureError(f"line {i + 1}: {err}; the rest of the file cannot be read")))
            return out
        if i + 2 + n > len(lines):
            out.append((i + 1, StructureError(f"line {i + 1}: the frame declares {n} atoms but the file ends "
                                              f"after {len(lines) - i - 2} more lines")))
            return out
        total += n
        if total > limits.max_file_atoms:
            out.append((i + 1, file_total_error(limits, f"the frames from line {i + 1} on", total)))
            return out
        out.append((i + 1, DeferredStructure("extxyz", "".join(lines[i:i + 2 + n]), limits)))
        i += 2 + n
    if not out:
        out.append((1, StructureError("the file has no frames")))
    return out


def _traj_frames(path: Path, limits: Limits) -> list[tuple[int, Any]]:
    import numpy as np
    from ase import Atoms
    from ase.io import ulm

    size = path.stat().st_size
    if size > limits.max_bytes:
        return [(0, limits.too_big("the trajectory file", size, "max_bytes"))]
    out: list[tuple[int, Any]] = []
    try:
        reader = ulm.Reader(str(path))
    except Exception as exc:
        return [(0, StructureError(f"not an ASE trajectory ({type(exc).__name__}: {exc})"))]
    try:
        if reader.get_tag() != "ASE-Trajectory":
            return [(0, StructureError(f"not an ASE trajectory (tag {reader.get_tag()!r})"))]
        n_frames = len(reader)
        if n_frames == 0:
            return [(0, StructureError("the trajectory has no frames"))]
        numbers = pbc = None
        offsets = [int(o) for o in getattr(reader, "_offsets", [])]
        first_at: dict[int, int] = {}
        total = 0
        for k in range(n_frames):
            if k < len(offsets):
                j = first_at.setdefault(offsets[k], k)
                if j != k:  # the index points at another frame's data: a file expanding itself
                    out.append((k, StructureError(f"frame {k} repeats the data of frame {j} (the trajectory's index "
                                                  "lists one offset twice); the file is corrupt or crafted")))
                    continue
            try:
                b = reader[k]
                numbers = _traj_array(b, "numbers", limits.max_atoms, numbers)
                pbc = _traj_array(b, "pbc", 3, pbc)
                positions = _traj_array(b, "positions", 3 * limits.max_atoms, None)
                cell = _traj_array(b, "cell", 9, None)
                magmoms = _traj_array(b, "magmoms", limits.max_atoms, None, required=False)
                if numbers is None or positions is None or cell is None:
                    raise StructureError("the frame has no numbers, positions or cell")
                atoms = Atoms(numbers=np.asarray(numbers, dtype=np.int64),
                              positions=np.asarray(positions, dtype=np.float64).reshape(-1, 3),
                              cell=np.asarray(cell, dtype=np.float64).reshape(3, 3),
                              pbc=np.asarray(pbc if pbc is not None else True, dtype=bool),
                              magmoms=None if magmoms is None else np.asarray(magmoms, dtype=np.float64))
                if total + len(atoms) > limits.max_file_atoms:
                    out.append((k, file_total_error(limits, f"frames {k}-{n_frames - 1} of {n_frames}",
                                                    total + len(atoms))))
                    break
                total += len(atoms)
                out.append((k, atoms))
            except StructureError as exc:
                out.append((k, exc))
            except Exception as exc:
                out.append((k, StructureError(f"frame {k} cannot be read ({type(exc).__name__}: {exc})")))
    finally:
        reader.close()
    return out


def _traj_array(b: Any, key: str, max_size: int, fallback: Any, *, required: bool = True) -> Any:
    from ase.io.ulm import NDArrayReader

    if key not in b:
        return fallback
    raw = b._data[key] if hasattr(b, "_data") else None
    if isinstance(raw, NDArrayReader) and int(raw.size) > max_size:
        raise StructureError(f"{key} has {int(raw.size):,} values, more than the limit {max_size:,} (max_atoms)")
    value = b.get(key)
    if hasattr(value, "__len__") and len(value) > max_size:
        raise StructureError(f"{key} has {len(value):,} values, more than the limit {max_size:,} (max_atoms)")
    return value


def _json_items(text: str, limits: Limits) -> list[tuple[str, Any]]:
    """``(suffix, item)`` for a pymatgen JSON structure, a JSON list of them, or an ASE database."""
    try:
        doc = loads_json(text)
    except (ValueError, RecursionError) as exc:
        return [("", StructureError(f"not valid JSON ({exc})"))]
    if isinstance(doc, list):
        out: list[tuple[str, Any]] = []
        for k, d in enumerate(doc):
            try:
                out.append((f"@{k}", plain_structure(d, limits)))
            except StructureError as exc:
                out.append((f"@{k}", exc))
        return out or [("", StructureError("an empty JSON list"))]
    if isinstance(doc, dict) and ("ids" in doc or "nextid" in doc or any(str(k).isdigit() for k in doc)):
        frames = ase_json_frames(doc, limits)
        if not frames:
            return [("", StructureError("the ASE database has no rows"))]
        if len(frames) == 1:
            return [("", frames[0][1])]
        return [(f"@{rid}", item) for rid, item in frames]
    try:
        return [("", plain_structure(doc, limits))]
    except StructureError as exc:
        return [("", exc)]


def read_structure_file(path: Path, limits: Limits) -> list[tuple[str, Any]]:
    """``(name, item)`` for each structure in one file; ``item`` a :class:`DeferredStructure`, a
    validated plain dict, an ``ase.Atoms`` or a :class:`StructureError` (the item's error).

    Names: the path for a file with one structure; ``PATH:LINE`` for each data block of a CIF or
    frame of an extxyz file with several; ``PATH@K`` for frame ``K`` of a trajectory or row ``K`` of
    an ASE database / element ``K`` of a JSON list. Read errors of the file itself (not UTF-8,
    corrupt gzip, permissions) propagate (see :data:`.textio.READ_ERRORS`).
    """
    kind = structure_kind(path)
    where = str(path)
    if kind == "traj":
        frames = _traj_frames(path, limits)
        if len(frames) == 1:
            return [(where, frames[0][1])]
        return [(f"{where}@{k}", item) for k, item in frames]
    if kind is None:
        if _UNSAFE_NAME.search(path.name) or is_gzip_name(path):
            return [(where, StructureError(
                f"unknown structure format (structure files are {LOOKED_FOR}; CSV and JSON-lines files "
                "are read as tables)"))]
        size = path.stat().st_size
        if size > limits.max_bytes:
            return [(where, limits.too_big("the file", size, "max_bytes"))]
        return [(where, DeferredStructure("file", where, limits))]
    text, size = read_text(path, limits.max_bytes)
    if text is None:
        return [(where, limits.too_big("the file (after decompression)", size, "max_bytes")
                 if is_gzip_name(path) else limits.too_big("the file", size, "max_bytes"))]
    if kind == "json":
        return [(where + suffix, item) for suffix, item in _json_items(text, limits)]
    if kind == "cif":
        blocks = split_cif_blocks(text)
        if len(blocks) == 1:  # the common case: read again when converted, not kept in memory
            return [(where, DeferredStructure("cif", "", limits, path=where))]
        return [(f"{where}:{line}", DeferredStructure("cif", block, limits)) for line, _, block in blocks]
    if kind == "extxyz":
        frames = _split_extxyz(text, limits)
        if len(frames) == 1:
            item = frames[0][1]
            return [(where, DeferredStructure("extxyz", "", limits, path=where) if isinstance(item, DeferredStructure)
                     else item)]
        return [(f"{where}:{line}", item) for line, item in frames]
    return [(where, DeferredStructure("poscar", "", limits, path=where))]
