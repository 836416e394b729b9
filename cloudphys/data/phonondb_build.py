"""Build ``phonondb-thermo`` rows from raw phonondb archives with phonopy (optional extra).

Each input is a phonondb archive (``materials-id-<N>-....tar.lzma``; xz, legacy lzma, gzip, bzip2 or
plain tar) or a directory holding ``POSCAR-unitcell``, ``FORCE_SETS``, ``phonopy.conf`` (``DIM``,
``PRIMITIVE_AXIS``) and optionally ``BORN`` (a directory of archives is expanded). For each one:

1. ``phonopy.load(unitcell, supercell_matrix=DIM, primitive_matrix=PRIMITIVE_AXIS, FORCE_SETS,
   BORN -> non-analytical term correction where present)``;
2. a Γ-centred mesh of length 40 (``run_mesh(40.0, is_gamma_center=True)``);
3. thermal properties on the temperature grid (default: the 28-point grid of ``meta.json``),
   acoustic modes at Γ kept as phonopy 4.10 keeps them by default.

Reproducibility: phonopy's three acoustic frequencies at Γ are numerical noise around 0 (~1e-7 THz);
phonopy counts those that come out positive as classical modes, each adding R/N_q to cv (N_q the
number of mesh points; R·T/N_q to u, and a ln T term to s). Whether the noise is positive depends on
the machine's linear algebra, so rebuilt curves can differ from the shared set by up to three such
modes (Si, 13³ mesh: up to 0.011 J/(K·mol) in cv) and agree to 1e-4 relative once that is accounted
for (``tests/test_data_phonondb_build.py``).

Units of a row (per mole of primitive cells): ``cv``, ``s`` in J/(K*mol) (phonopy's own units);
``f`` = phonopy's free energy (kJ/mol) × 1000 in J/mol; ``u = f + T s`` in J/mol (so ``u(0) = f(0)``
is the zero-point energy). Stored rounded like the shared file: ``cv``, ``s`` to 1e-6 J/(K*mol),
``u``, ``f`` to 1e-3 J/mol, ``min_freq_thz`` to 1e-5 THz, lattice and fractional coordinates to
1e-8. ``stable`` is ``min_freq_thz > -0.1``.

One output row per input, in input order. An input that fails becomes a row
``{"id", "source", "error"}`` (never dropped); :func:`load_thermo_rows` users skip those with a
warning.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import tarfile
import tempfile
import warnings
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError

__all__ = [
    "MESH_LENGTH",
    "NEEDED_FILES",
    "PHONONDB_GRID",
    "build_row",
    "build_rows",
    "expand_inputs",
    "gamma_mode_corrections",
    "material_id",
    "read_phonopy_conf",
    "structure_dict",
    "write_jsonl",
]

R_GAS = 8.314462618  # J/(K mol), as cloudphys.physics.R_GAS (not imported: workers stay torch-free)

#: Temperature grid of the shared phonondb-thermo set (K).
PHONONDB_GRID: tuple[float, ...] = (0, 5, 10, 15, 20, 25, 30, 40, 50, 60, 70, 80, 90, 100, 125, 150, 175, 200,
                                    250, 300, 350, 400, 500, 600, 700, 800, 900, 1000)
#: Mesh length (Å) of the Γ-centred sampling mesh.
MESH_LENGTH = 40.0
#: Lowest mesh frequency (THz) above which a material counts as dynamically stable.
STABLE_THZ = -0.1
NEEDED_FILES = ("POSCAR-unitcell", "FORCE_SETS", "phonopy.conf")
OPTIONAL_FILES = ("BORN",)
_ARCHIVE_SUFFIXES = (".tar.lzma", ".tar.xz", ".txz", ".tar.gz", ".tgz", ".tar.bz2", ".tar")


def _is_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(_ARCHIVE_SUFFIXES)


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Archives and material directories from ``inputs`` (a directory of archives is expanded, sorted).

    :raises DataError: an input that does not exist or holds nothing usable.
    """
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if _is_archive(p):
            out.append(p)
        elif p.is_dir():
            if (p / "phonopy.conf").is_file() or (p / "FORCE_SETS").is_file():
                out.append(p)
                continue
            found = sorted(q for q in p.iterdir() if _is_archive(q) or (q.is_dir() and (q / "FORCE_SETS").is_file()))
            if not found:
                raise DataError(f"{p}: no phonondb archives or material directories inside")
            out.extend(found)
        elif p.exists():
            raise DataError(f"{p}: not a phonondb archive ({', '.join(_ARCHIVE_SUFFIXES)}) or directory")
        else:
            raise DataError(f"{p}: no such file or directory")
    return out


