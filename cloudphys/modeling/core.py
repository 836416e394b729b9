"""A trained model's core: :func:`load_core` (single model or ensemble), :func:`predict_encoded` and
:func:`predict_encoded_members` (an ensemble and its members from one encoder pass per member).

:func:`load_core` returns the torch module (:class:`~cloudphys.modeling.model.ScopePhysicsModel`)
that training, evaluation and prediction run; users load a model with :func:`cloudphys.load_model`,
which wraps it as a :class:`~cloudphys.models.api.Model`.

:func:`load_core` is the one place that decides what a directory holds: an ensemble run
(``ensemble.json``), a run directory (``RUN/model``) or a model directory. A directory that holds
both an ensemble and a single model (left by an older cloudphys) is refused rather than guessed.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import CheckpointError
from .device import autocast
from .encoding import Encoded, collate
from .ensemble import load_ensemble
from .format import ENSEMBLE_FILE, is_ensemble_dir
from .model import HEAD_FILE, ScopePhysicsModel

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["load_core", "predict_encoded", "predict_encoded_members"]


def load_core(
    path: str | Path, *, registry: PluginRegistry | None = None, map_location: str | torch.device = "cpu"
) -> ScopePhysicsModel:
    """The trained model in ``path``: an ensemble run, a run directory or a model directory.

    Raises :class:`~cloudphys.errors.CheckpointError` naming the directory when it holds no model,
    holds a single model *and* an ensemble, or its files are corrupt, of a newer format, or altered.
    """
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no model at {path}: the directory does not exist")
    if is_ensemble_dir(path):
        single = [p.name for p in (path / "model", path / "last", path / HEAD_FILE) if p.exists()]
        if single:
            raise CheckpointError(
                f"{path} holds an ensemble ({ENSEMBLE_FILE}) and a single-model run ({', '.join(single)}); "
                f"load one explicitly (e.g. {path / 'model'}) or retrain into it with --overwrite"
            )
        return load_ensemble(path, registry=registry, map_location=map_location)
    return ScopePhysicsModel.from_pretrained(path, registry=registry, map_location=map_location)


@torch.no_grad()
def predict_encoded(
    model: ScopePhysicsModel,
    enc: Encoded,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    observables: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Observables ``{name: [N, nT]}`` and latents ``{name: [N, *shape]}`` (float64) for every item of ``enc``.

    Batches are formed from length-sorted items (less padding); the output is in input order. The
    model is put in eval mode for the call and its mode restored afterwards.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    order = np.argsort([len(r) for r in enc.input_ids], kind="stable")
    preds: dict[str, list[np.ndarray]] = {}
    lats: dict[str, list[np.ndarray]] = {}
    pad = int(model.tokenizer.pad_token_id)
    try:
        for start in range(0, len(enc), batch_size):
            idx = order[start : start + batch_size]
            b = collate(enc, idx, pad, device)
            with autocast(device, precision):
                out, lat = model(
                    b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"], observables,
                    n_atoms_primitive=b["n_atoms_primitive"],
                )
            for k, v in out.items():
                preds.setdefault(k, []).append(v.float().cpu().numpy())
            for k, v in lat.items():
                lats.setdefault(k, []).append(v.float().cpu().numpy())
    finally:
        model.train(was_training)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return (np.concatenate(parts)[inv] if parts else np.zeros((0,))).astype(np.float64)

    return {k: cat(v) for k, v in preds.items()}, {k: cat(v) for k, v in lats.items()}


@torch.no_grad()
def predict_encoded_members(
    model: ScopePhysicsModel, enc: Encoded, *, batch_size: int = 256, device: torch.device | str = "cpu",
    precision: str = "auto", observables: Sequence[str] | None = None,
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """:func:`predict_encoded` of an ensemble and of each of its members at
    once: every member's encoder runs once per batch; the head is evaluated on the members' mean
    latents (the ensemble's prediction, first) and on each member's latents (the same numbers as
    running each member alone). ``[(observables, latents)]``, ensemble first, float64, input order."""
    device = torch.device(device)
    ens = model.encoder
    k = len(ens.members)
    was_training = model.training
    model.eval()
    order = np.argsort([len(r) for r in enc.input_ids], kind="stable")
    parts: list[tuple[dict[str, list[np.ndarray]], dict[str, list[np.ndarray]]]] = [({}, {}) for _ in range(k + 1)]
    pad = int(model.tokenizer.pad_token_id)
    try:
        for start in range(0, len(enc), batch_size):
            idx = order[start : start + batch_size]
            b = collate(enc, idx, pad, device)
            with autocast(device, precision):
                per = ens.member_latents(b["input_ids"], b["attention_mask"], b["features"])
            mean = {name: torch.stack([o[name] for o in per]).mean(0) for name in per[0]}
            extra = {} if b["n_atoms_primitive"] is None else {"n_atoms_primitive": b["n_atoms_primitive"].float()}
            with torch.autocast(device_type=device.type, enabled=False):
                for (obs_out, lat_out), lat in zip(parts, [mean, *per]):
                    lat = {name: v.float() for name, v in lat.items()}
                    obs = model.head(latents=lat, temperature=b["temperature"].float(), n_atoms=b["n_atoms"].float(),
                                     observables=observables, **extra)
                    for name, v in obs.items():
                        obs_out.setdefault(name, []).append(v.float().cpu().numpy())
                    for name, v in lat.items():
                        lat_out.setdefault(name, []).append(v.float().cpu().numpy())
    finally:
        model.train(was_training)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))

    def cat(chunks: list[np.ndarray]) -> np.ndarray:
        return (np.concatenate(chunks)[inv] if chunks else np.zeros((0,))).astype(np.float64)

    return [({n: cat(v) for n, v in o.items()}, {n: cat(v) for n, v in la.items()}) for o, la in parts]
