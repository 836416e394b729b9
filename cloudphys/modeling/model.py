"""Model composition: encoder (latents) + physics head (observables), saved as one directory.

A model directory (what ``save_pretrained`` writes, what ``from_pretrained`` reads) holds

* ``config.json`` + ``model.safetensors`` -- the encoder (a transformers ``PreTrainedModel``;
  ``transformers.AutoModel.from_pretrained(dir)`` loads it once cloudphys is imported);
* ``tokenizer.json`` + ``tokenizer_config.json`` + ... -- the SCOPE tokenizer;
* ``head.json`` (+ ``head.safetensors`` if the head has tensors) -- head name and parameters;
* ``cloudphys.json`` -- the format version, the cloudphys version that wrote it, the SCOPE dialect
  of the training strings, the tokenizer (SHA-256 of its vocabulary, ``max_length``), the run
  config and the training-target statistics (for MAE/MAD).

No pickles: weights are safetensors, everything else JSON. :meth:`ScopePhysicsModel.from_pretrained`
loads one such directory; :func:`cloudphys.modeling.load_core` also takes ensembles (and
:func:`cloudphys.load_model` wraps either as the user's :class:`~cloudphys.models.api.Model`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor, nn

from .._version import __version__
from ..encoders.base import Encoder
from ..encoders.pretrained import quiet_transformers
from ..errors import CheckpointError, CloudphysError, ConfigError
from ..physics.contract import PhysicsHead
from .format import ENSEMBLE_FILE, FORMAT_VERSION, check_format, refuse_pickles

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = [
    "ScopePhysicsModel",
    "build_model",
    "load_tokenizer",
    "model_dialect",
    "resolve_model_dir",
    "tokenizer_record",
]

HEAD_FILE = "head.json"
HEAD_WEIGHTS = "head.safetensors"
META_FILE = "cloudphys.json"


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
    def featurize(
        self, scope: Sequence[str], n_atoms: Sequence[float] | np.ndarray, geometry: np.ndarray | None = None
    ) -> np.ndarray | None:
        """The encoder's per-item features (:meth:`cloudphys.encoders.base.Encoder.featurize`), or
        ``None`` for an encoder that declares no features (not an :class:`Encoder`). ``geometry``
        (``[N, N_GEOMETRIC_FEATURES]``, :mod:`cloudphys.scope.geometry`) goes to an encoder that reads it only."""
        if not isinstance(self.encoder, Encoder):
            return None
        if self.reads_geometry:
            return self.encoder.featurize(scope, n_atoms, geometry=geometry)  # type: ignore[call-arg]
        return self.encoder.featurize(scope, n_atoms)

    @property
    def reads_geometry(self) -> bool:
        """Whether the encoder reads geometric features (``encoder.geometric_features``): it then needs
        a structure for every item, never a bare SCOPE string."""
        from ..encoders.geometry import reads_geometry

        return reads_geometry(self.encoder)

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
        *,
        n_atoms_primitive: Tensor | None = None,
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(observables {name: [B, nT]}, latents)``; the head runs in float32 outside autocast.

        ``n_atoms_primitive`` (``[B]``, from :func:`~cloudphys.modeling.encoding.collate`): atoms per
        primitive cell, for a head that declares the condition (``None``: the given cells).
        """
        lat = self.latents(input_ids, attention_mask, features)
        extra = {} if n_atoms_primitive is None else {"n_atoms_primitive": n_atoms_primitive.float()}
        with torch.autocast(device_type=input_ids.device.type, enabled=False):
            obs = self.head(latents=lat, temperature=temperature.float(), n_atoms=n_atoms.float(),
                            observables=observables, **extra)
        return obs, lat

    # -- persistence ----------------------------------------------------------------------
    def save_pretrained(self, path: str | Path) -> None:
        """Write the model directory (not atomic: training writes it through its atomic saves)."""
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
        head_info = {"name": self.head.name, "config": _jsonable(self.head.get_config()),
                     "describe": self.head.describe()}
        (path / HEAD_FILE).write_text(json.dumps(head_info, indent=2))
        state = {k: v.detach().cpu().contiguous() for k, v in self.head.state_dict().items()}
        if state:
            from safetensors.torch import save_file

            save_file(state, str(path / HEAD_WEIGHTS))
        (path / META_FILE).write_text(json.dumps(_jsonable(self.saved_meta()), indent=2))

    def saved_meta(self) -> dict[str, Any]:
        """``meta`` plus what every saved model records: format, version, dialect, tokenizer."""
        return {**self.meta, "format": FORMAT_VERSION, "cloudphys_version": __version__,
                "dialect": model_dialect(self), "tokenizer": tokenizer_record(self.tokenizer)}

    @classmethod
    def from_pretrained(
        cls, path: str | Path, registry: PluginRegistry | None = None, map_location: str | torch.device = "cpu"
    ) -> ScopePhysicsModel:
        """Load one model directory written by :meth:`save_pretrained` (or ``RUN_DIR/model``).

        Refuses (:class:`CheckpointError`) a pickle in the directory, a newer format, weights that
        do not match the architecture (missing, unexpected or mis-shaped tensors -- never filled
        with fresh initial values) and a tokenizer that is not the one recorded. An ensemble run
        is loaded by :func:`cloudphys.modeling.load_core`.
        """
        if (Path(path) / ENSEMBLE_FILE).is_file():
            raise CheckpointError(f"{path} is an ensemble run; load it with cloudphys.load_model({str(path)!r})")
        path = resolve_model_dir(path)
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
            raise CheckpointError(
                f"model directory {path} is corrupt: {HEAD_FILE} needs a head 'name', {META_FILE} an object"
            )
        check_format(path, meta.get("format"), meta.get("cloudphys_version"))
        from .checks import check_encoder_config, check_finite, check_head_config, check_tensor_files

        head_params = check_head_config(path, head_info, registry)  # the config's bounds, before building
        check_encoder_config(path, registry)
        try:
            try:
                head = registry.build_head(head_info["name"], **head_params)
            except CloudphysError as exc:  # the head refuses what head.json holds
                raise CheckpointError(f"{path / HEAD_FILE}: {exc}") from None
            if (path / HEAD_WEIGHTS).is_file():
                from safetensors.torch import load_file

                load_exact(head, load_file(str(path / HEAD_WEIGHTS)), path / HEAD_WEIGHTS)
                check_tensor_files(path / HEAD_WEIGHTS, head)
            elif head.state_dict():  # a head with tensors saved without them: never its initial values
                _refuse_mismatch(path / HEAD_WEIGHTS, sorted(head.state_dict()), [], [])
            encoder, tokenizer = _load_encoder(path)
            weights = sorted(path.glob("model*.safetensors"))
            for file in weights:
                check_tensor_files(file, encoder)
            if not weights:
                check_finite(encoder, path)
        except CloudphysError:
            raise
        except Exception as exc:
            raise CheckpointError(
                f"cannot load the model from {path} (corrupt or incompatible): {type(exc).__name__}: {exc}"
            ) from exc
        recorded = meta.get("tokenizer")
        vocab_hash = tokenizer_record(tokenizer)["vocab_sha256"]
        if isinstance(recorded, Mapping) and recorded.get("vocab_sha256") != vocab_hash:
            raise CheckpointError(f"{path}: the tokenizer's vocabulary is not the one the model was saved with "
                                  f"({META_FILE} records another SHA-256); the directory was altered")
        try:
            model = cls(encoder, head, tokenizer, _upgrade_meta(meta))
        except ConfigError as exc:  # the encoder's latents are not the head's
            raise CheckpointError(f"{path / 'config.json'} does not fit {path / HEAD_FILE}: {exc}") from None
        return model.to(map_location).eval()