def material_id(path: Path, inner_dir: str | None = None) -> str:
    """The Materials Project id of an archive or directory (``mp-<N>``), else the file stem."""
    for text in (path.name, inner_dir or ""):
        m = re.match(r"(?:materials-id-|mp-)(\d+)", text)
        if m:
            return f"mp-{m.group(1)}"
    name = path.name
    for suffix in _ARCHIVE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def read_phonopy_conf(text: str, *, source: str = "phonopy.conf") -> tuple[np.ndarray, np.ndarray | str]:
    """``(DIM as 3x3 int, PRIMITIVE_AXIS)`` from a phonopy.conf text.

    ``DIM`` may have 3 (diagonal) or 9 numbers. ``PRIMITIVE_AXIS``: 9 numbers (fractions allowed)
    → 3x3 float; ``AUTO`` → ``"auto"``; absent → the identity (the unit cell is the primitive
    cell, as in phonopy's command line).
    """
    tags: dict[str, str] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if "=" in line:
            key, value = line.split("=", 1)
            tags[key.strip().upper()] = value.strip()
    if "DIM" not in tags:
        raise DataError(f"{source}: no DIM tag")
    try:
        dim = [int(v) for v in tags["DIM"].split()]
    except ValueError:
        raise DataError(f"{source}: DIM = {tags['DIM']!r} is not integers") from None
    if len(dim) == 3:
        smat = np.diag(dim)
    elif len(dim) == 9:
        smat = np.array(dim).reshape(3, 3)
    else:
        raise DataError(f"{source}: DIM needs 3 or 9 integers, got {len(dim)}")
    pa = tags.get("PRIMITIVE_AXIS", tags.get("PRIMITIVE_AXES"))
    if pa is None or pa.strip().upper() == "P":
        return smat, np.eye(3)
    if pa.strip().upper() == "AUTO":
        return smat, "auto"
    try:
        vals = [float(Fraction(v)) for v in pa.split()]
    except (ValueError, ZeroDivisionError):
        raise DataError(f"{source}: PRIMITIVE_AXIS = {pa!r} is not numbers") from None
    if len(vals) != 9:
        raise DataError(f"{source}: PRIMITIVE_AXIS needs 9 numbers, got {len(vals)}")
    return smat, np.array(vals).reshape(3, 3)


def _extract(path: Path, dest: Path) -> str | None:
    """Copy the needed files of an archive or directory into ``dest``; return the inner folder name."""
    if path.is_dir():
        for name in NEEDED_FILES + OPTIONAL_FILES:
            if (path / name).is_file():
                (dest / name).write_bytes((path / name).read_bytes())
        return path.name
    if path.name.endswith((".tar.lzma", ".tar.xz", ".txz")):
        fileobj: Any = lzma.open(path)  # FORMAT_AUTO: xz and legacy .lzma
        tar = tarfile.open(fileobj=fileobj, mode="r:")
    else:
        fileobj = None
        tar = tarfile.open(path, mode="r:*")
    inner = None
    try:
        with tar:
            for member in tar:
                base = member.name.rsplit("/", 1)[-1]
                if member.isfile() and base in NEEDED_FILES + OPTIONAL_FILES:
                    data = tar.extractfile(member)
                    if data is None:
                        continue
                    (dest / base).write_bytes(data.read())
                    if "/" in member.name:
                        inner = member.name.rsplit("/", 1)[0].split("/")[-1]
    finally:
        if fileobj is not None:
            fileobj.close()
    return inner


def structure_dict(lattice: np.ndarray, symbols: Sequence[str], frac: np.ndarray, *, decimals: int = 9) -> dict:
    """A pymatgen ``Structure.as_dict()``-compatible dict (lattice in Å, fractional coordinates)."""
    lat = np.round(np.asarray(lattice, dtype=float), decimals) + 0.0
    xyz = np.round(np.asarray(frac, dtype=float), decimals) + 0.0
    return {
        "@module": "pymatgen.core.structure",
        "@class": "Structure",
        "charge": 0.0,
        "lattice": {"matrix": lat.tolist(), "pbc": [True, True, True]},
        "properties": {},
        "sites": [
            {"species": [{"element": str(sym), "occu": 1}], "abc": list(map(float, pos))}
            for sym, pos in zip(symbols, xyz)
        ],
    }


