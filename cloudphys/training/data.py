"""Tokenize once, pad per batch: the trainer's view of a data split.

:func:`encode` turns :class:`~cloudphys.data.Examples` into token-id arrays (one tokenizer call for
the whole split), composition features and float targets; :func:`collate` pads one batch to its
own longest sequence (not to a fixed 64 or 256) and moves it to the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data.base import Examples
from ..errors import DataError, ScopeError

__all__ = ["Encoded", "encode", "collate", "batch_indices", "tokenize", "scope_parse_problem"]


@dataclass
class Encoded:
    """One split, tokenized: ragged token ids plus per-sample arrays."""

    ids: list[str]
    scope: list[str]
    input_ids: list[np.ndarray]
    n_atoms: np.ndarray
    temperatures: np.ndarray
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    features: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, idx: Sequence[int] | np.ndarray) -> "Encoded":
        idx = np.asarray(idx, dtype=np.int64)
        return Encoded(
            ids=[self.ids[i] for i in idx],
            scope=[self.scope[i] for i in idx],
            input_ids=[self.input_ids[i] for i in idx],
            n_atoms=self.n_atoms[idx],
            temperatures=self.temperatures,
            targets={k: v[idx] for k, v in self.targets.items()},
            features=None if self.features is None else self.features[idx],
        )


#: How many bad strings a :class:`DataError` lists one by one (the rest are counted).
MAX_LISTED = 10


@lru_cache(maxsize=1 << 16)
def scope_parse_problem(text: str) -> str | None:
    """Why :func:`cloudphys.scope.parse` refuses ``text`` (its message without the echoed string), or None.

    Cached by string: a split or a pretraining corpus repeats strings, and evaluation re-encodes them.
    """
    from ..scope import parse

    try:
        parse(text)
    except Exception as exc:  # noqa: BLE001 - any refusal (or parser bug) is this string's problem
        msg = str(exc)
        if isinstance(exc, ScopeError):
            head, sep, _ = msg.rpartition(" -- in ")  # the parser echoes the string; the report shows it once
            return head if sep else msg
        return f"{type(exc).__name__}: {msg}"
    return None


def _snippet(text: str) -> str:
    return text if len(text) <= 120 else text[:117] + "..."


def _unknown_tokens(tokenizer: Any, text: str) -> list[str]:
    """The pieces of ``text`` outside the vocabulary, split as the tokenizer splits (``|`` glued too)."""
    vocab = tokenizer.get_vocab()
    pre = getattr(getattr(tokenizer, "backend_tokenizer", None), "pre_tokenizer", None)
    pieces = [p for p, _ in pre.pre_tokenize_str(text)] if pre is not None else text.split()
    return [p for p in pieces if p not in vocab]


def _scope_error(problems: Sequence[tuple[str, str, str]], total: int) -> DataError:
    """One :class:`DataError` for ``problems`` (name, reasons, string): the first :data:`MAX_LISTED`
    one per line, then "and N more"."""
    lines = [f"{name} {why} (in {_snippet(text)!r})" for name, why, text in problems[:MAX_LISTED]]
    if len(problems) == 1:
        return DataError(f"SCOPE string of {lines[0]}")
    more = len(problems) - MAX_LISTED
    body = "\n".join(f"  {line}" for line in lines) + (f"\n  ... and {more} more" if more > 0 else "")
    return DataError(f"{len(problems)} of {total} SCOPE strings cannot be used (fix or drop them):\n{body}")


def tokenize(
    tokenizer: Any, scope: Sequence[str], ids: Sequence[str] | None = None, *, validate: bool = False
) -> list[np.ndarray]:
    """Token ids ([CLS] … [SEP]) of each string.

    Raises one :class:`DataError` naming every string (by ``ids``, else ``#<index>``) that has tokens
    outside the vocabulary or more tokens than ``tokenizer.model_max_length`` and, with ``validate``,
    every string :func:`cloudphys.scope.parse` refuses (wrong section count, impossible Wyckoff
    letter, ...), each with its reason(s). Training, evaluation and pretraining validate; nothing is
    ever truncated. A valid string encodes the same either way.
    """
    if not scope:
        return []
    enc = tokenizer(list(scope), add_special_tokens=True, truncation=False, padding=False)["input_ids"]
    limit = int(getattr(tokenizer, "model_max_length", 10**9) or 10**9)
    unk = getattr(tokenizer, "unk_token_id", None)
    problems: list[tuple[str, str, str]] = []
    out = []
    for k, row in enumerate(enc):
        text = str(scope[k])
        why = []
        if unk is not None and unk in row:
            why.append(f"has token(s) outside the vocabulary: {_unknown_tokens(tokenizer, text)[:5]}")
        if validate:
            reason = scope_parse_problem(text)
            if reason is not None:
                why.append(f"does not parse: {reason}")
        if len(row) > limit:
            why.append(
                f"has {len(row)} tokens, more than the model's max_length {limit}; "
                "raise encoder.max_length (strings are never truncated)"
            )
        if why:
            problems.append((str(ids[k]) if ids is not None else f"#{k}", "; ".join(why), text))
        out.append(np.asarray(row, dtype=np.int64))
    if problems:
        raise _scope_error(problems, len(enc))
    return out


def encode(examples: Examples, model: Any, observables: Sequence[str] | None = None) -> Encoded:
    """Tokenize ``examples`` once for ``model`` (a :class:`ScopePhysicsModel`)."""
    ids = list(examples.ids)
    tokens = tokenize(model.tokenizer, examples.scope, ids, validate=True)
    n = np.asarray(examples.n_atoms, dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(n) & (n > 0)))
    if bad.size:
        raise DataError(f"n_atoms of {ids[bad[0]]} is {n[bad[0]]!r}; it must be a positive number")
    targets = {k: np.asarray(v, dtype=np.float64) for k, v in examples.targets.items()}
    if observables is not None:
        targets = {k: v for k, v in targets.items() if k in observables}
    feats = model.featurize(examples.scope, n)
    return Encoded(
        ids=ids,
        scope=list(examples.scope),
        input_ids=tokens,
        n_atoms=n,
        temperatures=np.asarray(examples.temperatures, dtype=np.float64),
        targets=targets,
        features=None if feats is None else np.asarray(feats, dtype=np.float32),
    )


def collate(enc: Encoded, idx: np.ndarray, pad_id: int, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Pad batch ``idx`` of ``enc`` to its longest sequence; tensors on ``device``."""
    rows = [enc.input_ids[i] for i in idx]
    length = max(len(r) for r in rows)
    ids = np.full((len(rows), length), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), length), dtype=np.int64)
    for k, r in enumerate(rows):
        ids[k, : len(r)] = r
        mask[k, : len(r)] = 1
    nT = len(enc.temperatures)
    batch: dict[str, Any] = {
        "input_ids": torch.from_numpy(ids).to(device),
        "attention_mask": torch.from_numpy(mask).to(device),
        "n_atoms": torch.from_numpy(enc.n_atoms[idx]).float().to(device),
        "temperature": torch.from_numpy(np.broadcast_to(enc.temperatures, (len(rows), nT)).copy()).float().to(device),
        "targets": {k: torch.from_numpy(v[idx]).float().to(device) for k, v in enc.targets.items()},
        "features": None if enc.features is None else torch.from_numpy(enc.features[idx]).to(device),
    }
    return batch


def batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world: int = 1,
    lengths: Sequence[int] | np.ndarray | None = None,
    group: int = 50,
) -> Iterator[np.ndarray]:
    """Indices of each batch this rank processes.

    The order is a permutation drawn from ``(seed, epoch)`` alone (reproducible, resumable). With
    ``lengths`` (group by length), the permutation is cut into windows of ``group`` batches, each
    window sorted by length and cut into batches, and the batches shuffled: batches hold strings of
    similar length, so dynamic padding adds little. With ``world`` ranks each global batch of
    ``batch_size`` is dealt out ``batch[rank::world]``; a last global batch smaller than ``world`` is
    dropped so that every rank takes the same number of steps.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    chunks = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    if shuffle and lengths is not None:
        lens = np.asarray(lengths)
        window = batch_size * max(1, group)
        chunks = []
        for w in range(0, n, window):
            part = order[w : w + window]
            part = part[np.argsort(lens[part], kind="stable")]
            chunks += [part[s : s + batch_size] for s in range(0, len(part), batch_size)]
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    for chunk in chunks:
        if world > 1:
            if len(chunk) < world:
                break
            chunk = chunk[rank::world]
        yield chunk
