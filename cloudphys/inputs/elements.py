"""Element symbols as written in structure files: read exactly, never reinterpreted.

pymatgen turns symbols it does not know into ones it does -- CIF type symbols ``Va`` (vacancy) → V,
``Uuo`` → U, ``Wat`` → O, ``OH2`` → the site dropped; ``D`` and ``T`` (deuterium, tritium) → H in
every format -- with at most a warning. A crystal predicted as another element is a silent wrong
number, so every symbol a file names is checked here first, and anything that is not one of the 118
elements (or the dummy species ``X`` SCOPE documents) is an error naming the symbol.

Isotopes: ``D`` and ``T`` are refused with the remedy (write ``H``): the model knows elements only, and
predicting a deuterated crystal as a hydrogenated one is a choice the user makes, not cloudphys.
Case is not a reinterpretation: ``NA`` and ``na`` are Na (old CIFs write symbols in capitals).
"""

from __future__ import annotations

import functools
import re

from ..errors import StructureError

__all__ = ["ISOTOPES", "check_element", "cif_symbol_element", "element_symbols"]


@functools.cache
def element_symbols() -> frozenset[str]:
    """The 118 element symbols (``H`` .. ``Og``; ASE's table, imported on first use)."""
    from ase.data import chemical_symbols

    return frozenset(chemical_symbols[1:119])

#: Symbols of isotopes pymatgen reads as their element.
ISOTOPES = {"D": "deuterium", "T": "tritium"}
_DUMMY = "X"
_LETTERS = re.compile(r"([A-Za-z]+)(.*)\Z", re.DOTALL)
_CHARGE = re.compile(r"[0-9.]*[+-]?[0-9.]*\Z")


def _refuse(symbol: str, where: str, found: str | None = None) -> StructureError:
    if symbol in ISOTOPES or (found and found.title() in ISOTOPES):
        iso = ISOTOPES.get(symbol) or ISOTOPES[str(found).title()]
        return StructureError(f"{where} {symbol!r} is {iso}, an isotope, not an element; the model knows elements "
                              "only -- write H to predict it as hydrogen")
    return StructureError(f"{where} {symbol!r} is not a chemical element (nor the dummy species X); "
                          "name the element (pymatgen would silently read it as another one)")


def check_element(symbol: str, where: str = "element") -> str:
    """``symbol`` itself if it is one of :func:`element_symbols` or ``X`` (exact case), else :class:`StructureError`."""
    if symbol in element_symbols() or symbol == _DUMMY:
        return symbol
    raise _refuse(symbol, where)


def cif_symbol_element(symbol: str, *, label: bool = False) -> str | None:
    """The element a CIF ``_atom_site_type_symbol`` (or, ``label=True``, an ``_atom_site_label``) names.

    A type symbol is an element symbol in any case, optionally followed by a charge (``Fe``, ``FE``,
    ``Fe2+``, ``O2-``, ``Na+``). A label is an element symbol followed by anything that does not start
    with a letter (``Fe1``, ``O2a``, ``Cl1_b``). ``?`` and ``.`` (CIF's unknown / not applicable)
    give ``None``.

    :raises StructureError: naming the symbol -- ``Va``, ``Uuo``, ``Wat``, ``OH2``, ``D``, ``Hw``, ``Xx``...
    """
    sym = symbol.strip()
    if sym in ("?", "."):
        return None
    where = "site label" if label else "type symbol"
    m = _LETTERS.match(sym)
    if m is None:
        raise _refuse(sym, f"CIF {where}")
    letters, rest = m.group(1), m.group(2)
    element = letters.title() if len(letters) > 1 else letters.upper()
    if element not in element_symbols() and element != _DUMMY:
        raise _refuse(sym, f"CIF {where}", letters)
    if not label and not _CHARGE.match(rest):
        raise _refuse(sym, f"CIF {where}")
    return element
