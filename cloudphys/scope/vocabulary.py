"""Every token a SCOPE string of either dialect can contain, by kind, in a fixed order.

The tokenizer (:mod:`cloudphys.tokenizer`) builds its closed vocabulary from these groups, so the
grammar (:mod:`._grammar`, private to this package) stays the one source of the tokens.
"""

from __future__ import annotations

from . import _grammar as G

__all__ = ["token_groups"]


def token_groups() -> list[list[str]]:
    """The token groups in vocabulary order: cloud-dialect symmetry tokens, default-dialect Hall
    tokens (sorted), Wyckoff labels ``<multiplicity><letter>``, element symbols, amounts."""
    return [
        list(G.CLOUD_SYMMETRY_TOKENS),
        sorted({t for n in range(1, 231) for t in G.hall_tokens(n)}),
        [f"{m}{letter}" for m in G.all_wyckoff_multiplicities() for letter in G.WYCKOFF_LETTERS],
        list(G.COMPOSITION_SYMBOLS),
        list(G.COMPOSITION_VALUES),
    ]
