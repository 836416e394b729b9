"""The closed grammar of SCOPE strings: every token either dialect can contain.

Everything here is derived from spglib's space-group database, the periodic table and the
published format of the symmetry generator strings -- never from CLOUD's ``generator.json``:

* :data:`ELEMENTS` -- the 118 element symbols in order of atomic number; :data:`COMPOSITION_SYMBOLS`
  adds ``X``, pymatgen's dummy species, which occurs in CLOUD's data.
* :data:`COMPOSITION_VALUES` -- the 101 amounts ``0.0, 0.01, ..., 1.0`` as numpy prints them.
* :data:`WYCKOFF_LETTERS` -- ``a``..``z`` then ``A`` (the 27th position, only in Pmmm).
* :func:`wyckoff_multiplicities` -- the multiplicities a site can have in a group's conventional cell.
* :func:`hall_tokens` -- the default dialect's symmetry tokens of a space group.
* :func:`decode_generators` -- the space group a cloud-dialect generator string stands for.

Cloud generator strings follow the space-group encoding of Shmueli (International Tables for
Crystallography Vol. B, appendix A1.4.2): ``C N g1 ... gN S`` where ``C`` is ``1`` when the group has
an inversion centre at the origin (``0`` otherwise), ``N`` the number of explicit generators, each
generator one rotation letter (``a``..``n``, :data:`ROTATION_CODES`) followed by three translation
letters (:data:`TRANSLATION_CODES`, fractions of the cell axes), and ``S`` either ``0`` or ``1`` plus
three translation letters (an origin shift to the standard origin, which does not change the group).
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import cache, lru_cache

import numpy as np

__all__ = [
    "CLOUD_SYMMETRY_TOKENS",
    "COMPOSITION_SYMBOLS",
    "COMPOSITION_VALUES",
    "DUMMY_SYMBOL",
    "ELEMENTS",
    "GENERATOR_RE",
    "ROTATION_CODES",
    "TRANSLATION_CODES",
    "WYCKOFF_LETTERS",
    "all_wyckoff_multiplicities",
    "decode_generators",
    "default_hall_number",
    "format_amount",
    "general_multiplicity",
    "general_wyckoff_letter",
    "hall_symmetry_table",
    "hall_tokens",
    "lattice_points",
    "wyckoff_multiplicities",
]

# fmt: off
#: Element symbols by atomic number (1..118).
ELEMENTS: tuple[str, ...] = (
    "H", "He", "Li", "Be", "B", "C", "N", "O", "F", "Ne", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "Ar",
    "K", "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se", "Br",
    "Kr", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb", "Te",
    "I", "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm",
    "Yb", "Lu", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn",
    "Fr", "Ra", "Ac", "Th", "Pa", "U", "Np", "Pu", "Am", "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr",
    "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg", "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og",
)
# fmt: on
#: Symbol pymatgen writes for a dummy species (``DummySpecies("X")``); CLOUD's data contain it.
DUMMY_SYMBOL = "X"
#: Every symbol the composition section may contain: the elements, then ``X``.
COMPOSITION_SYMBOLS: tuple[str, ...] = ELEMENTS + (DUMMY_SYMBOL,)
ELEMENT_SET = frozenset(COMPOSITION_SYMBOLS)

#: Wyckoff letters in ITA order: ``a``..``z``, then ``A`` (alpha).
WYCKOFF_LETTERS: tuple[str, ...] = tuple("abcdefghijklmnopqrstuvwxyz") + ("A",)
_LETTER_RANK = {letter: i for i, letter in enumerate(WYCKOFF_LETTERS)}


@lru_cache(maxsize=1 << 14)
def format_amount(value: float) -> str:
    """An amount rounded to 2 decimals, printed as numpy prints it (``0.5``, ``0.07``, ``1.0``).

    This is exactly ``str(numpy.round(value, 2))``, the published converter's format (cached: the
    same fractions recur in every data set, and numpy's scalar round costs microseconds).
    """
    return str(np.round(np.float64(value), 2))


#: The 101 composition amounts a string can contain, ``"0.0"`` .. ``"1.0"``.
COMPOSITION_VALUES: tuple[str, ...] = tuple(format_amount(k / 100) for k in range(101))
_AMOUNT_VALUE = {text: Fraction(k, 100) for k, text in enumerate(COMPOSITION_VALUES)}


def amount_fraction(text: str) -> Fraction | None:
    """The exact value of a canonical amount token (``"0.33"`` → 33/100), or ``None``."""
    return _AMOUNT_VALUE.get(text)


# --------------------------------------------------------------------------------------------
# Default dialect: spglib's Hall symbols
# --------------------------------------------------------------------------------------------

@cache
def _hall_numbers() -> dict[int, tuple[int, ...]]:
    import spglib

    out: dict[int, list[int]] = {}
    for hall in range(1, 531):
        out.setdefault(int(spglib.get_spacegroup_type(hall).number), []).append(hall)
    return {n: tuple(h) for n, h in out.items()}


def default_hall_number(number: int) -> int:
    """spglib's default setting (the first Hall number) of space group ``number``; its Wyckoff
    letters are the ones spglib reports."""
    return _hall_numbers()[number][0]


def _tokens_of_hall_symbol(symbol: str) -> tuple[str, ...]:
    # An origin shift such as "(0 0 4)" becomes the single token "(0,0,4)".
    symbol = re.sub(r"\(([^)]*)\)", lambda m: "(" + ",".join(m.group(1).split()) + ")", symbol)
    return tuple(symbol.split())


@cache
def hall_symmetry_table() -> tuple[dict[int, tuple[str, ...]], dict[tuple[str, ...], int]]:
    """Space-group number → Hall tokens of spglib's default setting, and the inverse map."""
    import spglib

    fwd: dict[int, tuple[str, ...]] = {}
    for number in range(1, 231):
        fwd[number] = _tokens_of_hall_symbol(spglib.get_spacegroup_type(default_hall_number(number)).hall_symbol)
    inv = {tokens: number for number, tokens in fwd.items()}
    if len(inv) != 230:  # pragma: no cover - spglib's database guarantees this
        raise RuntimeError("spglib's default Hall symbols are not distinct")
    return fwd, inv


