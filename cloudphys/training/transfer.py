"""``train.init_from``: start a run from the weights of a model trained before (transfer learning).

Typical use (issue 12 §3): train the encoder and the Debye head on phonondb-thermo's Cv, then
fine-tune the same model on CLOUD's Cv with ``train.init_from: RUN``. The model built from this
run's config must have the same architecture as the one in ``RUN`` (encoder sizes, head and its
latents, tokenizer); every tensor is copied by name and a mismatch is a
:class:`~cloudphys.errors.CheckpointError` naming it. The SCOPE dialect the model was trained on must
be the dialect of this run's data (tokens of the other dialect would mean something else).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import CheckpointError
from ..modeling.model import (
    HEAD_WEIGHTS,
    ScopePhysicsModel,
    load_exact,
    model_dialect,
    resolve_model_dir,
    tokenizer_record,
)
from . import checkpoint as ckpt

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["init_weights", "member_source"]


def member_source(path: str | Path, index: int) -> Path:
    """The run ``train.init_from`` names for ensemble member ``index``: ``path`` itself for a single
    run, its member ``index`` modulo the ensemble's size for an ensemble run."""
    path = Path(path).expanduser()
    if (path / ckpt.ENSEMBLE_FILE).is_file():
        members = ckpt.read_manifest(path)["members"]
        return path / members[index % len(members)]
    return path


def init_weights(model: ScopePhysicsModel, path: str | Path, registry: PluginRegistry, dialect: str) -> dict[str, Any]:
    """Copy the encoder and head weights of the model in ``path`` into ``model``; what was loaded."""
    path = Path(path).expanduser()
    if not path.exists():
        raise CheckpointError(f"train.init_from: {path} does not exist")
    if (path / ckpt.ENSEMBLE_FILE).is_file():
        path = member_source(path, 0)
    source = ScopePhysicsModel.from_pretrained(resolve_model_dir(path), registry=registry)
    if source.head.name != model.head.name:
        raise CheckpointError(f"train.init_from: {path} has head {source.head.name!r}, this run {model.head.name!r}")
    if tokenizer_record(source.tokenizer)["vocab_sha256"] != tokenizer_record(model.tokenizer)["vocab_sha256"]:
        raise CheckpointError(f"train.init_from: {path} was trained with another tokenizer vocabulary")
    trained_on = model_dialect(source, registry)
    if trained_on != dialect:
        raise CheckpointError(
            f"train.init_from: {path} was trained on {trained_on}-dialect SCOPE strings, this run's data are "
            f"{dialect}; give the data set dialect={trained_on} (or train the source on {dialect} strings)"
        )
    load_exact(model.encoder, source.encoder.state_dict(), path / "model.safetensors")
    load_exact(model.head, source.head.state_dict(), path / HEAD_WEIGHTS)
    return {"path": str(path), "config": (source.meta.get("config") or {}).get("data")}
