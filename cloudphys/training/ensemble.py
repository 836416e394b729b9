"""Seed ensembles: K encoders trained with seeds ``seed, seed+1, ...``; their latents are averaged.

An ensemble predicts one set of latents per material (the members' mean, which stays inside every
declared bound: the bounds are intervals) and evaluates the head once on it, so its curves are as
thermodynamically consistent as a single model's and ``predict`` still reports one ``theta_D``.

On disk an ensemble run is a directory holding ``ensemble.json`` and one ordinary run directory per
member (``member-0/``, ``member-1/``, ...; each with its own checkpoints, metrics and ``--resume``).
:meth:`ScopePhysicsModel.from_pretrained` loads such a directory as one model, so ``cloudphys
evaluate`` and ``cloudphys predict`` take it like any run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..errors import CheckpointError, ConfigError

__all__ = ["ENSEMBLE_FILE", "EnsembleEncoder", "is_ensemble_dir", "load_ensemble", "fit_ensemble"]

#: The file that marks a directory as an ensemble run.
ENSEMBLE_FILE = "ensemble.json"


def is_ensemble_dir(path: str | Path) -> bool:
    """Whether ``path`` is an ensemble run directory."""
    return (Path(path) / ENSEMBLE_FILE).is_file()


def _feature_kind(encoder: nn.Module) -> Any:
    return getattr(getattr(encoder, "config", None), "composition_features", None)


class EnsembleEncoder(nn.Module):
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
            raise ConfigError("ensemble members disagree on encoder.composition_features; they must read the same inputs")
        self.members = nn.ModuleList(members)
        self.config = members[0].config  # latents: what ScopePhysicsModel checks against the head

    def featurize(self, scope: Sequence[str], n_atoms: Sequence[float] | np.ndarray) -> np.ndarray | None:
        fn = getattr(self.members[0], "featurize", None)
        return fn(scope, n_atoms) if callable(fn) else None

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


def _ensemble_model(models: Sequence[Any], members: Sequence[str], seeds: Sequence[int]) -> Any:
    """One :class:`ScopePhysicsModel` averaging the encoders of ``models`` (head, tokenizer, meta of the first)."""
    from .model import ScopePhysicsModel

    first = models[0]
    meta = {**first.meta, "ensemble": {"members": list(members), "seeds": list(seeds)}}
    return ScopePhysicsModel(EnsembleEncoder([m.encoder for m in models]), first.head, first.tokenizer, meta)


def write_manifest(out: Path, members: Sequence[str], seeds: Sequence[int], complete: Sequence[str]) -> None:
    """Write ``ensemble.json`` atomically (temporary file + rename)."""
    tmp = out / (ENSEMBLE_FILE + ".tmp")
    tmp.write_text(json.dumps({"members": list(members), "seeds": list(seeds), "complete": list(complete)}, indent=2))
    tmp.replace(out / ENSEMBLE_FILE)


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The parsed ``ensemble.json`` of an ensemble run (validated)."""
    path = Path(path)
    try:
        data = json.loads((path / ENSEMBLE_FILE).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path / ENSEMBLE_FILE} is unreadable or corrupt: {exc}") from exc
    members = data.get("members") if isinstance(data, dict) else None
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise CheckpointError(f"{path / ENSEMBLE_FILE} must list its members' directories under 'members'")
    for m in members:
        if Path(m).is_absolute() or ".." in Path(m).parts:
            raise CheckpointError(f"{path / ENSEMBLE_FILE}: member {m!r} must be a directory inside {path}")
    complete = data.get("complete", members)
    if not isinstance(complete, list):
        raise CheckpointError(f"{path / ENSEMBLE_FILE}: 'complete' must be a list")
    return {"members": members, "seeds": data.get("seeds", []), "complete": complete}


def load_ensemble(path: str | Path, registry: Any = None, map_location: str | torch.device = "cpu") -> Any:
    """An ensemble run directory as one :class:`~cloudphys.training.model.ScopePhysicsModel`.

    Every member listed in ``ensemble.json`` must be complete and agree with the first on the head
    (name and configuration) and the tokenizer's vocabulary.
    """
    from .model import ScopePhysicsModel

    path = Path(path)
    manifest = read_manifest(path)
    missing = [m for m in manifest["members"] if m not in manifest["complete"]]
    if missing:
        raise CheckpointError(
            f"ensemble {path} is incomplete: member(s) {', '.join(missing)} not trained yet "
            "(finish it with `cloudphys train CONFIG --out RUN --resume`)"
        )
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
            raise CheckpointError(f"ensemble {path}: member {name}'s head tensors differ from {manifest['members'][0]}'s "
                                  "(only encoders are averaged)")
    return _ensemble_model(models, manifest["members"], manifest["seeds"]).to(map_location).eval()


