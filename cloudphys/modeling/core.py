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
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from ..errors import CheckpointError, CloudphysError
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
    errors: dict[int, str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Observables ``{name: [N, nT]}`` and latents ``{name: [N, *shape]}`` (float64) for every item of ``enc``.

    Batches are formed from length-sorted items (less padding); the output is in input order. The
    model is put in eval mode for the call and its mode restored afterwards.

    :param errors: if given, the head's outputs are checked against its contract at run time
        (:func:`~cloudphys.physics.contract.head_output_problems`: shapes, every observable asked for,
        finite, cv >= 0, s >= 0, f = u - T*s): ``errors[i]`` names the head and the problem of item
        ``i`` (its values are NaN), the other items keep theirs. A head that raises is run again one
        item at a time, so that only the items it fails on are lost.
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
            if errors is not None:
                out, lat = _checked_batch(model, enc, idx, pad, device, precision, observables, errors)
            else:
                b = collate(enc, idx, pad, device)
                with autocast(device, precision):
                    out, lat = model(
                        b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"],
                        observables, n_atoms_primitive=b["n_atoms_primitive"],
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
    precision: str = "auto", observables: Sequence[str] | None = None, errors: dict[int, str] | None = None,
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """:func:`predict_encoded` of an ensemble and of each of its members at
    once: every member's encoder runs once per batch; the head is evaluated on the members' mean
    latents (the ensemble's prediction, first) and on each member's latents (the same numbers as
    running each member alone). ``[(observables, latents)]``, ensemble first, float64, input order.

    :param errors: as for :func:`predict_encoded`: every head evaluation (ensemble and members) is
        checked against the head's contract; an item any of them fails on gets the error (NaN values).
    """
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
                    if errors is None:
                        obs = model.head(latents=lat, temperature=b["temperature"].float(),
                                         n_atoms=b["n_atoms"].float(), observables=observables, **extra)
                    else:
                        obs = _checked_head(model, lat, b, idx, observables, extra, errors)
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


def _checked_batch(
    model: ScopePhysicsModel, enc: Encoded, idx: np.ndarray, pad: int, device: torch.device, precision: str,
    observables: Sequence[str] | None, errors: dict[int, str],
) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """One batch through ``model`` with the head's outputs checked; failures go to ``errors`` (by
    item index) and their values become NaN. A batch that raises is retried item by item."""
    from ..physics.contract import head_output_problems

    name = getattr(model.head, "name", type(model.head).__name__)
    obs = list(observables) if observables is not None else list(model.head.selected)
    b = collate(enc, idx, pad, device)
    try:
        with autocast(device, precision):
            out, lat = model(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"],
                             observables, n_atoms_primitive=b["n_atoms_primitive"])
        whole, per_item = head_output_problems(model.head, out, b["temperature"], b["n_atoms"], obs)
    except CloudphysError:
        raise
    except Exception as exc:  # a plugin head that raises: isolate the items it fails on
        if len(idx) > 1:
            parts = [_checked_batch(model, enc, idx[k : k + 1], pad, device, precision, observables, errors)
                     for k in range(len(idx))]
            return ({o: torch.cat([p[0][o] for p in parts]) for o in parts[0][0]},
                    {k: torch.cat([p[1][k] for p in parts]) for k in parts[0][1]})
        whole, per_item, out, lat = f"raised {type(exc).__name__}: {exc}", [None], {}, {}
    B, nT = b["temperature"].shape
    if whole is not None:
        for i in idx:
            errors[int(i)] = f"head {name!r}: {whole}"
        nan = torch.full((B, nT), float("nan"), device=b["temperature"].device)
        out = {o: nan for o in obs}
        dev = b["temperature"].device
        lat = lat if lat else {s.name: torch.full((B, *([int(s.size)] if int(s.size) > 1 else [])), float("nan"),
                                                  device=dev) for s in model.head.latents}
        return out, lat
    out = {o: out[o] for o in obs}
    for k, problem in enumerate(per_item):
        if problem is not None:
            errors[int(idx[k])] = f"head {name!r} broke its contract: {problem}"
    return out, lat


def _checked_head(model: ScopePhysicsModel, lat: dict[str, Tensor], b: dict[str, Any], idx: np.ndarray,
                  observables: Sequence[str] | None, extra: dict[str, Tensor],
                  errors: dict[int, str]) -> dict[str, Tensor]:
    """The head on the latents of one batch, its outputs checked (:func:`predict_encoded_members`)."""
    from ..physics.contract import head_output_problems

    name = getattr(model.head, "name", type(model.head).__name__)
    obs_names = list(observables) if observables is not None else list(model.head.selected)
    T, n = b["temperature"].float(), b["n_atoms"].float()
    try:
        out = model.head(latents=lat, temperature=T, n_atoms=n, observables=observables, **extra)
        whole, per_item = head_output_problems(model.head, out, T, n, obs_names)
    except CloudphysError:
        raise
    except Exception as exc:  # a plugin head that raises: the whole batch of this evaluation
        out, whole, per_item = {}, f"raised {type(exc).__name__}: {exc}", []
    if whole is not None:
        for i in idx:
            errors.setdefault(int(i), f"head {name!r}: {whole}")
        return {o: torch.full(tuple(T.shape), float("nan"), device=T.device) for o in obs_names}
    for k, problem in enumerate(per_item):
        if problem is not None:
            errors.setdefault(int(idx[k]), f"head {name!r} broke its contract: {problem}")
    return {o: out[o] for o in obs_names}
