"""What may happen to a run directory before training starts: refusals, clean-up, resume checks.

* a directory that already holds a run (single model or ensemble) is refused unless ``resume`` or
  ``overwrite``; a pretraining run's directory is always refused; a single-model run into an
  ensemble directory (or the reverse) is refused unless ``overwrite``, which then removes the other
  kind's files (only files cloudphys writes there: ``last/``, ``model/``, ``metrics.*``,
  ``ensemble.json``, the listed ``member-K/``);
* ``resume`` first undoes what a kill inside an atomic save can leave (:func:`recover_atomic`);
* ``resume`` with a config that differs from the run's in anything that changes training (head,
  learning rate, data, seed, ...) is refused with the list of differences, unless accepted.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from ..errors import CheckpointError
from .checkpoint import ENSEMBLE_FILE, is_ensemble_dir, read_manifest, recover_atomic

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["RESUME_IGNORED", "SINGLE_RUN_FILES", "check_resume_config", "config_differences", "prepare_run_dir"]

#: Config keys a resumed run may change: they do not change what is trained.
RESUME_IGNORED = frozenset({"train.progress", "train.num_threads", "train.device", "train.eval_batch_size",
                            "train.parallel_members"})

#: What a single-model run writes into its directory (besides config.yaml and .lock).
SINGLE_RUN_FILES = ("last", "model", "metrics.jsonl", "metrics.csv")


def _is_single_run(out: Path) -> bool:
    return (out / "last").exists() or (out / "model").exists()


def _remove(paths: list[Path]) -> None:
    for p in paths:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        elif p.exists() or p.is_symlink():
            p.unlink()


def _clean_atomic_leftovers(out: Path) -> None:
    for name in ("last", "model"):
        recover_atomic(out / name)


def prepare_run_dir(out: Path, *, ensemble: bool, resume: bool, overwrite: bool, rank0: bool = True,
                    check_only: bool = False) -> None:
    """Check (and on rank 0 tidy) run directory ``out`` for a single-model (``ensemble=False``) or ensemble run.

    ``check_only``: only the refusals, touching nothing (before any work: a run that fails on its
    data leaves no directory behind); the full call happens under the run lock.
    """
    if (out / "pretrain.json").is_file() or ((out / "model" / "config.json").is_file()
                                             and not (out / "model" / "head.json").is_file()):
        raise CheckpointError(f"{out} holds a pretraining run (cloudphys pretrain), not a training run; "
                              "train into another directory (--overwrite never replaces another command's run)")
    kind, other = ("an ensemble", "a single-model run") if ensemble else ("a single-model run", "an ensemble")
    holds_other = _is_single_run(out) if ensemble else is_ensemble_dir(out)
    holds_same = is_ensemble_dir(out) if ensemble else _is_single_run(out)
    if holds_other and (resume or not overwrite):
        what = "resume it as" if resume else "train"
        raise CheckpointError(
            f"run directory {out} holds {other}, but the config asks to {what} {kind} (train.ensemble); "
            "use a new directory, or --overwrite to replace it"
        )
    if holds_same and not (resume or overwrite):
        raise CheckpointError(
            f"run directory {out} already holds {kind}; pass resume=True (--resume), overwrite=True (--overwrite) "
            "or use a new directory"
        )
    if check_only:
        return
    _clean_atomic_leftovers(out)  # every rank: a DDP rank may look for 'last' before rank 0 restored it
    if resume:
        if ensemble and not is_ensemble_dir(out):
            raise CheckpointError(f"nothing to resume in {out}: no {ENSEMBLE_FILE}")
        if not ensemble and not (out / "last").exists():
            raise CheckpointError(f"nothing to resume in {out}: no 'last' checkpoint")
        return
    if overwrite and rank0:
        doomed = [out / n for n in SINGLE_RUN_FILES]
        if is_ensemble_dir(out):
            doomed.append(out / ENSEMBLE_FILE)
            if not ensemble:  # an ensemble's members are replaced one by one by their own fit
                doomed += [out / m for m in read_manifest(out)["members"]]
        _remove(doomed)


def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, Mapping):
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def config_differences(saved: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: saved -> new`` for every training-relevant key (not :data:`RESUME_IGNORED`) that differs."""
    a, b = _flatten(saved), _flatten(new)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in RESUME_IGNORED:
            continue
        va, vb = a.get(key, "<unset>"), b.get(key, "<unset>")
        if va != vb and not (isinstance(va, (int, float)) and isinstance(vb, (int, float)) and float(va) == float(vb)):
            diffs.append(f"{key}: {va!r} -> {vb!r}")
    return diffs


def _saved_config(out: Path, registry: PluginRegistry | None = None) -> dict[str, Any] | None:
    path = out / "config.yaml"
    if not path.is_file():
        return None
    try:
        from ..config import load_config

        return load_config(path, registry=registry).to_dict()
    except Exception:  # an older schema: compare what the file says
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        return raw if isinstance(raw, dict) else None


def check_resume_config(out: Path, config: Any, *, accept: bool = False,
                        registry: PluginRegistry | None = None) -> list[str]:
    """Refuse to resume the run in ``out`` with ``config`` if they differ in a training-relevant key.

    :returns: the differences (accepted ones when ``accept``).
    """
    saved = _saved_config(out, registry)
    if saved is None:
        return []
    diffs = config_differences(saved, config.to_dict())
    if diffs and not accept:
        shown = "\n  ".join(diffs[:20]) + (f"\n  ... and {len(diffs) - 20} more" if len(diffs) > 20 else "")
        raise CheckpointError(
            f"cannot resume {out}: the config differs from the run's ({out / 'config.yaml'}) in\n  {shown}\n"
            "resume with the run's config, start over with --overwrite, or pass --accept-config-changes "
            "to continue with the new values"
        )
    return diffs
