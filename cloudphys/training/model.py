"""Model composition: encoder (latents) + physics head (observables), saved as one directory.

A model directory (what ``save_pretrained`` writes, what ``from_pretrained`` reads) holds

* ``config.json`` + ``model.safetensors`` -- the encoder (a transformers ``PreTrainedModel``;
  ``transformers.AutoModel.from_pretrained(dir)`` loads it once cloudphys is imported);
* ``tokenizer.json`` + ``tokenizer_config.json`` + ... -- the SCOPE tokenizer;
* ``head.json`` (+ ``head.safetensors`` if the head has tensors) -- head name and parameters;
* ``cloudphys.json`` -- the run config and the training-target statistics (for MAE/MAD).

No pickles: weights are safetensors, everything else JSON.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CheckpointError, CloudphysError, ConfigError
from ..physics.contract import PhysicsHead

__all__ = ["ScopePhysicsModel", "build_model", "load_tokenizer"]

HEAD_FILE = "head.json"
HEAD_WEIGHTS = "head.safetensors"
META_FILE = "cloudphys.json"


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars (shard writing/loading) inside the block, then restore."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def load_tokenizer(max_length: int = 256) -> Any:
    """The SCOPE tokenizer (``cloudphys.tokenizer.build_tokenizer``)."""
    from ..tokenizer import build_tokenizer

    return build_tokenizer(model_max_length=max_length)


class ScopePhysicsModel(nn.Module):
    """SCOPE tokens → encoder → latents → physics head → observables.

    :param encoder: maps ``(input_ids, attention_mask, features)`` to ``{latent: [B, *shape]}``.
    :param head: a :class:`~cloudphys.physics.PhysicsHead`.
    :param tokenizer: the tokenizer whose ids the encoder reads.
    :param meta: JSON-serialisable extras saved with the model (run config, target statistics).
    """

    def __init__(self, encoder: nn.Module, head: PhysicsHead, tokenizer: Any, meta: dict[str, Any] | None = None):
        super().__init__()
        self.encoder = encoder
        self.head = head
        self.tokenizer = tokenizer
        self.meta: dict[str, Any] = dict(meta or {})
        names = {s.name for s in head.latents}
        made = {s["name"] if isinstance(s, Mapping) else s.name for s in getattr(encoder.config, "latents", [])}
        if made and made != names:
            raise ConfigError(f"encoder produces latents {sorted(made)} but head {head.name!r} needs {sorted(names)}")

    # -- inputs ---------------------------------------------------------------------------
    def featurize(self, scope: Sequence[str], n_atoms: Sequence[float] | np.ndarray) -> np.ndarray | None:
        fn = getattr(self.encoder, "featurize", None)
        return fn(scope, n_atoms) if callable(fn) else None

    # -- forward --------------------------------------------------------------------------
    def latents(self, input_ids: Tensor, attention_mask: Tensor, features: Tensor | None = None) -> dict[str, Tensor]:
        """``{latent: [B, *shape]}`` in float32."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, features=features)
        return {k: v.float() for k, v in out.items()}

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor,
        temperature: Tensor,
        n_atoms: Tensor,
        features: Tensor | None = None,
        observables: Sequence[str] | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(observables {name: [B, nT]}, latents)``; the head runs in float32 outside autocast."""
        lat = self.latents(input_ids, attention_mask, features)
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            obs = self.head(latents=lat, temperature=temperature.float(), n_atoms=n_atoms.float(), observables=observables)
        return obs, lat

    # -- persistence ----------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write the model directory (not atomic; see :func:`cloudphys.training.checkpoint.save_atomic`)."""
        if not hasattr(self.encoder, "save_pretrained"):
            raise CheckpointError(
                f"cannot save a {type(self.encoder).__name__} as one model directory (an ensemble lives in its "
                "members' run directories: train.ensemble)"
            )
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.encoder.save_pretrained(path, safe_serialization=True)
            self.tokenizer.save_pretrained(path)
        head_info = {"name": self.head.name, "config": _jsonable(self.head.get_config()), "describe": self.head.describe()}
        (path / HEAD_FILE).write_text(json.dumps(head_info, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        if state:
            from safetensors.torch import save_file

            save_file(state, str(path / HEAD_WEIGHTS))
        (path / META_FILE).write_text(json.dumps(_jsonable(self.meta), indent=2))

    @classmethod
    def from_pretrained(cls, path: str | Path, registry: Any = None, map_location: str | torch.device = "cpu") -> "ScopePhysicsModel":
        """Load a model directory written by :meth:`save_pretrained`, a run directory, or an ensemble
        run directory (``train.ensemble``; see :mod:`cloudphys.training.ensemble`)."""
        from .ensemble import is_ensemble_dir, load_ensemble

        if is_ensemble_dir(path):
            return load_ensemble(path, registry=registry, map_location=map_location)
        path = resolve_model_dir(path)
        from transformers import AutoModel, PreTrainedTokenizerFast

        from ..encoders import bert as _bert  # noqa: F401 - registers scope-bert with AutoModel

        from .checkpoint import refuse_pickles

        if registry is None:
            from ..plugins import get_registry

            registry = get_registry()
        refuse_pickles(path)
        try:
            head_info = json.loads((path / HEAD_FILE).read_text())
            meta = json.loads((path / META_FILE).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"model directory {path} is incomplete or corrupt: {exc}") from exc
        if not isinstance(head_info, dict) or not isinstance(head_info.get("name"), str) or not isinstance(meta, dict):
            raise CheckpointError(f"model directory {path} is corrupt: {HEAD_FILE} needs a head 'name', {META_FILE} an object")
        try:
            head = registry.head(head_info["name"])(**head_info.get("config", {}))
            if (path / HEAD_WEIGHTS).is_file():
                from safetensors.torch import load_file

                head.load_state_dict(load_file(str(path / HEAD_WEIGHTS)))
            with quiet_transformers():
                # safetensors only (never a pickled pytorch_model.bin), no code from the directory
                encoder = AutoModel.from_pretrained(
                    str(path), use_safetensors=True, trust_remote_code=False, local_files_only=True
                )
                tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
        except CloudphysError:
            raise
        except Exception as exc:  # noqa: BLE001 - transformers/safetensors raise many types on bad files
            raise CheckpointError(f"cannot load the model from {path} (corrupt or incompatible): {type(exc).__name__}: {exc}") from exc
        model = cls(encoder, head, tokenizer, meta)
        return model.to(map_location).eval()


def resolve_model_dir(path: str | Path) -> Path:
    """``path`` itself if it holds a model, else ``path/model`` (a run directory)."""
    path = Path(path)
    for cand in (path, path / "model"):
        if (cand / HEAD_FILE).is_file() and (cand / "config.json").is_file():
            return cand
    raise CheckpointError(f"no model found in {path} (expected {HEAD_FILE} and config.json there or in {path / 'model'})")


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return obj


def build_model(config: Any, registry: Any = None, tokenizer: Any = None) -> ScopePhysicsModel:
    """Compose encoder + head from a :class:`~cloudphys.config.Config` (or a mapping / path).

    The head is built first; its latent declarations size the encoder's latent layer.
    """
    from ..config import Config, load_config

    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if not isinstance(config, Config):
        config = load_config(config, registry=registry)
    head = registry.head(config.head.name)(**config.head.params)
    params = dict(config.encoder.params)
    if tokenizer is None:
        tokenizer = load_tokenizer(int(params.get("max_length", 256)))
    encoder = registry.encoder(config.encoder.name)(latents=tuple(head.latents), tokenizer=tokenizer, **params)
    return ScopePhysicsModel(encoder, head, tokenizer, {"config": config.to_dict()})
