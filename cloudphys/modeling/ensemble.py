"""Seed ensembles as one model: K encoders whose latents are averaged, one head.

An ensemble predicts one set of latents per material (the members' mean, which stays inside every
declared bound: the bounds are intervals) and evaluates the head once on it, so its curves are as
thermodynamically consistent as a single model's and ``predict`` still reports one ``theta_D``.

On disk an ensemble run is a directory holding ``ensemble.json`` and one ordinary run directory per
member (``member-0/``, ``member-1/``, ...); :func:`load_ensemble` reads it (training one is
:func:`cloudphys.training.ensemble.fit_ensemble`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from ..encoders.base import Encoder
from ..errors import CheckpointError, ConfigError
from .format import check_format, read_manifest
from .model import ScopePhysicsModel

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["EnsembleEncoder", "ensemble_model", "load_ensemble"]


def _feature_kind(encoder: nn.Module) -> Any:
    from ..encoders.geometry import geometry_layout

    cfg = getattr(encoder, "config", None)
    return (getattr(cfg, "composition_features", None), geometry_layout(getattr(cfg, "geometric_features", False)))


class EnsembleEncoder(nn.Module, Encoder):
    """Encoders with the same latents and inputs; ``forward`` returns the mean of their latents.

    :param members: encoders that read the same token ids and features (same tokenizer, same
        ``featurize``) and produce the same latents.
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not members:
            raise ConfigError("an ensemble needs at least one member")
        kinds = {_feature_kind(m) for m in members}
        if len(kinds) > 1:
            raise ConfigError(
                "ensemble members disagree on encoder.composition_features or encoder.geometric_features; "
                "they must read the same inputs"
            )
        self.members = nn.ModuleList(members)
        self.config = members[0].config  # latents: what ScopePhysicsModel checks against the head

    def featurize(
        self, scope: Sequence[str], n_atoms: Sequence[float] | np.ndarray, geometry: np.ndarray | None = None
    ) -> np.ndarray | None:
        first = self.members[0]
        if not isinstance(first, Encoder):
            return None
        if _feature_kind(first)[1]:
            return first.featurize(scope, n_atoms, geometry=geometry)  # type: ignore[call-arg]
        return first.featurize(scope, n_atoms)

    def member_latents(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, features: Tensor | None = None
    ) -> list[dict[str, Tensor]]:
        """Each member's latents ``{name: [B, *shape]}`` (float32)."""
        return [
            {k: v.float() for k, v in m(input_ids=input_ids, attention_mask=attention_mask, features=features).items()}
            for m in self.members
        ]

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None = None, features: Tensor | None = None
    ) -> dict[str, Tensor]:
        outs = self.member_latents(input_ids, attention_mask, features)
        return {k: torch.stack([o[k] for o in outs]).mean(0) for k in outs[0]}


def ensemble_model(
    models: Sequence[ScopePhysicsModel], members: Sequence[str], seeds: Sequence[int]
) -> ScopePhysicsModel:
    """One :class:`ScopePhysicsModel` averaging the encoders of ``models`` (head, tokenizer, meta of the first)."""
    first = models[0]
    meta = {**first.meta, "ensemble": {"members": list(members), "seeds": list(seeds)}}
    return ScopePhysicsModel(EnsembleEncoder([m.encoder for m in models]), first.head, first.tokenizer, meta)


def _refuse_copies(path: Path, members: Sequence[str]) -> None:
    """:class:`CheckpointError` if two members are one directory (a link) or hold the same encoder
    weights (a copy): their spread would be exactly 0, a confidence the ensemble does not have."""
    import os

    from .checks import file_digest
    from .model import resolve_model_dir

    seen: dict[tuple[str, str], str] = {}
    for m in members:
        if not (path / m).exists():
            continue  # reported by name when the member is loaded
        real = resolve_model_dir(path / m)
        keys = [("dir", os.path.realpath(real))] + [("weights", file_digest(f))
                                                     for f in sorted(real.glob("model*.safetensors"))]
        for key in keys:
            if key in seen:
                how = "is the same directory as" if key[0] == "dir" else "holds the same encoder weights as"
                raise CheckpointError(
                    f"ensemble {path}: member {m} {how} member {seen[key]} ({path / 'ensemble.json'}); an ensemble "
                    "of copies has a spread of exactly 0 -- each member must be trained on its own (another seed)"
                )
            seen[key] = m


def load_ensemble(
    path: str | Path, registry: PluginRegistry | None = None, map_location: str | torch.device = "cpu"
) -> ScopePhysicsModel:
    """An ensemble run directory as one :class:`~cloudphys.modeling.model.ScopePhysicsModel`.

    Every member listed in ``ensemble.json`` must be complete and agree with the first on the head
    (name, configuration and tensors) and the tokenizer's vocabulary.
    """
    path = Path(path)
    manifest = read_manifest(path)
    check_format(path / "ensemble.json", manifest["format"])
    missing = [m for m in manifest["members"] if m not in manifest["complete"]]
    if missing:
        raise CheckpointError(
            f"ensemble {path} is incomplete: member(s) {', '.join(missing)} not trained yet "
            "(finish it with `cloudphys train CONFIG --out RUN --resume`)"
        )
    _refuse_copies(path, manifest["members"])
    models = [ScopePhysicsModel.from_pretrained(path / m, registry=registry, map_location=map_location)
              for m in manifest["members"]]
    first = models[0]
    ref_head = (first.head.name, json.dumps(first.head.get_config(), sort_keys=True, default=str))
    vocab = first.tokenizer.get_vocab()
    for name, m in zip(manifest["members"], models):
        if (m.head.name, json.dumps(m.head.get_config(), sort_keys=True, default=str)) != ref_head:
            raise CheckpointError(f"ensemble {path}: member {name} has another head than {manifest['members'][0]}")
        if m.tokenizer.get_vocab() != vocab:
            raise CheckpointError(f"ensemble {path}: member {name} has another tokenizer vocabulary")
        ref_state, state = first.head.state_dict(), m.head.state_dict()
        if ref_state.keys() != state.keys() or not all(torch.equal(ref_state[k], state[k]) for k in state):
            first_name = manifest["members"][0]
            raise CheckpointError(f"ensemble {path}: member {name}'s head tensors differ from {first_name}'s "
                                  "(only encoders are averaged)")
    return ensemble_model(models, manifest["members"], manifest["seeds"]).to(map_location).eval()
