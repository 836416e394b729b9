"""Rendering and parsing SCOPE strings in the ``default`` and ``cloud`` dialects.

A SCOPE string has three sections separated by ``|``::

    <symmetry tokens> | <Wyckoff sites> | <element amount>...

* symmetry, ``default`` dialect: the Hall symbol of spglib's default setting of the group, one token
  per Hall-symbol part, an origin shift ``(0 0 4)`` written as one token ``(0,0,4)``
  (Fm-3m: ``-F 4 2 3``);
* symmetry, ``cloud`` dialect: the group's generator string from CLOUD's table, one character a token
  (Fm-3m: ``1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0``);
* Wyckoff sites: ``<multiplicity><letter>``, distinct, in order of first appearance over the sites;
* composition: ``<element> <amount>`` pairs, the amount the fraction of atoms rounded to 2 decimals
  as numpy prints it.

The two dialects differ only in the symmetry section; :func:`parse` tells them apart by its first
token (``0``/``1`` for cloud, a lattice symbol such as ``P`` or ``-F`` for default). Cloud strings
are parsed *without* the generator table: the generators are decoded to the space group they generate.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ..errors import ScopeParseError
from . import _grammar as G
from .generators import (
    GENERATOR_TABLE_ENV,
    GeneratorTable,
    load_generator_table,
    symmetry_tokens,
)
from .record import ScopeRecord, WyckoffSite

__all__ = [
    "GENERATOR_TABLE_ENV",
    "GeneratorTable",
    "canonical_text",
    "dialect_of",
    "load_generator_table",
    "parse",
    "symmetry_tokens",
    "to_dialect",
]

_SECTION_NAMES = ("symmetry", "Wyckoff", "composition")
_WYCKOFF_RE = re.compile(r"([1-9][0-9]*)([a-zA])")
_TOKEN_RE = re.compile(r"\S+")


# --------------------------------------------------------------------------------------------
# parsing
# --------------------------------------------------------------------------------------------

def _fail(text: str, pos: int, section: str | None, token: str | None, why: str) -> ScopeParseError:
    where = f"character {pos}"
    if section is not None:
        where += f" ({section} section"
        where += f", token {token!r})" if token is not None else ")"
    snippet = text if len(text) <= 120 else text[:117] + "..."
    err = ScopeParseError(f"malformed SCOPE string at {where}: {why} -- in {snippet!r}")
    err.position = pos  # type: ignore[attr-defined]
    err.section = section  # type: ignore[attr-defined]
    err.token = token  # type: ignore[attr-defined]
    err.reason = why  # type: ignore[attr-defined]
    return err


def _split(text: str) -> list[list[tuple[int, str]]]:
    """Sections as lists of (offset, token)."""
    sections: list[list[tuple[int, str]]] = [[]]
    for m in _TOKEN_RE.finditer(text):
        tok = m.group()
        start = m.start()
        # "|" glued to a neighbour ("a|b") still separates sections
        for piece in re.split(r"(\|)", tok):
            if not piece:
                continue
            if piece == "|":
                sections.append([])
            else:
                sections[-1].append((start, piece))
            start += len(piece)
    return sections


def parse(
    text: str,
    generator_table: str | os.PathLike[str] | Mapping[Any, str] | None = None,
    *,
    canonical: bool | None = None,
) -> ScopeRecord:
    """Parse a SCOPE string of either dialect into a :class:`ScopeRecord`.

    Cloud strings need no generator table: the generators are decoded to the group they generate.
    With ``generator_table`` the cloud symmetry section must moreover be that table's entry.

    :param canonical: return the :meth:`~ScopeRecord.canonical` record. Default: ``True`` for a
        default-dialect string (so every way of writing one crystal reads as one record),
        ``False`` for a cloud string (kept as written, so it renders back byte for byte).

    Raises :class:`~cloudphys.errors.ScopeParseError` saying where (character offset, section,
    token) and why; its attributes ``position``, ``section``, ``token`` and ``reason`` hold the same.
    """
    if not isinstance(text, str):
        raise ScopeParseError(f"a SCOPE string must be a str, got {type(text).__name__}")
    sections = _split(text)
    if len(sections) != 3:
        bars = [i for i, ch in enumerate(text) if ch == "|"]
        pos = bars[2] if len(bars) > 2 else len(text)
        raise _fail(text, pos, None, None, f"expected 3 sections separated by '|', found {len(sections)}")
    for name, sec, in zip(_SECTION_NAMES, sections):
        if not sec:
            pos = text.find("|") if name == "symmetry" else len(text)
            raise _fail(text, max(pos, 0), name, None, "the section is empty")
    number = _parse_symmetry(text, sections[0], generator_table)
    sites = _parse_sites(text, sections[1], number)
    comp = _parse_composition(text, sections[2])
    record = ScopeRecord(number, sites, comp)
    is_cloud = sections[0][0][1] in ("0", "1")
    return record.canonical() if (not is_cloud if canonical is None else canonical) else record


@functools.lru_cache(maxsize=1 << 16)
def parse_cached(text: str) -> ScopeRecord:
    """:func:`parse` with its defaults (a default string's canonical record, a cloud string as
    written), cached by string: records are immutable, and training, featurizing and prediction read
    the same strings again. Refusals are not cached (each call raises anew)."""
    return parse(text)


def _parse_symmetry(text: str, toks: list[tuple[int, str]], generator_table: Any) -> int:
    first_pos, first = toks[0]
    if first in ("0", "1"):  # cloud
        for pos, tok in toks:
            if len(tok) != 1 or tok not in G.CLOUD_SYMMETRY_TOKENS:
                raise _fail(text, pos, "symmetry", tok, "cloud generator tokens are single characters "
                            "(digits, rotation codes a-n, translation codes O A B C D E F G X Y Z)")
        gen = "".join(tok for _, tok in toks)
        try:
            number = G.decode_generators(gen)
        except G.GeneratorError as exc:
            raise _fail(text, first_pos, "symmetry", gen, f"not a valid cloud generator string: {exc}") from None
        if generator_table is not None:
            table = load_generator_table(generator_table)
            if table.get(number) != tuple(gen):
                raise _fail(text, first_pos, "symmetry", gen,
                            f"generates space group {number}, but the generator table's entry for it differs")
        return number
    _, inv = G.hall_symmetry_table()
    key = tuple(tok for _, tok in toks)
    number = inv.get(key)
    if number is None:
        raise _fail(text, first_pos, "symmetry", " ".join(key),
                    "neither a cloud generator string (starting with 0 or 1) nor the Hall symbol of "
                    "spglib's default setting of a space group (e.g. '-F 4 2 3')")
    return number


def _parse_sites(text: str, toks: list[tuple[int, str]], number: int) -> tuple[WyckoffSite, ...]:
    allowed = G.wyckoff_multiplicities(number)
    sites: list[WyckoffSite] = []
    seen: set[str] = set()
    for pos, tok in toks:
        m = _WYCKOFF_RE.fullmatch(tok)
        if m is None:
            raise _fail(text, pos, "Wyckoff", tok, "expected a multiplicity followed by one Wyckoff letter "
                        "(a-z or A), e.g. '4a'")
        mult, letter = int(m.group(1)), m.group(2)
        general = G.general_wyckoff_letter(number)
        if G.letter_rank(letter) > G.letter_rank(general):
            raise _fail(text, pos, "Wyckoff", tok, f"space group {number} has no Wyckoff letter {letter!r} "
                        f"(its positions are a..{general})")
        if (letter == general) != (mult == G.general_multiplicity(number)):
            raise _fail(text, pos, "Wyckoff", tok, f"in space group {number} the general position {general} "
                        f"has multiplicity {G.general_multiplicity(number)} and the special positions less")
        if mult not in allowed:
            raise _fail(text, pos, "Wyckoff", tok, f"space group {number} has no Wyckoff position of "
                        f"multiplicity {mult} (possible: {', '.join(map(str, sorted(allowed)))})")
        if letter in seen:
            raise _fail(text, pos, "Wyckoff", tok, f"Wyckoff letter {letter!r} appears twice")
        seen.add(letter)
        sites.append(WyckoffSite(mult, letter))
    return tuple(sites)


def _parse_composition(text: str, toks: list[tuple[int, str]]) -> tuple[tuple[str, Fraction], ...]:
    if len(toks) % 2:
        pos, tok = toks[-1]
        raise _fail(text, pos, "composition", tok, "expected element/amount pairs, the last amount is missing")
    comp: list[tuple[str, Fraction]] = []
    seen: set[str] = set()
    for k in range(0, len(toks), 2):
        (epos, el), (apos, amt) = toks[k], toks[k + 1]
        if el not in G.ELEMENT_SET:
            raise _fail(text, epos, "composition", el, "not an element symbol (or X, a dummy species)")
        if el in seen:
            raise _fail(text, epos, "composition", el, "element appears twice")
        seen.add(el)
        value = G.amount_fraction(amt)
        if value is None:
            raise _fail(text, apos, "composition", amt, "expected an amount between 0.0 and 1.0 with at most "
                        "2 decimals, written as numpy prints it (e.g. 0.5, 0.07, 1.0)")
        comp.append((el, value))
    return tuple(comp)


def to_dialect(
    text: str,
    dialect: str = "default",
    generator_table: str | os.PathLike[str] | Mapping[Any, str] | None = None,
) -> str:
    """Re-render a SCOPE string of either dialect in ``dialect`` (e.g. CLOUD data in the default
    dialect). A default-dialect result is canonical; a cloud result keeps the order ``text`` has."""
    return parse(text, canonical=False).render(dialect, generator_table)


def dialect_of(text: str) -> str:
    """The dialect a SCOPE string is written in, from its first token: ``"cloud"`` (``0``/``1``)
    or ``"default"`` (a Hall symbol). Says nothing about validity: :func:`parse` checks that."""
    return "cloud" if text.lstrip()[:1] in ("0", "1") else "default"


def canonical_text(
    text: str,
    dialect: str | None = None,
    generator_table: str | os.PathLike[str] | Mapping[Any, str] | None = None,
) -> str:
    """The canonical string of the crystal ``text`` describes, in ``dialect`` (default: the dialect
    of ``text``). Every string of one crystal gives the same result; a canonical string is returned
    unchanged. A cloud result needs the generator table."""
    if dialect is None:
        dialect = dialect_of(text)
    return parse(text, canonical=True).render(dialect, generator_table, canonical=True)
