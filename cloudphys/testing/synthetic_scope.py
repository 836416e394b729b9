"""Synthetic SCOPE strings drawn from the grammar, fast enough for millions (benchmarks of the corpus).

Each string is a real space group with a real Wyckoff set and a random composition of real elements:

1. space group ``g`` uniform in 1..230; its symmetry section is the Hall symbol of spglib's default
   setting (the default dialect, :func:`cloudphys.scope.symmetry_tokens`);
2. ``k`` sites, ``k`` uniform in 1..6 (at most the group's number of Wyckoff positions), ``k``
   distinct Wyckoff letters of ``g`` drawn uniformly, each with its conventional-cell multiplicity
   from CLOUD's table ``cloud/wyckoff-position-multiplicities.json`` (ordered by letter);
3. ``e`` elements, ``e`` uniform in 1..min(k, 4), drawn without replacement from H..Pu (Z 1-94);
   site ``j`` is occupied by element ``j`` for ``j < e`` (so each element occurs) and by a random one
   of the ``e`` otherwise; an element's amount is its share of the atoms in the cell (sum of its
   sites' multiplicities / all), rounded to 2 decimals as the converter writes it.

Everything is vectorised with numpy over the whole batch and the token ids are assembled directly
(CSR: a flat id array and offsets), so no Python object per string is made unless text is asked for.
The strings are valid (they parse); they are not canonical (the corpus builder canonicalises), and a
few repeat (the builder de-duplicates).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SyntheticScope"]

MAX_SITES = 6
MAX_ELEMENTS = 4
MAX_Z = 94
LETTERS = "abcdefghijklmnopqrstuvwxyzA"  # Wyckoff letters in ITA order


@cache
def _tables(table_path: str) -> dict[str, Any]:
    from ..scope import symmetry_tokens
    from ..scope.vocabulary import token_groups
    from ..tokenizer import build_vocabulary

    groups = token_groups()
    elements, amounts = groups[3][:MAX_Z], groups[4]  # H..Pu by atomic number; 0.0, 0.01, ..., 1.0
    vocab = build_vocabulary()
    ids = {t: i for i, t in enumerate(vocab)}
    raw = json.loads(Path(table_path).read_text())
    n_letters = np.zeros(231, dtype=np.int64)
    label_id = np.zeros((231, 27), dtype=np.int64)
    mult = np.zeros((231, 27), dtype=np.int64)
    hall: list[list[int]] = [[]]
    for g in range(1, 231):
        entries = sorted(raw[str(g)].items(), key=lambda kv: LETTERS.index(kv[0]))
        n_letters[g] = len(entries)
        for j, (letter, m) in enumerate(entries):
            label_id[g, j] = ids[f"{int(m)}{letter}"]
            mult[g, j] = int(m)
        hall.append([ids[t] for t in symmetry_tokens(g)])
    hall_len = np.array([len(h) for h in hall], dtype=np.int64)
    hall_flat = np.zeros((231, int(hall_len.max())), dtype=np.int64)
    for g in range(1, 231):
        hall_flat[g, : hall_len[g]] = hall[g]
    return {"vocab": np.array(vocab, dtype=object), "ids": ids, "n_letters": n_letters, "label_id": label_id,
            "mult": mult, "hall": hall_flat, "hall_len": hall_len,
            "element_id": np.array([ids[e] for e in elements], dtype=np.int64),
            "amount_id": np.array([ids[t] for t in amounts], dtype=np.int64)}


class SyntheticScope:
    """Draw synthetic default-dialect SCOPE strings (see the module docstring).

    :param table: CLOUD's ``wyckoff-position-multiplicities.json`` (default: under ``CLOUDPHYS_DATA``).
    """

    def __init__(self, table: str | Path | None = None) -> None:
        if table is None:
            from ..data.base import data_dir

            table = data_dir() / "cloud" / "wyckoff-position-multiplicities.json"
        self.t = _tables(str(table))

    def ids(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(tokens, offsets)``: token ids (uint16, ``[CLS] ... [SEP]``) of ``n`` strings, CSR."""
        t = self.t
        g = rng.integers(1, 231, size=n)
        nl = t["n_letters"][g]
        k = np.minimum(rng.integers(1, MAX_SITES + 1, size=n), nl)
        # k distinct letters: the k smallest of random keys over the group's letters, then in letter order
        keys = rng.random((n, 27))
        keys[np.arange(27)[None, :] >= nl[:, None]] = np.inf
        pick = np.argsort(keys, axis=1)[:, :MAX_SITES]
        site_ok = np.arange(MAX_SITES)[None, :] < k[:, None]
        pick = np.where(site_ok, pick, 99)
        pick.sort(axis=1)
        pick = np.where(site_ok, pick, 0)
        labels = t["label_id"][g[:, None], pick]
        mult = np.where(site_ok, t["mult"][g[:, None], pick], 0)
        # elements and the site -> element map
        e = np.minimum(rng.integers(1, MAX_ELEMENTS + 1, size=n), k)
        z = np.argsort(rng.random((n, MAX_Z)), axis=1)[:, :MAX_ELEMENTS]
        occ = (rng.random((n, MAX_SITES)) * e[:, None]).astype(np.int64)
        occ = np.where(np.arange(MAX_SITES)[None, :] < e[:, None], np.arange(MAX_SITES)[None, :], occ)
        occ = np.minimum(occ, MAX_ELEMENTS - 1)
        share = np.zeros((n, MAX_ELEMENTS))
        np.add.at(share, (np.repeat(np.arange(n), MAX_SITES), occ.ravel()), mult.ravel())
        share /= share.sum(axis=1, keepdims=True)
        amount = np.rint(np.round(share, 2) * 100).astype(np.int64)
        # assemble: [CLS] hall... | labels... | (element amount)... [SEP]
        hl = t["hall_len"][g]
        length = 1 + hl + 1 + k + 1 + 2 * e + 1
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(length, out=offsets[1:])
        width = int(length.max())
        grid = np.zeros((n, width), dtype=np.int64)
        col = np.arange(width)[None, :]
        ids = t["ids"]
        grid[:, 0] = ids["[CLS]"]
        hall = t["hall"][g]
        hw = hall.shape[1]
        grid[:, 1 : 1 + hw] = np.where(col[:, :hw] < hl[:, None], hall, 0)
        row = np.arange(n)
        grid[row, 1 + hl] = ids["|"]
        for j in range(MAX_SITES):
            m = site_ok[:, j]
            grid[row[m], (2 + hl + j)[m]] = labels[m, j]
        grid[row, 2 + hl + k] = ids["|"]
        base = 3 + hl + k
        for j in range(MAX_ELEMENTS):
            m = j < e
            grid[row[m], (base + 2 * j)[m]] = t["element_id"][z[m, j]]
            grid[row[m], (base + 2 * j + 1)[m]] = t["amount_id"][amount[m, j]]
        grid[row, base + 2 * e] = ids["[SEP]"]
        tokens = grid[col < length[:, None]].astype(np.uint16)
        return tokens, offsets

    def texts(self, tokens: np.ndarray, offsets: np.ndarray) -> list[str]:
        """The strings of ``(tokens, offsets)`` as text (without ``[CLS]``/``[SEP]``)."""
        vocab = self.t["vocab"]
        words = vocab[tokens.astype(np.int64)]
        return [" ".join(words[offsets[i] + 1 : offsets[i + 1] - 1]) for i in range(len(offsets) - 1)]

    def strings(self, n: int, seed: int = 0) -> list[str]:
        """``n`` strings as text."""
        return self.texts(*self.ids(n, np.random.default_rng(seed)))
