"""Run directories on disk: atomic checkpoints, the metrics log, the run lock.

The format number and the ensemble manifest (what loading needs too) are
:mod:`cloudphys.modeling.format`'s, re-exported here.

A run directory (``cloudphys train``; ``cloudphys pretrain`` writes the same layout)::

    RUN_DIR/.lock             held (fcntl.flock) by the one process writing the run; holds its pid
    RUN_DIR/config.yaml       the resolved config (overrides applied)
    RUN_DIR/model/            best model so far (ScopePhysicsModel.save_pretrained)
    RUN_DIR/last/             latest epoch: model + optimizer.safetensors + trainer_state.json
    RUN_DIR/metrics.jsonl     one JSON object per epoch (and metrics.csv)
    RUN_DIR/ensemble.json     only for an ensemble run: its members (``member-K/``, each a run directory)

Every directory is written to a temporary sibling and renamed into place, so an interrupted write
leaves the previous checkpoint intact (:func:`recover_atomic` puts it back on the next start).
No pickles anywhere: tensors are safetensors, the rest JSON.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..modeling.format import (  # re-exported: the run directory's files in one place
    ENSEMBLE_FILE,
    FORMAT_VERSION,
    PICKLE_SUFFIXES,
    check_format,
    is_ensemble_dir,
    read_manifest,
    refuse_pickles,
    write_manifest,
)

__all__ = [
    "ENSEMBLE_FILE",
    "FORMAT_VERSION",
    "PICKLE_SUFFIXES",
    "append_metrics",
    "check_format",
    "is_ensemble_dir",
    "load_training_state",
    "optimizer_from_files",
    "optimizer_to_files",
    "read_manifest",
    "read_metrics",
    "recover_atomic",
    "refuse_pickles",
    "run_lock",
    "save_atomic",
    "save_training_state",
    "write_manifest",
    "write_metrics",
]

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
        raise CheckpointError(
            f"optimizer state in {path} does not fit this model/optimizer: {type(exc).__name__}: {exc}"
        ) from exc


def save_training_state(path: Path, state: dict[str, Any], rng: torch.Tensor) -> None:
    """``trainer_state.json`` (epoch, step, best...) and ``rng.safetensors`` (torch CPU RNG)."""
    from safetensors.torch import save_file

    (path / "trainer_state.json").write_text(json.dumps(state, indent=2))
    save_file({"cpu": rng.contiguous()}, str(path / "rng.safetensors"))


def load_training_state(path: Path) -> tuple[dict[str, Any], torch.Tensor]:
    """``(state, cpu_rng)`` written by :func:`save_training_state` (CheckpointError if corrupt)."""
    from safetensors.torch import load_file

    state = _safe_read("training state", path, lambda: json.loads((path / "trainer_state.json").read_text()))
    rngs = _safe_read("training state", path, lambda: load_file(str(path / "rng.safetensors")))
    keys = ("epoch", "step", "best_val_loss", "best_epoch", "bad_epochs")
    numbers = isinstance(state, dict) and all(isinstance(state.get(k), (int, float)) for k in keys)
    if not numbers or "cpu" not in rngs:
        raise CheckpointError(f"training state in {path} is corrupt: trainer_state.json needs numbers "
                              f"{', '.join(keys)} and rng.safetensors a 'cpu' tensor")
    return state, rngs["cpu"]


# -- metrics log ----------------------------------------------------------------------------
def read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl``; a torn last line (killed while appending) is dropped."""
    path = Path(out_dir) / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for k, line in enumerate(lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                raise ValueError("not a metrics row")  # caught below with the JSON errors
        except ValueError as exc:
            if k == len(lines) - 1:
                break
            raise CheckpointError(f"{path} line {k + 1} is corrupt: {exc}") from exc
        rows.append(row)
    return rows


def write_metrics(out_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Rewrite ``metrics.jsonl`` / ``metrics.csv`` with ``rows`` (each file replaced atomically)."""
    for name in ("metrics.jsonl", "metrics.csv"):
        tmp = out_dir / f".{name}.tmp"
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            if name.endswith(".jsonl"):
                fh.writelines(json.dumps(r) + "\n" for r in rows)
            elif rows:
                w = csv.DictWriter(fh, fieldnames=list(rows[0]))
                w.writeheader()
                w.writerows(rows)
        os.replace(tmp, out_dir / name)


def append_metrics(out_dir: Path, row: dict[str, Any]) -> None:
    """Append one epoch's row to ``metrics.jsonl`` and ``metrics.csv``."""
    with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    path = out_dir / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


# -- one writer per run directory -----------------------------------------------------------
#: The lock file of a run directory.
LOCK_FILE = ".lock"


@contextlib.contextmanager
def run_lock(out_dir: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of run directory ``out_dir`` (created if missing) inside the block.

    A second process asking for the same directory gets a :class:`CheckpointError` at once, naming
    the pid that holds it. The lock (``fcntl.flock``) is released by the operating system when the
    holder dies, so a killed run never leaves a stale lock. On systems without ``fcntl`` the block
    runs unlocked.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_FILE
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield path
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise CheckpointError(
                f"run directory {out} is in use by another cloudphys process (pid {holder}, lock {path}); "
                "wait for it to finish or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield path
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race with a waiting process)
