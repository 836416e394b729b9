"""A trained model's core: :func:`load_core` (single model or ensemble) and :func:`predict_encoded`.

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

__all__ = ["load_core", "predict_encoded"]


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