def load_exact(module: nn.Module, state: Mapping[str, Tensor], where: Path) -> None:
    """``module.load_state_dict(state)`` that names every missing, unexpected or mis-shaped tensor."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k} {tuple(state[k].shape)} (expected {tuple(own[k].shape)})"
                    for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    _refuse_mismatch(where, missing, unexpected, shapes)
    module.load_state_dict(state)


def _refuse_mismatch(where: Path, missing: Sequence[str], unexpected: Sequence[str], shapes: Sequence[str]) -> None:
    parts = []
    for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if names:
            shown = ", ".join(list(names)[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
            parts.append(f"{label}: {shown}")
    if parts:
        raise CheckpointError(f"{where} does not fit the model it declares ({'; '.join(parts)}); "
                              "refusing to fill the gaps with untrained weights")


def _load_encoder(path: Path) -> tuple[nn.Module, Any]:
    """Encoder and tokenizer of a model directory, every weight tensor accounted for."""
    from transformers import AutoModel, PreTrainedTokenizerFast

    from ..encoders import bert as _bert  # noqa: F401 - registers scope-bert with AutoModel

    with quiet_transformers():
        # safetensors only (never a pickled pytorch_model.bin), no code from the directory
        # mismatched sizes are reported (not raised without names) and then refused below, by name
        encoder, info = AutoModel.from_pretrained(
            str(path), use_safetensors=True, trust_remote_code=False, local_files_only=True, output_loading_info=True,
            ignore_mismatched_sizes=True,
        )
        tokenizer = PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    shapes = [f"{m[0]} {tuple(m[1])} (expected {tuple(m[2])})" if isinstance(m, tuple) and len(m) == 3 else str(m)
              for m in info.get("mismatched_keys", [])]
    _refuse_mismatch(path / "model.safetensors", sorted(info.get("missing_keys", [])),
                     sorted(info.get("unexpected_keys", [])), shapes)
    return encoder, tokenizer


def _upgrade_meta(meta: dict[str, Any]) -> dict[str, Any]:
    """``cloudphys.json`` of any readable format as the current one describes it (in memory)."""
    meta = dict(meta)
    meta.setdefault("format", 1)
    return meta


def tokenizer_record(tokenizer: Any) -> dict[str, Any]:
    """What a saved model records about its tokenizer: SHA-256 of the vocabulary, size, max_length."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    digest = hashlib.sha256(json.dumps(vocab, ensure_ascii=True).encode("ascii")).hexdigest()
    return {"vocab_sha256": digest, "vocab_size": len(vocab), "max_length": int(tokenizer.model_max_length)}