def hall_tokens(number: int) -> tuple[str, ...]:
    """Default-dialect symmetry tokens of space group ``number`` (e.g. 225 → ``-F 4 2 3``)."""
    return hall_symmetry_table()[0][number]


# --------------------------------------------------------------------------------------------
# Wyckoff multiplicities allowed by each group (from spglib's symmetry operations)
# --------------------------------------------------------------------------------------------

@cache
def _group_orders(number: int) -> tuple[int, int, bool]:
    """(operations in the conventional cell, point-group order, whether the point group holds the
    inversion) of space group ``number``, from one spglib database lookup."""
    import spglib

    ops = np.ascontiguousarray(spglib.get_symmetry_from_database(default_hall_number(number))["rotations"],
                               dtype=np.int32)
    rotations = {r.tobytes() for r in ops}
    inversion = bool((ops == -np.eye(3, dtype=np.int32)).all(axis=(1, 2)).any())
    return len(ops), len(rotations), inversion


def general_multiplicity(number: int) -> int:
    """Multiplicity of the general position of space group ``number`` (conventional cell)."""
    return _group_orders(number)[0]


def centrosymmetric(number: int) -> bool:
    """Whether the point group of space group ``number`` holds the inversion (spglib's operations)."""
    return _group_orders(number)[2]


def lattice_points(number: int) -> int:
    """Lattice points in the conventional cell of space group ``number`` (1 P, 2 A/B/C/I, 3 R
    in hexagonal axes, 4 F): the conventional cell's volume in primitive cells."""
    ops, point, _ = _group_orders(number)
    return ops // point


