"""Checkpoint directories written atomically; optimizer and RNG state as safetensors + JSON.

A run directory::

    RUN_DIR/config.yaml       the resolved config (overrides applied)
    RUN_DIR/model/            best model so far (ScopePhysicsModel.save_pretrained)
    RUN_DIR/last/             latest epoch: model + optimizer.safetensors + trainer_state.json
    RUN_DIR/metrics.jsonl     one JSON object per epoch (and metrics.csv)

Every directory is written to a temporary sibling and renamed into place, so an interrupted write
leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import CheckpointError

__all__ = ["save_atomic", "optimizer_to_files", "optimizer_from_files", "save_training_state", "load_training_state"]


def save_atomic(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_dir)`` then move ``tmp_dir`` to ``path`` (replacing it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tmp.mkdir()
        write(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def optimizer_to_files(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Write ``optimizer.safetensors`` (tensors) and ``optimizer.json`` (groups, scalars)."""
    from safetensors.torch import save_file

    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for pid, st in sd["state"].items():
        for key, value in st.items():
            if torch.is_tensor(value):
                tensors[f"{pid}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{pid}.{key}"] = value
    save_file(tensors, str(path / "optimizer.safetensors"))
    (path / "optimizer.json").write_text(json.dumps({"param_groups": sd["param_groups"], "scalars": scalars}))


def optimizer_from_files(optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Restore an optimizer written by :func:`optimizer_to_files`."""
    from safetensors.torch import load_file

    try:
        tensors = load_file(str(path / "optimizer.safetensors"))
        meta = json.loads((path / "optimizer.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"optimizer state in {path} is missing or corrupt: {exc}") from exc
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for key, value in meta["scalars"].items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save_training_state(path: Path, state: dict[str, Any], rng: torch.Tensor) -> None:
    """``trainer_state.json`` (epoch, step, best...) and ``rng.safetensors`` (torch CPU RNG)."""
    from safetensors.torch import save_file

    (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
    save_file({"cpu": rng.contiguous()}, str(path / "rng.safetensors"))


def load_training_state(path: Path) -> tuple[dict[str, Any], torch.Tensor]:
    from safetensors.torch import load_file

    try:
        state = json.loads((path / "trainer_state.json").read_text())
        rng = load_file(str(path / "rng.safetensors"))["cpu"]
    except (OSError, json.JSONDecodeError, KeyError) as exc:
        raise CheckpointError(f"training state in {path} is missing or corrupt: {exc}") from exc
    return state, rng
