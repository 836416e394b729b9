"""Which spglib tolerance reads a structure's symmetry, and the low-symmetry warning.

A structure relaxed with an ML potential (or any finite-precision optimiser) carries noise of
0.005-0.05 Å. At the published converter's ``symprec`` of 0.01 Å a rattle of 0.005 Å already reads as
``P 1`` for 94 % of the stable phonondb-thermo test crystals (``benchmarks/bench_rattle.py``). The
default ``symprec="auto"`` therefore reads the structure in two steps:

1. spglib at the published 0.01 Å. If the group found is not P1 and the structure satisfies it
   exactly (every atom within :data:`CLEAN_DISPLACEMENT` of its symmetrized position), that is the
   answer: DFT structures, CIFs of databases and every structure the training sets were converted
   from keep the string the published converter writes.
2. Otherwise the structure is noisy: spglib is asked again at each tolerance of :data:`AUTO_LADDER`
   and the highest symmetry (most operations in the given cell; the smallest tolerance among equals)
   whose symmetrized structure lies within :data:`MAX_RMS_DISPLACEMENT` (RMS over the atoms, rigid
   shift removed) of the input is kept.

The bound of 0.1 Å RMS is the scale of thermal vibration amplitudes at room temperature: a
structure closer than that to a symmetric one cannot be told from it by its phonons.

Whatever the tolerance, where the symmetry found is far lower than at a looser tolerance of the
ladder (the looser group has :data:`WARNING_INDEX` or more times the operations in the given cell,
e.g. P1 for a many-atom cell that is cubic at 0.1 Å), :func:`low_symmetry_warning` says so; the
conversion results, predictions and their CSVs carry it in ``symmetry_warning``. A structure that
satisfies a non-trivial group exactly (step 1) gets no warning: its lower symmetry is real.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..bounds import ANGLE_TOLERANCE, SYMPREC, check_bound
from ..errors import CloudphysError, ConfigError

__all__ = [
    "AUTO",
    "AUTO_LADDER",
    "CLEAN_DISPLACEMENT",
    "DEFAULT_ANGLE_TOLERANCE",
    "DEFAULT_SYMPREC",
    "MAX_RMS_DISPLACEMENT",
    "PUBLISHED_SYMPREC",
    "WARNING_INDEX",
    "SymmetryChoice",
    "check_tolerances",
    "choose_symmetry",
    "low_symmetry_warning",
    "symmetrization_displacement",
]

AUTO = "auto"
#: ``symprec`` of CLOUD's published converter (Å); the data sets are converted with it.
PUBLISHED_SYMPREC = 0.01
#: Default ``symprec`` of conversion and prediction.
DEFAULT_SYMPREC: float | str = AUTO
#: Default angle tolerance (degrees; pymatgen's).
DEFAULT_ANGLE_TOLERANCE = 5.0
#: Tolerances (Å) tried for a noisy structure, and for the warning.
AUTO_LADDER = (0.01, 0.02, 0.05, 0.1, 0.2)
#: Largest RMS displacement (Å) to the symmetrized structure that ``"auto"`` accepts.
MAX_RMS_DISPLACEMENT = 0.1
#: A structure whose atoms all lie within this (Å) of their symmetrized positions satisfies the group exactly.
CLEAN_DISPLACEMENT = 1e-3
#: A looser tolerance's group with this many times the operations (in the given cell) is "far higher".
WARNING_INDEX = 4


def check_tolerances(symprec: Any, angle_tolerance: Any, *, error: type[CloudphysError] = ConfigError,
                     prefix: str = "") -> tuple[float | str, float]:
    """``(symprec, angle_tolerance)`` checked against :data:`cloudphys.bounds.SYMPREC` and
    :data:`~cloudphys.bounds.ANGLE_TOLERANCE`, as ``("auto" or float, float)``.

    :param error: the exception class raised (its message names the option and the allowed values).
    :param prefix: prepended to the option names (``"--"`` for the command line).
    """
    out = []
    for name, value, bound in (("symprec", symprec, SYMPREC), ("angle_tolerance", angle_tolerance, ANGLE_TOLERANCE)):
        key = f"{prefix}{name.replace('_', '-') if prefix == '--' else name}"
        if isinstance(value, str) and name == "symprec":
            value = value.strip().lower()
            try:
                value = float(value)
            except ValueError:
                pass
        ok_type = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))) or (
            isinstance(value, str) and name == "symprec")
        if ok_type and not isinstance(value, str):
            value = float(value)  # 0 and 0.0 alike are "a finite number"
        try:
            if not ok_type:
                kind = 'a number of Å or "auto"' if name == "symprec" else "a number of degrees"
                raise ConfigError(f"{key} must be {kind}, got {value!r}; {bound.remedy}")
            check_bound(key, value, bound)
        except ConfigError as exc:
            raise error(str(exc)) from None
        out.append(value if isinstance(value, str) else float(value))
    return out[0], out[1]


def symmetrization_displacement(lattice: Any, positions: Any, ds: Any) -> tuple[float, float]:
    """``(rms, max)`` distance (Å) from each atom to its position in the structure symmetrized by the
    spglib dataset ``ds`` (spglib's idealized standardized cell mapped back onto the input atoms), the
    rigid shift removed. ``(inf, inf)`` if the dataset cannot be mapped back."""
    try:
        x = np.asarray(positions, dtype=np.float64)
        P = np.asarray(ds.transformation_matrix, dtype=np.float64)
        xs = x @ P.T + np.asarray(ds.origin_shift, dtype=np.float64)  # input atoms in the standardized basis
        std_lat = np.asarray(ds.std_lattice, dtype=np.float64)
        std_pos = np.asarray(ds.std_positions, dtype=np.float64)
        prim = np.asarray(ds.mapping_to_primitive)
        std_prim = np.asarray(ds.std_mapping_to_primitive)
        disp = np.empty_like(x)
        for p in np.unique(prim):
            rows = np.flatnonzero(prim == p)
            cand = std_pos[std_prim == p]
            if not len(cand):
                return (float("inf"), float("inf"))
            f = xs[rows, None, :] - cand[None, :, :]
            f -= np.rint(f)
            c = f @ std_lat  # [rows, candidates, 3] Å
            d2 = (c * c).sum(-1)
            k = d2.argmin(axis=1)
            disp[rows] = c[np.arange(len(rows)), k]
    except (AttributeError, ValueError, IndexError):
        return (float("inf"), float("inf"))
    disp -= disp.mean(axis=0)
    norms = np.sqrt((disp * disp).sum(axis=1))
    return float(np.sqrt((norms * norms).mean())), float(norms.max())


@dataclass(frozen=True)
class SymmetryChoice:
    """spglib's reading of a structure at the tolerance chosen.

    :ivar dataset: spglib's dataset.
    :ivar symprec: the tolerance it was read at (Å).
    :ivar rms: RMS displacement (Å) from the input to the structure symmetrized by it.
    :ivar warning: :func:`low_symmetry_warning`'s text, or ``None``.
    """

    dataset: Any
    symprec: float
    rms: float
    warning: str | None = None


def _ops(ds: Any) -> int:
    return len(ds.rotations)


def _name(ds: Any) -> str:
    n = _ops(ds)
    return f"{ds.international} (no. {int(ds.number)}, {n} operation{'s' if n != 1 else ''} in this cell)"


def low_symmetry_warning(found: SymmetryChoice, loose: SymmetryChoice) -> str | None:
    """The ``symmetry_warning`` text: set when ``loose`` (a looser tolerance's reading) has
    :data:`WARNING_INDEX` or more times the symmetry operations of ``found`` in the given cell."""
    if _ops(loose.dataset) < WARNING_INDEX * _ops(found.dataset):
        return None
    return (f"low symmetry: {_name(found.dataset)} at symprec {found.symprec:g} Å, but "
            f"{_name(loose.dataset)} at {loose.symprec:g} Å (RMS displacement {loose.rms:.3f} Å): "
            f"a noisy structure? symprec={loose.symprec:g} reads it with the higher symmetry")


def choose_symmetry(lattice: Any, positions: Any, dataset: Callable[[float], Any], symprec: float | str,
                    *, closest: Callable[[float], float] | None = None) -> SymmetryChoice:
    """Read the structure's symmetry at ``symprec`` (Å) or, for ``"auto"``, as the module docstring says.

    :param dataset: ``tolerance -> spglib dataset`` (raises for a tolerance spglib cannot use).
    :param closest: ``limit -> distance`` of the closest pair of atoms if closer than ``limit`` (Å),
        else ``inf``: a ladder tolerance of half that distance or more is not tried (spglib would
        merge the atoms).
    """
    auto = symprec == AUTO
    first = PUBLISHED_SYMPREC if auto else float(symprec)
    ds = dataset(first)
    rms, dmax = symmetrization_displacement(lattice, positions, ds)
    found = SymmetryChoice(ds, first, rms)
    if int(ds.number) > 1 and dmax <= CLEAN_DISPLACEMENT:
        return found  # satisfies a non-trivial group exactly: the published reading, no warning
    ladder = [t for t in AUTO_LADDER if t > first]
    if ladder and closest is not None:
        d = closest(2 * ladder[-1])
        ladder = [t for t in ladder if 2 * t < d]
    candidates: list[SymmetryChoice] = [found]
    for t in ladder:
        try:
            ds_t = dataset(t)
        except CloudphysError:
            continue
        candidates.append(SymmetryChoice(ds_t, t, symmetrization_displacement(lattice, positions, ds_t)[0]))
    if auto:
        found = _most_symmetric([c for c in candidates if c.rms <= MAX_RMS_DISPLACEMENT] or [found])
    loose = _most_symmetric(candidates)
    warning = low_symmetry_warning(found, loose)
    return SymmetryChoice(found.dataset, found.symprec, found.rms, warning)


def _most_symmetric(choices: Sequence[SymmetryChoice]) -> SymmetryChoice:
    """The reading with the most operations; the smallest tolerance among equals."""
    return max(choices, key=lambda c: (_ops(c.dataset), -c.symprec))