def fit_ensemble(
    config: Any,
    out: Path | None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    registry: Any = None,
    tokenizer: Any = None,
    examples: Mapping[str, Any] | None = None,
    callbacks: Sequence[Any] = (),
) -> Any:
    """Train ``config.train.ensemble`` members one after the other (see :func:`~cloudphys.training.fit`).

    Member ``k`` is the config with ``train.seed = seed + k``; its run directory is
    ``out/member-k``. ``ensemble.json`` records which members are complete, so ``resume`` skips
    those, resumes the interrupted one from its last checkpoint and trains the rest. The data are
    loaded once. Returns a :class:`~cloudphys.training.FitResult` whose model averages the members'
    latents; its ``best_val_loss`` is the ensemble's validation loss, ``members`` the members' results.
    """
    from ..config import load_config
    from .checkpoint import load_training_state
    from .data import encode
    from .model import ScopePhysicsModel
    from .trainer import (
        FitResult,
        _distributed,
        _numpy_loss,
        _read_metrics,
        fit,
        load_split,
        predict_encoded,
        resolve_device,
    )

    tc = config.train
    names = [f"member-{i}" for i in range(tc.ensemble)]
    seeds = [int(tc.seed) + i for i in range(tc.ensemble)]
    complete: list[str] = []
    if out is not None:
        if (out / "last").exists() and not overwrite:
            raise CheckpointError(f"run directory {out} holds a single-model run; use a new directory or --overwrite")
        if is_ensemble_dir(out) and not (resume or overwrite):
            raise CheckpointError(
                f"run directory {out} already holds an ensemble; pass resume=True (--resume), overwrite=True "
                "(--overwrite) or use a new directory"
            )
        if resume:
            if not is_ensemble_dir(out):
                raise CheckpointError(f"nothing to resume in {out}: no {ENSEMBLE_FILE}")
            manifest = read_manifest(out)
            if manifest["members"] != names or list(manifest["seeds"]) != seeds:
                raise CheckpointError(
                    f"{out / ENSEMBLE_FILE} lists members {manifest['members']} with seeds {manifest['seeds']}, "
                    f"but the config asks for {names} with seeds {seeds}"
                )
            complete = [m for m in names if m in manifest["complete"]]
    elif resume:
        raise CheckpointError("resume needs a run directory")

    data = dict(examples) if examples is not None else {s: load_split(config, s, registry) for s in ("train", "val")}
    device = resolve_device(tc.device)
    results = []
    with _distributed(device) as (rank, _world):
        if out is not None and rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            config.dump(out / "config.yaml")
            write_manifest(out, names, seeds, complete)
        for i, (name, seed) in enumerate(zip(names, seeds)):
            member_cfg = load_config(config.to_dict(), overrides=[f"train.seed={seed}", "train.ensemble=1"],
                                     registry=registry)
            mdir = out / name if out is not None else None
            if mdir is not None and name in complete:
                state, _ = load_training_state(mdir / "last")
                model = ScopePhysicsModel.from_pretrained(mdir, registry=registry)
                results.append(FitResult(model=model, out_dir=mdir, best_epoch=int(state["best_epoch"]),
                                         best_val_loss=float(state["best_val_loss"]), epochs_run=int(state["epoch"]),
                                         history=_read_metrics(mdir)))
                continue
            again = resume and mdir is not None and (mdir / "last").exists()
            member_callbacks = [lambda row, _cb=cb, _i=i: _cb({**row, "member": _i}) for cb in callbacks]
            results.append(fit(member_cfg, mdir, resume=again, overwrite=not again, registry=registry,
                               tokenizer=tokenizer, examples=data, callbacks=member_callbacks))
            complete.append(name)
            if out is not None and rank == 0:
                write_manifest(out, names, seeds, complete)

    model = _ensemble_model([r.model for r in results], names, seeds).eval()
    val_loss = float(np.mean([r.best_val_loss for r in results]))
    val_ex = data.get("val")
    if val_ex is not None and len(val_ex):
        observables = [o for o in model.head.selected if o in val_ex.targets]
        stats = model.meta["target_stats"]  # the members' (same training split)
        val = encode(val_ex, model, observables)
        model.to(device)
        vpred, _ = predict_encoded(model, val, batch_size=tc.eval_batch_size, device=device, precision=tc.precision,
                                   observables=observables)
        val_loss = _numpy_loss(vpred, val, stats, tc.loss)
    history = [{**row, "member": i} for i, r in enumerate(results) for row in r.history]
    return FitResult(model=model, out_dir=out, best_epoch=max(r.best_epoch for r in results), best_val_loss=val_loss,
                     epochs_run=max(r.epochs_run for r in results), history=history, members=results)
