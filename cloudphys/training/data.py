"""Tokenize once, pad per batch: the trainer's view of a data split.

:func:`encode` turns :class:`~cloudphys.data.Examples` into token-id arrays (one tokenizer call for
the whole split), composition features and float targets; :func:`collate` pads one batch to its
own longest sequence (not to a fixed 64 or 256) and moves it to the device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..data.base import Examples
from ..errors import DataError

__all__ = ["Encoded", "encode", "collate", "batch_indices", "tokenize"]


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


def tokenize(tokenizer: Any, scope: Sequence[str], ids: Sequence[str] | None = None) -> list[np.ndarray]:
    """Token ids ([CLS] … [SEP]) of each string; raise :class:`DataError` naming a string that is too long."""
    if not scope:
        return []
    enc = tokenizer(list(scope), add_special_tokens=True, truncation=False, padding=False)["input_ids"]
    limit = int(getattr(tokenizer, "model_max_length", 10**9) or 10**9)
    unk = getattr(tokenizer, "unk_token_id", None)
    out = []
    for k, row in enumerate(enc):
        if unk is not None and unk in row:
            name = ids[k] if ids is not None else f"#{k}"
            vocab = tokenizer.get_vocab()
            bad = [t for t in str(scope[k]).split() if t not in vocab]
            raise DataError(f"SCOPE string of {name} has token(s) outside the vocabulary: {bad[:5]} (in {scope[k]!r})")
        if len(row) > limit:
            name = ids[k] if ids is not None else f"#{k}"
            raise DataError(
                f"SCOPE string of {name} has {len(row)} tokens, more than the model's max_length {limit}; "
                "raise encoder.max_length (strings are never truncated)"
            )
        out.append(np.asarray(row, dtype=np.int64))
    return out


def encode(examples: Examples, model: Any, observables: Sequence[str] | None = None) -> Encoded:
    """Tokenize ``examples`` once for ``model`` (a :class:`ScopePhysicsModel`)."""
    ids = list(examples.ids)
    tokens = tokenize(model.tokenizer, examples.scope, ids)
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