@cache
def wyckoff_multiplicities(number: int) -> frozenset[int]:
    """Multiplicities a Wyckoff position of group ``number`` can have: G/s for every divisor s of
    the point-group order (G: operations in the conventional cell). A superset of the real ones."""
    total, order, _ = _group_orders(number)
    return frozenset(total // s for s in range(1, order + 1) if order % s == 0)


@cache
def all_wyckoff_multiplicities() -> tuple[int, ...]:
    """Sorted union of :func:`wyckoff_multiplicities` over the 230 groups."""
    out: set[int] = set()
    for number in range(1, 231):
        out |= wyckoff_multiplicities(number)
    return tuple(sorted(out))


def _metric_lattice(number: int) -> np.ndarray:
    """A generic lattice of the crystal family of group ``number`` (spglib's default settings), Å."""
    a, b, c = 4.1, 5.2, 6.3
    if number <= 2:
        al, be, ga = np.radians([81.0, 86.0, 97.0])
    elif number <= 15:
        al, be, ga = np.radians([90.0, 101.0, 90.0])
    else:
        al = be = np.radians(90.0)
        ga = np.radians(120.0 if 143 <= number <= 194 else 90.0)
        if number >= 75:
            b = a
        if number >= 195:
            b = c = a
    cx = c * np.cos(be)
    cy = c * (np.cos(al) - np.cos(be) * np.cos(ga)) / np.sin(ga)
    return np.array(
        [[a, 0.0, 0.0], [b * np.cos(ga), b * np.sin(ga), 0.0], [cx, cy, np.sqrt(c * c - cx * cx - cy * cy)]]
    )


#: Orbit points are compared on a grid of 1/_ORBIT_GRID of a cell axis.
_ORBIT_GRID = 100_000


def _orbit(rotations: np.ndarray, translations: np.ndarray, point: np.ndarray) -> np.ndarray:
    """The distinct images of ``point`` (fractional, wrapped into [0, 1)) under the operations, in
    order of the first operation producing each; each image is the one that first operation gives.

    Images are the same point when they agree on a 1e-5 grid modulo 1 (wrapping after rounding, so
    0.999999 and 0.0 coincide). The coordinates here are sums of ±0.1234, ±0.2871, ±0.3619 (or 0)
    and multiples of 1/24, so they are never near a rounding boundary and the grid is exact.
    """
    images = (np.einsum("nij,j->ni", rotations, point) + translations) % 1.0
    keys = np.round(images * _ORBIT_GRID).astype(np.int64) % _ORBIT_GRID
    _, first = np.unique(keys, axis=0, return_index=True)
    return images[np.sort(first)]


#: :func:`general_wyckoff_letter` of the space groups 1..230, in order: what
#: :func:`_general_wyckoff_letter_spglib` finds (``tests/test_fast_predict.py`` checks every group),
#: written out because finding one costs a spglib run (~2 ms per group, once per process).
_GENERAL_LETTERS = (
    "aieaccabaofjgefuecaclkkdicedacbcacfbdfdcbebeccAmrmleifieehgdcdhgrmoiphokfjdadacbhglkggifpgdbpgdbkggdeddcfce"
    "dcbonfeljiijijeunnklikgrpknikhjomigdaabgflgccccfeddccblijgifdaacccllincckkifdddollirmlljhfbclhighdekmjhjeeijih"
    "ihenillljihlh"
)


def general_wyckoff_letter(number: int) -> str:
    """The Wyckoff letter of the general position of group ``number``: the group's last letter
    (ITA order), so letters after it do not exist in the group. Found by spglib from one generic orbit
    (:func:`_general_wyckoff_letter_spglib`; the 230 answers are tabulated)."""
    if isinstance(number, (int, np.integer)) and not isinstance(number, bool) and 1 <= number <= 230:
        return _GENERAL_LETTERS[int(number) - 1]
    return _general_wyckoff_letter_spglib(number)


@cache
def _general_wyckoff_letter_spglib(number: int) -> str:
    """:func:`general_wyckoff_letter` found by spglib from one generic orbit."""
    import spglib

    ops = spglib.get_symmetry_from_database(default_hall_number(number))
    rotations = np.asarray(ops["rotations"], dtype=np.float64)
    translations = np.asarray(ops["translations"], dtype=np.float64)
    # a general orbit, then the origin's
    orbits = [_orbit(rotations, translations, point) for point in (np.array([0.1234, 0.2871, 0.3619]), np.zeros(3))]
    types = [1] * len(orbits[0]) + [2] * len(orbits[1])  # two species: no extra symmetry
    ds = spglib.get_symmetry_dataset((_metric_lattice(number), np.concatenate(orbits), types), symprec=1e-4)
    if ds is None or int(ds.number) != number:  # pragma: no cover - spglib's database guarantees this
        raise RuntimeError(f"cannot find the general position of space group {number}")
    return str(ds.wyckoffs[0])


def letter_rank(letter: str) -> int:
    """Position of a Wyckoff letter in :data:`WYCKOFF_LETTERS` (``KeyError`` if invalid)."""
    return _LETTER_RANK[letter]


# --------------------------------------------------------------------------------------------
# Cloud dialect: Shmueli generator strings
# --------------------------------------------------------------------------------------------

#: Rotation codes of the generator strings (ITB Table A1.4.2.1), as row-major 3x3 matrices acting on
#: fractional coordinates. ``i``, ``k``, ``n`` and ``f`` belong to hexagonal axes.
ROTATION_CODES: dict[str, tuple[int, ...]] = {
    "a": (1, 0, 0, 0, 1, 0, 0, 0, 1),  # x, y, z
    "b": (-1, 0, 0, 0, -1, 0, 0, 0, 1),  # -x, -y, z
    "c": (-1, 0, 0, 0, 1, 0, 0, 0, -1),  # -x, y, -z
    "d": (0, 0, 1, 1, 0, 0, 0, 1, 0),  # z, x, y
    "e": (0, 1, 0, 1, 0, 0, 0, 0, -1),  # y, x, -z
    "f": (0, -1, 0, -1, 0, 0, 0, 0, -1),  # -y, -x, -z
    "g": (0, -1, 0, 1, 0, 0, 0, 0, 1),  # -y, x, z
    "h": (-1, 0, 0, 0, -1, 0, 0, 0, -1),  # -x, -y, -z
    "i": (1, 0, 0, 0, 1, 0, 0, 0, -1),  # x, y, -z
    "j": (1, 0, 0, 0, -1, 0, 0, 0, 1),  # x, -y, z
    "k": (0, -1, 0, -1, 0, 0, 0, 0, 1),  # -y, -x, z
    "l": (0, 1, 0, 1, 0, 0, 0, 0, 1),  # y, x, z
    "m": (0, 1, 0, -1, 0, 0, 0, 0, -1),  # y, -x, -z
    "n": (0, -1, 0, 1, -1, 0, 0, 0, 1),  # -y, x - y, z
}

#: Translation codes, in 1/24 of a cell axis (ITB Table A1.4.2.2).
TRANSLATION_CODES: dict[str, int] = {
    "O": 0, "A": 4, "B": 6, "C": 8, "D": 12, "E": 16, "F": 18, "G": 20, "X": -9, "Y": -6, "Z": -3,
}

#: Every token of a cloud-dialect symmetry section: digits, rotation and translation codes.
CLOUD_SYMMETRY_TOKENS: tuple[str, ...] = (
    tuple("0123456789") + tuple(ROTATION_CODES) + tuple(TRANSLATION_CODES)
)

_R = "[" + "".join(ROTATION_CODES) + "]"
_T = "[" + "".join(TRANSLATION_CODES) + "]"
#: A whole generator string (tokens concatenated).
GENERATOR_RE = re.compile(rf"[01]([0-9])((?:{_R}{_T}{{3}})*)(0|1{_T}{{3}})")

#: Two entries of CLOUD's published table whose generators do not generate the group they are
#: listed under (39: the ``c`` should be a ``j``; 131: the translations belong to another group).
#: The published converter writes these strings for these groups, so the parser honours them.
_ERRATA: dict[str, int] = {"03aODDbOOOcODO0": 39, "13bDDOgDOOcODD0": 131}

_MAX_OPERATIONS = 192  # Fm-3m in its conventional cell


class GeneratorError(ValueError):
    """A generator string is not grammatical or does not generate a space group."""


@lru_cache(maxsize=4096)
def decode_generators(generators: str) -> int:
    """Space-group number generated by a cloud-dialect generator string (tokens concatenated).

    Raises :class:`GeneratorError` if the string is not grammatical or its operations do not close
    into a space group.
    """
    m = GENERATOR_RE.fullmatch(generators)
    if m is None:
        raise GeneratorError(
            "expected <0|1> <count> <rotation a-n + 3 translation codes>... <0 | 1 + 3 translation codes>"
        )
    count = int(m.group(1))
    body = m.group(2)
    if len(body) != 4 * count:
        raise GeneratorError(f"the count says {count} generators but {len(body) // 4} follow")
    if generators in _ERRATA:
        return _ERRATA[generators]
    gens: list[tuple[tuple[int, ...], tuple[int, int, int]]] = []
    for k in range(count):
        g = body[4 * k: 4 * k + 4]
        gens.append((ROTATION_CODES[g[0]], tuple(TRANSLATION_CODES[c] % 24 for c in g[1:])))  # type: ignore[misc]
    if generators[0] == "1":
        gens.append((ROTATION_CODES["h"], (0, 0, 0)))
    ops = _closure(gens)
    rotations = np.array([r for r, _ in ops], dtype=np.int32).reshape(-1, 3, 3)
    translations = np.array([t for _, t in ops], dtype=np.float64) / 24.0
    orthogonal = all(np.array_equal(r @ r.T, np.eye(3, dtype=np.int32)) for r in rotations)
    if orthogonal:
        lattice = np.eye(3)
    else:  # hexagonal axes
        lattice = np.array([[1.0, 0.0, 0.0], [-0.5, 3**0.5 / 2, 0.0], [0.0, 0.0, 1.6]])
    import spglib

    try:
        sg = spglib.get_spacegroup_type_from_symmetry(rotations, translations, lattice=lattice, symprec=1e-5)
    except Exception as exc:  # spglib raises its own types
        raise GeneratorError(f"spglib cannot identify the generated group: {exc}") from None
    if sg is None:
        raise GeneratorError("spglib cannot identify the generated group")
    return int(sg.number)


def _closure(
    gens: list[tuple[tuple[int, ...], tuple[int, int, int]]],
) -> list[tuple[tuple[int, ...], tuple[int, int, int]]]:
    identity = ((1, 0, 0, 0, 1, 0, 0, 0, 1), (0, 0, 0))
    seen = {identity}
    order = [identity]
    frontier = [identity]
    while frontier:
        new = []
        for r1, t1 in frontier:
            for r2, t2 in gens:
                r = tuple(
                    sum(r1[3 * i + k] * r2[3 * k + j] for k in range(3)) for i in range(3) for j in range(3)
                )
                t = tuple((sum(r1[3 * i + k] * t2[k] for k in range(3)) + t1[i]) % 24 for i in range(3))
                op = (r, t)
                if op not in seen:
                    seen.add(op)
                    order.append(op)  # type: ignore[arg-type]
                    new.append(op)
                    if len(order) > _MAX_OPERATIONS:
                        raise GeneratorError(
                            f"the generators do not close into a space group (more than {_MAX_OPERATIONS} operations)"
                        )
        frontier = new
    return order  # type: ignore[return-value]