def gamma_mode_corrections(built: dict, ref: dict, temperatures, n_q: int) -> tuple[int, dict[str, np.ndarray]]:
    """How two builds of one material differ through phonopy's Γ acoustic-mode noise.

    phonopy's three acoustic frequencies at Γ come out as ±1e-7 THz noise; those that come out
    positive are counted as classical modes (hν ≪ kT at every T ≥ 5 K). Each, with mesh weight
    w = 1/N_q, adds per mole of cells exactly Δcv = wR, Δu = wRT, Δs = wR(ln T + const) and
    Δf = Δu − TΔs. This fits the integer m (``built`` counts m more such modes than ``ref``, from cv
    at the last temperature) and the entropy constant (from s at the last temperature).

    :param built, ref: rows with curves ``cv``, ``s`` (J/(K·mol)), ``u``, ``f`` (J/mol).
    :param temperatures: their temperature grid (K).
    :param n_q: number of q-points of the mesh (``prod(row["mesh"])``).
    :returns: ``(m, {obs: the part of built − ref that the m modes explain})``.
    :raises DataError: if the cv difference is not that of at most 3 modes (|m| > 3).
    """
    T = np.asarray(temperatures, dtype=np.float64)
    w = 1.0 / n_q
    dcv = np.asarray(built["cv"], dtype=np.float64)[-1] - np.asarray(ref["cv"], dtype=np.float64)[-1]
    m = int(np.rint(dcv / (w * R_GAS)))
    if abs(m) > 3:
        raise DataError(f"cv differs by {dcv:.3g} J/(K mol) at {T[-1]} K: {dcv / (w * R_GAS):.2f} Γ modes, "
                        "at most 3 exist")
    pos = T > 0
    logT = np.where(pos, np.log(np.where(pos, T, 1.0)), 0.0)
    ds_last = float(np.asarray(built["s"], dtype=np.float64)[-1] - np.asarray(ref["s"], dtype=np.float64)[-1])
    const = ds_last - m * w * R_GAS * logT[-1]  # the noise frequencies' part, fitted at the last T
    model = {
        "cv": np.where(pos, m * w * R_GAS, 0.0),
        "u": m * w * R_GAS * T,
        "s": np.where(pos, m * w * R_GAS * logT + const, 0.0),
    }
    model["f"] = model["u"] - T * model["s"]
    return m, model


