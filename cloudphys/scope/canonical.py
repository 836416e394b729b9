"""The canonical form of a SCOPE record: one description per crystal.

The same crystal can be written with Wyckoff letters that differ by an element of its space group's
Euclidean normalizer -- an origin shift or a change of axes that maps the group onto itself, such as
8a ↔ 8b in Fd-3m (Si on 8a, or the same cell shifted by (½, ½, ½), Si on 8b). spglib reports
whichever the input's origin gives. The canonical record removes that freedom by a fixed rule:

1. **sites**: among the images of the record's set of Wyckoff letters under the normalizer's letter
   permutations (:data:`cloudphys.scope._relabelings.RELABELINGS`, from the Bilbao Crystallographic
   Server's WYCKSETS via PyXtal; see ``docs/scope.md``), take the one whose letters, sorted in ITA
   order (a..z, A), form the lexicographically smallest tuple; write the sites in that order. A
   relabelling keeps multiplicities, so each site keeps its own.
2. **composition**: elements in order of atomic number (the dummy species ``X`` last).

The rule is aviary/Wren's idea (apply every relabelling of the group, keep the smallest under a
fixed order) applied to SCOPE's content, which pairs no element with a site: only the letter set
and the amounts are invariant, so only they are kept, in a fixed order. Site order and element
order of the input (first appearance over the structure's sites) carry no information about the
crystal and are dropped with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache, lru_cache

from . import _grammar as G
from ._relabelings import RELABELINGS

__all__ = ["canonical_letters", "element_order_key", "relabelings"]

_LETTER_STR = "".join(G.WYCKOFF_LETTERS)
_Z = {symbol: z for z, symbol in enumerate(G.COMPOSITION_SYMBOLS, start=1)}  # X after the elements


@cache
def relabelings(number: int) -> tuple[dict[str, str], ...]:
    """The Wyckoff-letter permutations of space group ``number`` induced by its Euclidean
    normalizer, identity first, each as ``{letter: image}``."""
    general = G.general_wyckoff_letter(number)
    letters = _LETTER_STR[: G.letter_rank(general) + 1]
    identity = {c: c for c in letters}
    return (identity,) + tuple(dict(zip(letters, perm)) for perm in RELABELINGS.get(number, ()))


@lru_cache(maxsize=1 << 14)
def _canonical(number: int, letters: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    best: tuple[int, ...] | None = None
    best_map: dict[str, str] = {}
    for perm in relabelings(number):
        try:
            key = tuple(sorted(G.letter_rank(perm[c]) for c in letters))
        except KeyError:  # a letter the group does not have: leave it to the caller's validation
            return tuple((c, c) for c in sorted(letters, key=G.letter_rank))
        if best is None or key < best:
            best, best_map = key, perm
    return tuple(sorted(((c, best_map[c]) for c in letters), key=lambda pair: G.letter_rank(pair[1])))


def canonical_letters(number: int, letters: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """``(letter, canonical letter)`` pairs for distinct Wyckoff ``letters`` of group ``number``,
    in the canonical order (sorted canonical letters, smallest over the normalizer's relabellings)."""
    return _canonical(int(number), tuple(letters))


def element_order_key(symbol: str) -> int:
    """Sort key of the canonical composition order: atomic number, ``X`` (dummy species) last."""
    return _Z[symbol]