def model_dialect(model: Any, registry: PluginRegistry | None = None) -> str:
    """The SCOPE dialect of the strings ``model`` was trained on (what structures are converted to).

    Recorded in the model (format >= 2). A format-1 model recorded none: the data section's
    ``dialect`` if it has one, else the dialect its data set declares (``DatasetSpec.dialect``),
    else -- a data set no longer registered -- the rule cloudphys 0.1 used (a data set named
    ``cloud*`` is cloud), kept only so that those models predict as they always did.
    """
    meta = model.meta
    if meta.get("dialect"):
        return str(meta["dialect"])
    data = (meta.get("config") or {}).get("data") or {}
    if data.get("dialect"):
        return str(data["dialect"])
    if int(meta.get("format", 1)) != 1:
        return "default"
    try:
        if registry is None:
            from ..plugins import get_registry

            registry = get_registry()
        declared = registry.dataset(str(data.get("name"))).dialect
    except Exception:  # not registered (any more): the 0.1 rule below
        declared = None
    if declared:
        return str(declared)
    return "cloud" if str(data.get("name", "")).startswith("cloud") else "default"


def resolve_model_dir(path: str | Path) -> Path:
    """``path`` itself if it holds a model, else ``path/model`` (a run directory)."""
    path = Path(path)
    for cand in (path, path / "model"):
        if (cand / HEAD_FILE).is_file() and (cand / "config.json").is_file():
            return cand
    raise CheckpointError(
        f"no model found in {path} (expected {HEAD_FILE} and config.json there or in {path / 'model'})"
    )


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


def build_model(config: Any, registry: PluginRegistry | None = None, tokenizer: Any = None) -> ScopePhysicsModel:
    """Compose encoder + head from a :class:`~cloudphys.config.Config` (or a mapping / path).

    The head is built first; its latent declarations size the encoder's latent layer.
    """
    from ..config import Config, load_config

    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if not isinstance(config, Config):
        config = load_config(config, registry=registry)
    head = registry.build_head(config.head.name, **config.head.params)
    params = dict(config.encoder.params)
    if tokenizer is None:
        tokenizer = load_tokenizer(int(params.get("max_length", 256)))
    encoder = registry.encoder(config.encoder.name)(latents=tuple(head.latents), tokenizer=tokenizer, **params)
    positions = getattr(getattr(encoder, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and int(getattr(tokenizer, "model_max_length", 0) or 0) > positions:
        # the encoder has positions for this many tokens only: the model's tokenizer (a copy; the
        # caller's is left as it is) refuses longer strings by name instead of a shape error later
        tokenizer = copy.deepcopy(tokenizer)
        tokenizer.model_max_length = positions
    return ScopePhysicsModel(encoder, head, tokenizer, {"format": FORMAT_VERSION, "config": config.to_dict()})