def build_row(
    path: str | os.PathLike[str],
    *,
    temperatures: Sequence[float] = PHONONDB_GRID,
    mesh: float = MESH_LENGTH,
) -> dict[str, Any]:
    """One phonondb-thermo row from one archive or directory (raises on failure).

    :returns: ``{"id", "formula", "spacegroup", "n_atoms", "structure", "min_freq_thz", "stable",
        "has_born", "mesh", "temperatures_K", "cv", "s", "u", "f", "source"}`` (units in the module
        docstring; ``mesh`` is the q-point mesh phonopy chose for the mesh length and
        ``temperatures_K`` the grid (K) the curves were computed on -- fields the shared set lacks,
        which keeps its grid in meta.json -- so built rows load next to ``from-phonopy`` rows).
    """
    try:
        import phonopy
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise DataError("building phonondb rows needs phonopy: pip install 'cloudphys[phonopy]'") from exc
    from pymatgen.core import Composition

    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="cloudphys-phonondb-") as tmp:
        dest = Path(tmp)
        inner = _extract(path, dest)
        missing = [n for n in NEEDED_FILES if not (dest / n).is_file()]
        if missing:
            raise DataError(f"{path.name}: missing {', '.join(missing)}")
        smat, pmat = read_phonopy_conf((dest / "phonopy.conf").read_text(), source=f"{path.name}: phonopy.conf")
        has_born = (dest / "BORN").is_file()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # GammaAcousticWarning etc.: behaviour is phonopy 4.10's default
            ph = phonopy.load(
                supercell_matrix=smat,
                primitive_matrix=pmat,
                unitcell_filename=str(dest / "POSCAR-unitcell"),
                force_sets_filename=str(dest / "FORCE_SETS"),
                born_filename=str(dest / "BORN") if has_born else None,
                is_nac=has_born,
                log_level=0,
            )
            ph.run_mesh(float(mesh), is_gamma_center=True)
            temps = np.asarray(temperatures, dtype=np.float64)
            ph.run_thermal_properties(temperatures=temps)
            tp = ph.thermal_properties
            f = np.asarray(tp.free_energy, dtype=np.float64) * 1000.0  # kJ/mol -> J/mol
            s = np.asarray(tp.entropy, dtype=np.float64)
            cv = np.asarray(tp.heat_capacity, dtype=np.float64)
            freqs = np.asarray(ph.mesh.frequencies)
            mesh_numbers = [int(n) for n in ph.mesh.mesh_numbers]
        u = f + temps * s
        prim = ph.primitive
        symbols = list(prim.symbols)
        min_freq = round(float(freqs.min()), 5)
        return {
            "id": material_id(path, inner),
            "formula": Composition(dict(zip(*np.unique(symbols, return_counts=True)))).reduced_formula,
            "spacegroup": int(ph.symmetry.dataset.number),
            "n_atoms": len(symbols),
            "structure": structure_dict(prim.cell, symbols, prim.scaled_positions),
            "min_freq_thz": min_freq,
            "stable": bool(min_freq > STABLE_THZ),
            "has_born": has_born,
            "mesh": mesh_numbers,
            "temperatures_K": [float(t) for t in temps],
            "cv": [round(float(v), 6) for v in cv],
            "s": [round(float(v), 6) for v in s],
            "u": [round(float(v), 3) for v in u],
            "f": [round(float(v), 3) for v in f],
            "source": path.name,
        }


def _worker_init() -> None:
    # one thread per worker process: the pool already uses the cores
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def _build_one(args: tuple[str, tuple[float, ...], float]) -> dict[str, Any]:
    path, temps, mesh = args
    try:
        return build_row(path, temperatures=temps, mesh=mesh)
    except Exception as exc:
        p = Path(path)
        try:
            mid = material_id(p)
        except Exception:
            mid = p.name
        return {"id": mid, "source": p.name, "error": f"{type(exc).__name__}: {exc}"}


def build_rows(
    inputs: Sequence[str | os.PathLike[str]],
    *,
    temperatures: Sequence[float] = PHONONDB_GRID,
    mesh: float = MESH_LENGTH,
    workers: int = 1,
    progress: bool = False,
) -> Iterator[dict[str, Any]]:
    """Rows for ``inputs`` (archives/directories, expanded with :func:`expand_inputs`), in order.

    :param workers: processes (``multiprocessing``); 1 runs in this process.
    """
    paths = expand_inputs(inputs)
    jobs = [(str(p), tuple(float(t) for t in temperatures), float(mesh)) for p in paths]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), unit="material", desc="phonopy")
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                yield _build_one(job)
                if bar is not None:
                    bar.update(1)
        else:
            import multiprocessing as mp

            # spawn, not fork: forking after phonopy/OpenMP/torch started threads can deadlock
            with mp.get_context("spawn").Pool(min(workers, len(jobs)), initializer=_worker_init) as pool:
                for row in pool.imap(_build_one, jobs, chunksize=1):
                    yield row
                    if bar is not None:
                        bar.update(1)
    finally:
        if bar is not None:
            bar.close()


def write_jsonl(rows: Iterable[dict[str, Any]], out: str | os.PathLike[str]) -> tuple[int, list[dict[str, Any]]]:
    """Write rows as JSON lines (gzip if ``out`` ends in ``.gz``); return ``(count, error rows)``."""
    import gzip

    from ..outputs import atomic_path

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    errors: list[dict[str, Any]] = []
    n = 0
    with atomic_path(out) as tmp:  # a temporary file beside, renamed into place when complete
        raw: Any = (gzip.open(tmp, "wt", encoding="utf-8") if out.name.endswith(".gz")
                    else open(tmp, "w", encoding="utf-8"))
        with raw as fh:
            for row in rows:
                fh.write(json.dumps(row, separators=(",", ":")) + "\n")
                n += 1
                if "error" in row:
                    errors.append(row)
    return n, errors

