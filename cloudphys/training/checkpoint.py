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

__all__ = [
    "save_atomic",
    "recover_atomic",
    "refuse_pickles",
    "optimizer_to_files",
    "optimizer_from_files",
    "save_training_state",
    "load_training_state",
]

#: Suffixes of pickle-based files (torch.save, joblib, pickle): never loaded, a directory holding one is refused.
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".joblib")


def refuse_pickles(path: str | Path) -> None:
    """Raise :class:`CheckpointError` if directory ``path`` holds a pickle-based file.

    cloudphys writes only safetensors and JSON; a pickle in a checkpoint was put there by someone
    else, and unpickling runs arbitrary code, so the whole directory is refused.
    """
    path = Path(path)
    if not path.is_dir():
        return
    found = sorted(p.name for p in path.iterdir() if p.suffix.lower() in PICKLE_SUFFIXES)
    if found:
        raise CheckpointError(
            f"{path} contains pickle-based file(s) {', '.join(found)}; cloudphys never unpickles (unpickling can "
            "run arbitrary code) and refuses the directory -- weights must be safetensors"
        )


def _safe_read(what: str, path: Path, read: Callable[[], Any]) -> Any:
    from safetensors import SafetensorError

    try:
        return read()
    except (OSError, ValueError, SafetensorError) as exc:  # JSONDecodeError is a ValueError
        raise CheckpointError(f"{what} in {path} is missing or corrupt: {type(exc).__name__}: {exc}") from exc


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


def recover_atomic(path: str | Path) -> bool:
    """Undo what a kill inside :func:`save_atomic` can leave, before resuming.

    A kill between moving the old directory aside and moving the new one in leaves no ``path``
    but a complete ``.NAME.old-*``: it is moved back (the newer ``.NAME.tmp-*`` may be incomplete and
    is discarded). Leftover ``.NAME.tmp-*`` / ``.NAME.old-*`` directories are removed.
    :returns: whether ``path`` was restored from an ``.old`` directory.
    """
    path = Path(path)
    restored = False
    olds = sorted(path.parent.glob(f".{path.name}.old-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    if not path.exists() and olds:
        try:
            os.replace(olds.pop(0), path)
            restored = True
        except OSError:  # another process (DDP rank) restored it first
            pass
    for stale in olds + list(path.parent.glob(f".{path.name}.tmp-*")):
        shutil.rmtree(stale, ignore_errors=True)
    return restored


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

    tensors = _safe_read("optimizer state", path, lambda: load_file(str(path / "optimizer.safetensors")))
    meta = _safe_read("optimizer state", path, lambda: json.loads((path / "optimizer.json").read_text()))
    try:
        state: dict[int, dict[str, Any]] = {}
        for key, value in tensors.items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        for key, value in meta["scalars"].items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = value
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise CheckpointError(f"optimizer state in {path} does not fit this model/optimizer: {type(exc).__name__}: {exc}") from exc


def save_training_state(path: Path, state: dict[str, Any], rng: torch.Tensor) -> None:
    """``trainer_state.json`` (epoch, step, best...) and ``rng.safetensors`` (torch CPU RNG)."""
    from safetensors.torch import save_file

    (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
    save_file({"cpu": rng.contiguous()}, str(path / "rng.safetensors"))


def load_training_state(path: Path) -> tuple[dict[str, Any], torch.Tensor]:
    from safetensors.torch import load_file

    state = _safe_read("training state", path, lambda: json.loads((path / "trainer_state.json").read_text()))
    rngs = _safe_read("training state", path, lambda: load_file(str(path / "rng.safetensors")))
    keys = ("epoch", "step", "best_val_loss", "best_epoch", "bad_epochs")
    if not isinstance(state, dict) or any(not isinstance(state.get(k), (int, float)) for k in keys) or "cpu" not in rngs:
        raise CheckpointError(f"training state in {path} is corrupt: trainer_state.json needs numbers {', '.join(keys)} "
                              "and rng.safetensors a 'cpu' tensor")
    return state, rngs["cpu"]
