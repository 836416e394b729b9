"""Tokenize once, pad per batch: a data split as the model reads it (training and prediction).

:func:`encode` turns :class:`~cloudphys.data.Examples` into token-id arrays (one tokenizer call for
the whole split), composition features and float targets; :func:`collate` pads one batch to its
own longest sequence (not to a fixed 64 or 256) and moves it to the device. :func:`check_tokens` is
the one place a SCOPE string is tokenized and checked (vocabulary, grammar, length): training,
evaluation, pretraining and prediction all go through it, and prediction keeps its per-item
reasons instead of raising. :func:`load_split` reads a split of a config's data set. How training
deals out batches is :mod:`cloudphys.training.batching`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..data.base import Examples
from ..errors import ConfigError, DataError, ScopeError

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = [
    "Encoded",
    "canonical_string",
    "check_tokens",
    "collate",
    "encode",
    "load_split",
    "scope_parse_problem",
    "tokenize",
]


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
    #: atoms per primitive cell (intensive): ``Examples.n_atoms_primitive`` where known, else the given
    #: cell's atoms; the head condition ``n_atoms_primitive``. ``None``: read the given cells as primitive.
    n_atoms_primitive: np.ndarray | None = None
    #: phonon-DOS labels (``Examples.dos``, ``dos_fmax_thz``, ``dos_atom``; NaN rows: none), or ``None``
    dos: np.ndarray | None = None
    dos_fmax_thz: np.ndarray | None = None
    dos_atom: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)


#: How many bad strings a :class:`DataError` lists one by one (the rest are counted).
MAX_LISTED = 10


@lru_cache(maxsize=1 << 16)
def _parsed(text: str) -> tuple[Any, str | None]:
    """``(record, None)`` or ``(None, why parse refuses text)``; cached by string (one parse per string)."""
    from ..scope import parse_cached

    try:
        return parse_cached(text), None
    except Exception as exc:  # any refusal (or parser bug) is this string's problem
        msg = str(exc)
        if isinstance(exc, ScopeError):
            head, sep, _ = msg.rpartition(" -- in ")  # the parser echoes the string; the report shows it once
            return None, head if sep else msg
        return None, f"{type(exc).__name__}: {msg}"


def scope_parse_problem(text: str) -> str | None:
    """Why :func:`cloudphys.scope.parse` refuses ``text`` (its message without the echoed string), or None.

    Cached by string: a split or a pretraining corpus repeats strings, and evaluation re-encodes them.
    """
    return _parsed(text)[1]


@lru_cache(maxsize=1 << 16)
def canonical_string(text: str) -> str:
    """``text`` as the model reads it: a default-dialect string in its canonical form
    (:func:`cloudphys.scope.canonical_text`: one string per crystal, whoever built the examples);
    cloud strings, and strings that do not parse (reported as written by :func:`tokenize`), unchanged."""
    from ..scope import dialect_of

    record = _parsed(text)[0] if dialect_of(text) == "default" else None
    return text if record is None else record.render()  # parse gives a default string's canonical record


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


def check_tokens(
    tokenizer: Any, scope: Sequence[str], *, validate: bool = False
) -> tuple[list[np.ndarray], list[str | None]]:
    """Token ids ([CLS] … [SEP]) of each string (one tokenizer call) and, per string, why it cannot
    be used (``None`` when it can): tokens outside the vocabulary, more tokens than
    ``tokenizer.model_max_length`` (strings are never truncated) and, with ``validate``, what
    :func:`cloudphys.scope.parse` refuses (wrong section count, impossible Wyckoff letter, ...)."""
    if not scope:
        return [], []
    enc = tokenizer(list(scope), add_special_tokens=True, truncation=False, padding=False)["input_ids"]
    limit = int(getattr(tokenizer, "model_max_length", 10**9) or 10**9)
    unk = getattr(tokenizer, "unk_token_id", None)
    tokens, reasons = [], []
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
        tokens.append(np.asarray(row, dtype=np.int64))
        reasons.append("; ".join(why) if why else None)
    return tokens, reasons


def tokenize(
    tokenizer: Any, scope: Sequence[str], ids: Sequence[str] | None = None, *, validate: bool = False
) -> list[np.ndarray]:
    """Token ids ([CLS] … [SEP]) of each string, or one :class:`DataError` naming every string (by
    ``ids``, else ``#<index>``) that :func:`check_tokens` refuses, each with its reason(s).

    Training, evaluation and pretraining validate; nothing is ever truncated. A valid string
    encodes the same either way.
    """
    tokens, reasons = check_tokens(tokenizer, scope, validate=validate)
    problems = [(str(ids[k]) if ids is not None else f"#{k}", why, str(scope[k]))
                for k, why in enumerate(reasons) if why is not None]
    if problems:
        raise _scope_error(problems, len(tokens))
    return tokens


def encode(
    examples: Examples, model: Any, observables: Sequence[str] | None = None, *,
    tokens: Sequence[np.ndarray] | None = None, features: np.ndarray | None = None,
) -> Encoded:
    """Tokenize ``examples`` once for ``model`` (a :class:`ScopePhysicsModel`).

    Default-dialect strings are read in their canonical form (:func:`canonical_string`), so
    examples built by hand train and predict like those of ``cloudphys.inputs.to_records``.
    ``tokens`` / ``features``: already computed (by :func:`check_tokens` / ``model.featurize``) for
    these strings -- used as they are, nothing is tokenized or featurized again (unless a string
    was not canonical: then its canonical form is).
    """
    ids = list(examples.ids)
    scope = [canonical_string(str(s)) for s in examples.scope]
    given = scope == [str(s) for s in examples.scope]
    if tokens is None or not given:
        tokens = tokenize(model.tokenizer, scope, ids, validate=True)
    n = np.asarray(examples.n_atoms, dtype=np.float64)
    bad = np.flatnonzero(~(np.isfinite(n) & (n > 0)))
    if bad.size:
        raise DataError(f"n_atoms of {ids[bad[0]]} is {n[bad[0]]!r}; it must be a positive number")
    targets = {k: np.asarray(v, dtype=np.float64) for k, v in examples.targets.items()}
    if observables is not None:
        targets = {k: v for k, v in targets.items() if k in observables}
    if features is not None and given:
        feats = features
    else:  # the model passes geometry on only to an encoder that reads it
        geometry = _geometry_of(examples, ids) if getattr(model, "reads_geometry", False) else None
        feats = model.featurize(scope, n, geometry=geometry)
    # atoms per primitive cell: where the examples know them (from structures), else the given cell
    # (a SCOPE string cannot tell: its record's sites_per_primitive_cell is only a lower bound, low
    # wherever two orbits share a Wyckoff letter -- 468 of phonondb-thermo's 629 test materials)
    given_p = getattr(examples, "n_atoms_primitive", None)
    prim = n.copy() if given_p is None else np.asarray(given_p, dtype=np.float64).reshape(len(scope))
    bad_p = ~(np.isfinite(prim) & (prim > 0))
    prim = np.where(bad_p, n, prim)
    return Encoded(
        ids=ids,
        scope=scope,
        input_ids=list(tokens),
        n_atoms=n,
        temperatures=np.asarray(examples.temperatures, dtype=np.float64),
        targets=targets,
        features=None if feats is None else np.asarray(feats, dtype=np.float32),
        n_atoms_primitive=prim,
        dos=getattr(examples, "dos", None),
        dos_fmax_thz=getattr(examples, "dos_fmax_thz", None),
        dos_atom=getattr(examples, "dos_atom", None),
    )


def _geometry_of(examples: Examples, ids: Sequence[str]) -> np.ndarray:
    """``examples.geometry`` for a model that reads it, or a :class:`DataError` naming the examples
    without (finite) geometric features and why."""
    from ..encoders.geometry import N_GEOMETRIC_FEATURES, NEEDS_STRUCTURE

    geo = getattr(examples, "geometry", None)
    if geo is None:
        raise DataError(
            f"{NEEDS_STRUCTURE}: these {len(ids)} examples carry no geometric features (Examples.geometry; data "
            "sets of structures compute them with geometry=True)"
        )
    geo = np.asarray(geo, dtype=np.float64)
    if geo.shape != (len(ids), N_GEOMETRIC_FEATURES):
        raise DataError(f"Examples.geometry has shape {geo.shape}, expected {(len(ids), N_GEOMETRIC_FEATURES)}")
    bad = np.flatnonzero(~np.isfinite(geo).all(1))
    if bad.size:
        names = ", ".join(str(ids[k]) for k in bad[:MAX_LISTED]) + (f" and {bad.size - MAX_LISTED} more"
                                                                    if bad.size > MAX_LISTED else "")
        raise DataError(f"{bad.size} of {len(ids)} examples have no geometric features ({names}): no structure, or "
                        f"one they cannot be computed from; {NEEDS_STRUCTURE}")
    return geo


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
        "n_atoms_primitive": None if enc.n_atoms_primitive is None
        else torch.from_numpy(enc.n_atoms_primitive[idx]).float().to(device),
    }
    if enc.dos is not None:  # float64 labels: the W1 loss is computed in float64 (cheap: [B, K])
        batch["dos"] = {
            "mass": torch.from_numpy(enc.dos[idx]).to(device),
            "fmax_thz": torch.from_numpy(np.asarray(enc.dos_fmax_thz)[idx]).to(device),
            "atom": torch.from_numpy(np.asarray(enc.dos_atom)[idx]).to(device),
        }
    return batch


def load_split(config: Any, split: str, registry: PluginRegistry | None = None) -> Examples:
    """Load ``split`` of the data set of ``config`` (a :class:`~cloudphys.config.Config`); labelled only."""
    if config.data is None:
        raise ConfigError("config has no 'data' section")
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    spec = registry.dataset(config.data.name)
    if split not in spec.splits:
        raise ConfigError(f"data set {config.data.name!r} has no split {split!r}; available: {', '.join(spec.splits)}")
    params = dict(config.data.params)
    if reads_geometry_config(config) and "geometry" in spec.params:
        params.setdefault("geometry", True)  # the structures' geometric features, for an encoder that reads them
    out = spec.load(split=split, **params)
    if not isinstance(out, Examples):
        raise DataError(f"data set {config.data.name!r} is unlabelled; it cannot be used for supervised training")
    return out


def reads_geometry_config(config: Any) -> bool:
    """Whether the encoder of ``config`` reads geometric features (``encoder.geometric_features``)."""
    enc = getattr(config, "encoder", None)
    from ..encoders.geometry import geometry_layout

    if enc is None:
        return False
    return geometry_layout(getattr(enc, "params", {}).get("geometric_features", False)) > 0
