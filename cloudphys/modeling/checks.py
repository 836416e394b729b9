"""Validation of a model directory at load time, whatever its origin (a run, a package, a download).

A model directory is data from outside: before anything is built from it, and again once the
tensors are in memory, it is held to the same rules as a config and to the architecture it declares.
Every failure is a :class:`~cloudphys.errors.CheckpointError` naming the file and the reason.

* :func:`check_encoder_config` -- ``config.json`` names an encoder class cloudphys registered with
  ``transformers.AutoModel`` (one that implements :class:`~cloudphys.encoders.base.Encoder`; a plain
  BERT ``config.json`` would load and fail at predict), and its sizes lie within the bounds of that
  encoder's config parameters (``hidden_size: 10**7`` would exhaust the memory while building);
* :func:`check_head_config` -- ``head.json``'s parameters through the head's config schema and
  bounds (``order: 20000`` would be a MemoryError at the first prediction);
* :func:`check_tensor_files` -- every tensor in ``model.safetensors`` / ``head.safetensors`` has the
  kind of dtype the architecture has (an ``I32`` tensor read into a float parameter converts its
  bit patterns' integer values silently) and only finite values;
* :func:`file_digest` -- members of an ensemble must be different models (see
  :func:`cloudphys.modeling.ensemble.load_ensemble`).
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

__all__ = [
    "ENCODER_CONFIG_ALIASES",
    "MAX_HEADER_BYTES",
    "check_encoder_config",
    "check_finite",
    "check_head_config",
    "check_tensor_files",
    "file_digest",
    "read_safetensors_header",
]

#: The largest safetensors header read (JSON of names, dtypes, shapes; a real one is a few KiB).
MAX_HEADER_BYTES = 16 * 1024 * 1024

#: ``config.json`` keys of a transformers config -> the encoder factory's parameter with the bound.
ENCODER_CONFIG_ALIASES = {
    "hidden_size": "hidden_size",
    "num_hidden_layers": "num_layers",
    "num_attention_heads": "num_heads",
    "intermediate_size": "intermediate_size",
    "max_position_embeddings": "max_length",
    "latent_mlp": "latent_mlp",
    "hidden_dropout_prob": "dropout",
    "attention_probs_dropout_prob": "dropout",
}
#: Bounds of ``config.json`` keys no factory parameter carries.
_VOCAB_MAX = 1_000_000

_FLOAT_DTYPES = {"F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2"}


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise CheckpointError(f"{path} is missing or corrupt: {type(exc).__name__}: {exc}") from None


def check_encoder_config(path: Path, registry: Any) -> None:
    """Check ``path/config.json`` before the encoder is built (see the module docstring)."""
    file = path / "config.json"
    cfg = _load_json(file)
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{file} must be a JSON object, got a {type(cfg).__name__}")
    model_type = cfg.get("model_type")
    cls = _encoder_class(model_type)
    if cls is None:
        raise CheckpointError(
            f"{file}: model_type {model_type!r} is not a cloudphys encoder (one registered with transformers' "
            "AutoModel that maps SCOPE tokens to latents, e.g. 'scope-bert'); a plain transformers model cannot "
            "predict -- train or convert it with cloudphys"
        )
    from ..config.coerce import coerce

    schema = _encoder_schema(model_type, registry)
    for key, value in cfg.items():
        param = schema.get(ENCODER_CONFIG_ALIASES.get(key, key)) if schema else None
        if key == "vocab_size":
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _VOCAB_MAX:
                raise CheckpointError(f"{file}: vocab_size must be an integer from 1 to {_VOCAB_MAX:_}, got {value!r}")
        elif param is not None and key in ENCODER_CONFIG_ALIASES and value is not None:
            try:
                coerce(f"{key}", value, param.hint)
            except ConfigError as exc:
                raise CheckpointError(f"{file}: {exc} (the bound of encoder parameter {param.name!r})") from None
    for key in ("num_hidden_layers", "hidden_size"):  # needed to build the encoder at all
        if key in cfg and (isinstance(cfg[key], bool) or not isinstance(cfg[key], int)):
            raise CheckpointError(f"{file}: {key} must be an integer, got {cfg[key]!r}")


def _encoder_class(model_type: Any) -> type | None:
    """The ``AutoModel`` class of ``model_type`` if it is a cloudphys :class:`Encoder`, else ``None``."""
    if not isinstance(model_type, str):
        return None
    from transformers import AutoModel
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from ..encoders import bert as _bert  # noqa: F401 - registers scope-bert with AutoModel
    from ..encoders.base import Encoder

    try:
        config_cls = CONFIG_MAPPING[model_type]
        cls = AutoModel._model_mapping[config_cls]
    except (KeyError, ValueError):
        return None
    return cls if isinstance(cls, type) and issubclass(cls, Encoder) else None


def _encoder_schema(model_type: str, registry: Any) -> dict[str, Any] | None:
    from ..config.plugin_params import param_schema

    factory = getattr(registry, "encoders", {}).get(model_type)
    if factory is None:
        return None
    try:
        return param_schema("encoder", factory)
    except Exception:  # a factory whose signature cannot be read: no bounds to apply
        return None


def check_head_config(path: Path, head_info: Mapping[str, Any], registry: Any) -> dict[str, Any]:
    """``head.json``'s parameters, checked by the head's config schema and bounds (as a config's are).

    :returns: the coerced parameters to build the head with.
    """
    file = path / "head.json"
    config = head_info.get("config", {})
    if not isinstance(config, Mapping):
        raise CheckpointError(f"{file}: 'config' must be a JSON object of the head's parameters, got {config!r:.80}")
    from ..config.validate import plugin_section

    name = head_info.get("name")
    try:
        section = plugin_section("head", {**dict(config), "name": name}, registry.heads)
        params = dict(section.params)
        if name == "multi":  # a head list: every entry as a single head's parameters are
            from ..config.heads import checked_heads

            params["heads"] = checked_heads(params.get("heads", ()), registry.heads)
    except ConfigError as exc:
        raise CheckpointError(f"{file}: {exc}") from None
    return params


def read_safetensors_header(file: Path) -> dict[str, Any]:
    """The header of a safetensors file (``{name: {"dtype", "shape", "data_offsets"}}``, metadata dropped)."""
    try:
        with open(file, "rb") as fh:
            head = fh.read(8)
            if len(head) != 8:
                raise ValueError("the file is shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > MAX_HEADER_BYTES:
                raise ValueError(f"the header claims {n:,} bytes, more than {MAX_HEADER_BYTES:,}")
            raw = fh.read(n)
        header = json.loads(raw)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{file} is missing or corrupt: {type(exc).__name__}: {exc}") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file} is corrupt: its header is not a JSON object")
    return {k: v for k, v in header.items() if k != "__metadata__" and isinstance(v, dict)}


def check_tensor_files(file: Path, module: Any) -> None:
    """Every tensor in safetensors ``file`` against ``module``'s state: a float tensor where the module
    holds floats (F16, BF16, F32: packages store half precision), an integer one only where it holds
    integers, and every floating value finite. Names are matched by suffix (transformers may add or
    drop the base model's prefix); tensors ``module`` does not have are refused elsewhere."""
    header = read_safetensors_header(file)
    state = module.state_dict()
    kinds = {k: v.is_floating_point() for k, v in state.items()}

    def expected_float(name: str) -> bool | None:
        if name in kinds:
            return kinds[name]
        for k, is_float in kinds.items():
            if k.endswith("." + name) or name.endswith("." + k):
                return is_float
        return None

    for name, entry in sorted(header.items()):
        dtype = str(entry.get("dtype"))
        want = expected_float(name)
        if want is None:
            continue
        if want and dtype not in _FLOAT_DTYPES:
            raise CheckpointError(f"{file}: tensor {name!r} is {dtype} where the architecture has a floating-point "
                                  "tensor; the weights would be read as other numbers -- the file is corrupt or "
                                  "not a cloudphys model")
        if not want and dtype in _FLOAT_DTYPES:
            raise CheckpointError(f"{file}: tensor {name!r} is {dtype} where the architecture has an integer tensor")
    check_finite(module, file)


def check_finite(module: Any, where: Path) -> None:
    """Raise :class:`CheckpointError` if a floating tensor of ``module`` holds NaN or ±inf."""
    import torch

    bad = []
    for name, t in module.state_dict().items():
        if t.is_floating_point() and not bool(torch.isfinite(t).all()):
            bad.append(f"{name} ({int((~torch.isfinite(t)).sum())} of {t.numel()} values)")
    if bad:
        shown = ", ".join(bad[:5]) + (f", ... ({len(bad)} tensors)" if len(bad) > 5 else "")
        raise CheckpointError(f"{where}: NaN or infinite weights in {shown}; the model cannot predict -- the file "
                              "is corrupt or the run diverged")


def file_digest(file: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of ``file``'s bytes (hex)."""
    h = hashlib.sha256()
    with open(file, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()
