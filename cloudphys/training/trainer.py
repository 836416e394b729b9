"""Fit, evaluate: the supervised training loop (CPU/GPU, DDP through ``torchrun``).

* device ``auto`` → CUDA if available, else CPU; bf16 autocast on CUDA (precision ``auto``); the
  physics head always runs in float32;
* AdamW, linear warm-up then cosine decay, gradient clipping, early stopping on validation loss;
* seeded: shuffling comes from ``(seed, epoch)``, dropout/initialisation from ``torch.manual_seed``
  inside :func:`torch.random.fork_rng` (the caller's global RNG is restored afterwards);
* each epoch appends to ``metrics.jsonl`` / ``metrics.csv``, writes ``last/`` (for ``resume``) and,
  when validation improves, ``model/`` — both atomically;
* under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DDP (gloo on CPU, NCCL on CUDA);
  each rank takes its share of every global batch; rank 0 writes files.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..config import Config, TrainConfig, load_config
from ..data.base import Examples
from ..errors import CheckpointError, ConfigError, DataError
from .checkpoint import (
    load_training_state,
    optimizer_from_files,
    optimizer_to_files,
    recover_atomic,
    save_atomic,
    save_training_state,
)
from .data import Encoded, batch_indices, collate, encode
from .model import ScopePhysicsModel, build_model

__all__ = ["fit", "evaluate", "evaluate_model", "predict_encoded", "FitResult", "resolve_device", "target_stats", "load_split"]


@dataclass
class FitResult:
    """What :func:`fit` returns."""

    model: ScopePhysicsModel
    out_dir: Path | None
    best_epoch: int
    best_val_loss: float
    epochs_run: int
    history: list[dict[str, Any]] = field(default_factory=list)
    #: for an ensemble (``train.ensemble`` > 1): each member's result; ``best_epoch``/``epochs_run``
    #: are then the members' largest, ``best_val_loss`` the ensemble's validation loss.
    members: list["FitResult"] = field(default_factory=list)


# -- environment ----------------------------------------------------------------------------
def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda:LOCAL_RANK`` if CUDA is available, else ``cpu``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device={name!r} but CUDA is not available; use 'auto' or 'cpu'")
    return dev


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    use_bf16 = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    if not use_bf16:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def _dist_info() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    return rank, world


@contextlib.contextmanager
def _distributed(device: torch.device) -> Iterable[tuple[int, int]]:
    rank, world = _dist_info()
    created = False
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            created = True
        rank, world = dist.get_rank(), dist.get_world_size()
    try:
        yield rank, world
    finally:
        if created:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def _barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


@contextlib.contextmanager
def _threads(n: int | None) -> Iterable[None]:
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


# -- data -----------------------------------------------------------------------------------
def load_split(config: Config, split: str, registry: Any = None) -> Examples:
    """Load ``split`` of the config's data set."""
    if config.data is None:
        raise ConfigError("config has no 'data' section")
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    spec = registry.dataset(config.data.name)
    if split not in spec.splits:
        raise ConfigError(f"data set {config.data.name!r} has no split {split!r}; available: {', '.join(spec.splits)}")
    out = spec.load(split=split, **config.data.params)
    if not isinstance(out, Examples):
        raise DataError(f"data set {config.data.name!r} is unlabelled; it cannot be used for supervised training")
    return out


def _per_atom(values: np.ndarray, n_atoms: np.ndarray, extensive: bool) -> np.ndarray:
    return values / n_atoms[:, None] if extensive else values


def target_stats(enc: Encoded, head: Any) -> dict[str, Any]:
    """Training-target statistics: per-observable per-atom spread (loss scale) and means per T."""
    stats: dict[str, Any] = {"temperatures": enc.temperatures.tolist(), "observables": {}}
    for name, y in enc.targets.items():
        ext = head.observable(name).extensive
        pa = _per_atom(y, enc.n_atoms, ext)
        finite = np.isfinite(pa)
        if not finite.any():
            raise DataError(f"training split has no label for observable {name!r}")
        sd = float(np.nanstd(pa))
        stats["observables"][name] = {
            "extensive": bool(ext),
            "scale_per_atom": sd if sd > 0 else 1.0,
            "mean": [float(v) if np.isfinite(v) else None for v in np.nanmean(np.where(np.isfinite(y), y, np.nan), axis=0)],
            "mean_per_atom": [float(v) if np.isfinite(v) else None for v in np.nanmean(pa, axis=0)],
        }
    return stats


# -- loss -----------------------------------------------------------------------------------
def _loss(pred: dict[str, Tensor], batch: dict[str, Any], stats: Mapping[str, Any], kind: str) -> Tensor:
    total = None
    n = batch["n_atoms"].unsqueeze(-1)
    for name, target in batch["targets"].items():
        info = stats["observables"][name]
        p = pred[name]
        err = p - target
        if info["extensive"]:
            err = err / n
        err = err / info["scale_per_atom"]
        mask = torch.isfinite(target)
        err = torch.where(mask, err, torch.zeros_like(err))
        if kind == "l1":
            per = err.abs()
        elif kind == "mse":
            per = err * err
        else:
            per = torch.nn.functional.huber_loss(err, torch.zeros_like(err), reduction="none", delta=1.0)
        term = per.sum() / mask.sum().clamp_min(1)
        total = term if total is None else total + term
    if total is None:
        raise DataError("batch has no target the head can predict")
    return total / len(batch["targets"])


def _lr_factor(step: int, total: int, warmup_frac: float) -> float:
    warm = int(round(warmup_frac * total))
    if warm > 0 and step < warm:
        return (step + 1) / warm
    progress = (step - warm) / max(1, total - warm)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _param_groups(model: ScopePhysicsModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    latent_ids = {id(p) for p in getattr(model.encoder, "latent_layer", nn.Module()).parameters()}
    groups: dict[tuple[bool, bool], list[nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        no_decay = p.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((id(p) in latent_ids, no_decay), []).append(p)
    out = []
    for (is_latent, no_decay), params in sorted(groups.items()):
        lr = cfg.latent_lr if (is_latent and cfg.latent_lr is not None) else cfg.lr
        out.append({"params": params, "lr": lr, "base_lr": lr, "weight_decay": 0.0 if no_decay else cfg.weight_decay})
    return out


# -- evaluation -----------------------------------------------------------------------------
@torch.no_grad()
def predict_encoded(
    model: ScopePhysicsModel,
    enc: Encoded,
    *,
    batch_size: int = 256,
    device: torch.device | str = "cpu",
    precision: str = "auto",
    observables: Sequence[str] | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Observables ``{name: [N, nT]}`` and latents ``{name: [N, *shape]}`` for every item of ``enc``.

    Batches are formed from length-sorted items (less padding); the output is in input order.
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    order = np.argsort([len(r) for r in enc.input_ids], kind="stable")
    preds: dict[str, list[np.ndarray]] = {}
    lats: dict[str, list[np.ndarray]] = {}
    pad = int(model.tokenizer.pad_token_id)
    try:
        for start in range(0, len(enc), batch_size):
            idx = order[start : start + batch_size]
            b = collate(enc, idx, pad, device)
            with _autocast(device, precision):
                out, lat = model(
                    b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"], observables
                )
            for k, v in out.items():
                preds.setdefault(k, []).append(v.float().cpu().numpy())
            for k, v in lat.items():
                lats.setdefault(k, []).append(v.float().cpu().numpy())
    finally:
        model.train(was_training)
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    cat = lambda parts: np.concatenate(parts)[inv] if parts else np.zeros((0,))  # noqa: E731
    return {k: cat(v).astype(np.float64) for k, v in preds.items()}, {k: cat(v).astype(np.float64) for k, v in lats.items()}


def _mae(err: np.ndarray) -> float | None:
    v = np.abs(err[np.isfinite(err)])
    return float(v.mean()) if v.size else None


def metrics_from_predictions(
    enc: Encoded, preds: Mapping[str, np.ndarray], head: Any, stats: Mapping[str, Any] | None, units: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """MAE (data units and per atom), MAD against the training mean, MAE/MAD, per temperature."""
    out: dict[str, Any] = {"n": len(enc), "temperatures": enc.temperatures.tolist(), "observables": {}}
    ratios = []
    for name, y in enc.targets.items():
        if name not in preds:
            continue
        p = preds[name]
        ext = head.observable(name).extensive
        err = p - y
        err_pa = _per_atom(err, enc.n_atoms, ext)
        entry: dict[str, Any] = {
            "unit": (units or {}).get(name) or head.observable(name).unit,
            "per_atom_unit": f"{head.observable(name).unit} per mol-atom" if ext else head.observable(name).unit,
            "mae": _mae(err),
            "mae_per_atom": _mae(err_pa),
            "rmse": float(np.sqrt(np.nanmean(err**2))) if np.isfinite(err).any() else None,
            "count": int(np.isfinite(err).sum()),
        }
        info = (stats or {}).get("observables", {}).get(name)
        mad_den = None
        if info is not None and len(info["mean"]) == y.shape[1] and all(m is not None for m in info["mean"]):
            mean_train = np.asarray(info["mean"], dtype=np.float64)
            mad = _mae(y - mean_train[None, :])
            if mad:
                entry["mad"] = mad
                entry["mae_over_mad"] = entry["mae"] / mad
                ratios.append(entry["mae_over_mad"])
                mad_den = mean_train
        if y.shape[1] > 1:
            per_t = {}
            for j, T in enumerate(enc.temperatures):
                row = {"mae": _mae(err[:, j]), "mae_per_atom": _mae(err_pa[:, j])}
                if mad_den is not None:
                    mad_j = _mae(y[:, j] - mad_den[j])
                    row["mae_over_mad"] = (row["mae"] / mad_j) if (mad_j and row["mae"] is not None) else None
                per_t[f"{T:g}"] = row
            entry["per_temperature"] = per_t
        out["observables"][name] = entry
    if len(out["observables"]) == 1:
        only = next(iter(out["observables"].values()))
        out["mae"] = only["mae"]
        out["mae_per_atom"] = only["mae_per_atom"]
    if ratios:
        out["mae_over_mad"] = float(np.mean(ratios))
    return out


def evaluate_model(
    model: ScopePhysicsModel,
    examples: Examples,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """Metrics of ``model`` on labelled ``examples`` (see :func:`metrics_from_predictions`)."""
    dev = resolve_device(device) if isinstance(device, str) else device
    model.to(dev)
    observables = [o for o in model.head.selected if o in examples.targets]
    if not observables:
        raise DataError(
            f"the data has targets {sorted(examples.targets)} but the head predicts {list(model.head.selected)}"
        )
    enc = encode(examples, model, observables)
    preds, _ = predict_encoded(model, enc, batch_size=batch_size, device=dev, precision=precision, observables=observables)
    return metrics_from_predictions(enc, preds, model.head, model.meta.get("target_stats"), examples.units)


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    *,
    overrides: Iterable[str] = (),
    registry: Any = None,
    device: str = "auto",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Metrics of a trained run (``RUN_DIR`` or a model directory) on ``split`` of its data set.

    ``overrides`` (``data.key=value``) change the data section, e.g. the temperature range.
    """
    model = ScopePhysicsModel.from_pretrained(run_dir, registry=registry)
    cfg_dict = model.meta.get("config")
    if not cfg_dict:
        raise CheckpointError(f"{run_dir}: the model carries no run config; cannot tell which data to use")
    config = load_config(cfg_dict, overrides=overrides, registry=registry)
    examples = load_split(config, split, registry)
    if not len(examples):
        name = config.data.name if config.data is not None else None
        raise DataError(f"split {split!r} of data set {name!r} is empty: nothing to evaluate")
    metrics = evaluate_model(
        model, examples, batch_size=batch_size or config.train.eval_batch_size, device=device,
        precision=config.train.precision,
    )
    return {"split": split, "data": config.data.to_dict() if config.data else None, "head": model.head.name, **metrics}


# -- training -------------------------------------------------------------------------------
def _progress_enabled(setting: str, rank: int) -> bool:
    s = str(setting).lower()
    if rank != 0 or s == "false":
        return False
    return s == "true" or sys.stderr.isatty()


def _read_metrics(out_dir: Path) -> list[dict[str, Any]]:
    """Rows of ``metrics.jsonl``; a torn last line (killed while appending) is dropped."""
    path = out_dir / "metrics.jsonl"
    if not path.exists():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for k, line in enumerate(lines):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or not isinstance(row.get("epoch"), int):
                raise ValueError("not a metrics row")
        except ValueError as exc:
            if k == len(lines) - 1:
                break
            raise CheckpointError(f"{path} line {k + 1} is corrupt: {exc}") from exc
        rows.append(row)
    return rows


def _write_metrics(out_dir: Path, rows: Sequence[dict[str, Any]]) -> None:
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


def _append_metrics(out_dir: Path, row: dict[str, Any]) -> None:
    with open(out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(row) + "\n")
    path = out_dir / "metrics.csv"
    new = not path.exists()
    with open(path, "a", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            w.writeheader()
        w.writerow(row)


def fit(
    config: Config | Mapping[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    *,
    overrides: Iterable[str] = (),
    resume: bool = False,
    overwrite: bool = False,
    registry: Any = None,
    tokenizer: Any = None,
    examples: Mapping[str, Examples] | None = None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
) -> FitResult:
    """Train encoder + head on the config's data; write the run to ``out_dir``.

    :param config: a :class:`Config`, a mapping or a config file.
    :param out_dir: run directory (``None``: keep nothing on disk).
    :param resume: continue from ``out_dir/last`` (same config) instead of starting over.
    :param overwrite: start over in an ``out_dir`` that already holds a run (its checkpoints are replaced).
    :param examples: ``{"train": Examples, "val": Examples}`` to use instead of the data section.
    :param callbacks: called with each epoch's metrics row (after it is logged and saved).
    :returns: :class:`FitResult` whose model holds the best weights (lowest validation loss).
    """
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if not isinstance(config, Config):
        config = load_config(config, overrides=overrides, registry=registry)
    tc = config.train
    out = Path(out_dir) if out_dir is not None else None
    if tc.ensemble > 1:
        from .ensemble import fit_ensemble

        return fit_ensemble(config, out, resume=resume, overwrite=overwrite, registry=registry, tokenizer=tokenizer,
                            examples=examples, callbacks=callbacks)
    device = resolve_device(tc.device)
    if out is not None and not resume and not overwrite and (out / "last").exists():
        raise CheckpointError(
            f"run directory {out} already holds a run; pass resume=True (--resume), overwrite=True (--overwrite) "
            "or use a new directory"
        )
    if resume and out is not None:
        for name in ("last", "model"):  # a kill inside save_atomic leaves the previous checkpoint aside
            recover_atomic(out / name)
    if resume and (out is None or not (out / "last").exists()):
        raise CheckpointError(f"nothing to resume in {out}: no 'last' checkpoint")

    with _distributed(device) as (rank, world), _threads(tc.num_threads), torch.random.fork_rng(
        devices=[device] if device.type == "cuda" else []
    ):
        if device.type == "cuda" and world > 1:
            torch.cuda.set_device(device)
        torch.manual_seed(tc.seed)
        model = build_model(config, registry=registry, tokenizer=tokenizer)
        data = dict(examples) if examples is not None else {s: load_split(config, s, registry) for s in ("train", "val")}
        train_ex, val_ex = data["train"], data.get("val")
        if tc.limit is not None:
            keep = np.arange(min(tc.limit, len(train_ex)))
            train_ex = _take(train_ex, keep)
        observables = [o for o in model.head.selected if o in train_ex.targets]
        if not observables:
            raise DataError(
                f"data set targets {sorted(train_ex.targets)} do not include any observable of head "
                f"{model.head.name!r} ({list(model.head.selected)})"
            )
        train = encode(train_ex, model, observables)
        val = encode(val_ex, model, observables) if val_ex is not None and len(val_ex) else None
        stats = target_stats(train, model.head)
        fit_head = getattr(model.head, "fit_to_data", None)
        if callable(fit_head):
            fit_head({k: _per_atom(v, train.n_atoms, model.head.observable(k).extensive) for k, v in train.targets.items()})
        model.meta = {"config": config.to_dict(), "target_stats": stats, "units": dict(train_ex.units)}
        model.to(device)

        groups = _param_groups(model, tc)
        optimizer = torch.optim.AdamW(groups, lr=tc.lr, weight_decay=tc.weight_decay)
        steps_per_epoch = sum(1 for _ in batch_indices(len(train), tc.batch_size, shuffle=False, rank=rank, world=world))
        total_steps = tc.epochs * steps_per_epoch
        if tc.max_steps:
            total_steps = min(total_steps, tc.max_steps)
        state = {"epoch": 0, "step": 0, "best_val_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0}
        history: list[dict[str, Any]] = []
        if resume:
            assert out is not None
            last = out / "last"
            loaded = ScopePhysicsModel.from_pretrained(last, registry=registry)
            model.encoder.load_state_dict(loaded.encoder.state_dict())
            model.head.load_state_dict(loaded.head.state_dict())
            model.meta = loaded.meta
            optimizer_from_files(optimizer, last)
            state, rng = load_training_state(last)
            torch.set_rng_state(rng)
            history = [h for h in _read_metrics(out) if h["epoch"] <= state["epoch"]]
            if rank == 0:  # rows of epochs after the checkpoint (killed before it was written) are redone
                _write_metrics(out, history)
        elif out is not None and rank == 0:
            out.mkdir(parents=True, exist_ok=True)
            config.dump(out / "config.yaml")
            for name in ("metrics.jsonl", "metrics.csv"):
                (out / name).unlink(missing_ok=True)
        _barrier(world)

        train_model: nn.Module = model
        if world > 1:
            from torch.nn.parallel import DistributedDataParallel as DDP

            train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)

        pad = int(model.tokenizer.pad_token_id)
        train_lengths = np.array([len(r) for r in train.input_ids])
        show = _progress_enabled(tc.progress, rank)
        best_state = None if out is not None else {k: v.detach().clone() for k, v in model.state_dict().items()}
        step = int(state["step"])
        stop = False
        for epoch in range(int(state["epoch"]) + 1, tc.epochs + 1):
            if stop or (tc.max_steps and step >= total_steps):
                break
            model.train()
            t0 = time.perf_counter()
            seen, loss_sum, nb = 0, 0.0, 0
            it = batch_indices(len(train), tc.batch_size, shuffle=True, seed=tc.seed, epoch=epoch, rank=rank, world=world,
                               lengths=train_lengths if tc.group_by_length else None)
            bar = None
            if show:
                from tqdm.auto import tqdm

                bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch}/{tc.epochs}", leave=False)
            for idx in it:
                if tc.max_steps and step >= total_steps:
                    break
                b = collate(train, idx, pad, device)
                factor = _lr_factor(step, total_steps, tc.warmup)
                for g in optimizer.param_groups:
                    g["lr"] = g["base_lr"] * factor
                with _autocast(device, tc.precision):
                    pred, _ = train_model(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"], observables)
                loss = _loss(pred, b, stats, tc.loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if tc.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
                optimizer.step()
                step += 1
                nb += 1
                seen += len(idx)
                loss_sum += float(loss.detach())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss_sum / nb:.4f}")
            if bar is not None:
                bar.close()
            elapsed = time.perf_counter() - t0
            row: dict[str, Any] = {
                "epoch": epoch,
                "step": step,
                "train_loss": loss_sum / max(nb, 1),
                "lr": optimizer.param_groups[0]["lr"],
                "samples_per_s": seen * world / elapsed if elapsed > 0 else None,
                "time_s": elapsed,
            }
            if val is not None:
                vpred, _ = predict_encoded(model, val, batch_size=tc.eval_batch_size, device=device, precision=tc.precision, observables=observables)
                vloss = _numpy_loss(vpred, val, stats, tc.loss)
                vm = metrics_from_predictions(val, vpred, model.head, stats)
                row["val_loss"] = vloss
                row["val_mae"] = vm.get("mae")
                row["val_mae_over_mad"] = vm.get("mae_over_mad")
            else:
                vloss = row["train_loss"]
            improved = vloss < state["best_val_loss"]
            if improved:
                state["best_val_loss"], state["best_epoch"], state["bad_epochs"] = vloss, epoch, 0
            else:
                state["bad_epochs"] += 1
            state["epoch"], state["step"] = epoch, step
            history.append(row)
            if tc.patience and state["bad_epochs"] >= tc.patience:
                stop = True
            if out is not None and rank == 0:
                _append_metrics(out, row)
                if improved:
                    save_atomic(out / "model", model.save_pretrained)
                rng = torch.get_rng_state()

                def write_last(tmp: Path) -> None:
                    model.save_pretrained(tmp)
                    optimizer_to_files(optimizer, tmp)
                    save_training_state(tmp, dict(state), rng)

                save_atomic(out / "last", write_last)
            elif out is None and improved:
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            _barrier(world)
            for cb in callbacks:
                cb(dict(row))
        # Hand back the best weights.
        if out is not None:
            _barrier(world)
            if (out / "model").exists():
                best = ScopePhysicsModel.from_pretrained(out / "model", registry=registry)
                model.encoder.load_state_dict(best.encoder.state_dict())
                model.head.load_state_dict(best.head.state_dict())
                model.meta = best.meta
        elif best_state is not None:
            model.load_state_dict(best_state)
        model.eval()
        return FitResult(
            model=model,
            out_dir=out,
            best_epoch=int(state["best_epoch"]),
            best_val_loss=float(state["best_val_loss"]),
            epochs_run=int(state["epoch"]),
            history=history,
        )


def _numpy_loss(preds: Mapping[str, np.ndarray], enc: Encoded, stats: Mapping[str, Any], kind: str) -> float:
    terms = []
    for name, y in enc.targets.items():
        info = stats["observables"][name]
        err = preds[name] - y
        if info["extensive"]:
            err = err / enc.n_atoms[:, None]
        err = err[np.isfinite(err)] / info["scale_per_atom"]
        if kind == "l1":
            per = np.abs(err)
        elif kind == "mse":
            per = err**2
        else:
            a = np.abs(err)
            per = np.where(a <= 1, 0.5 * err**2, a - 0.5)
        terms.append(float(per.mean()) if per.size else 0.0)
    return float(np.mean(terms))


def _take(ex: Examples, idx: np.ndarray) -> Examples:
    return Examples(
        ids=[ex.ids[i] for i in idx],
        scope=[ex.scope[i] for i in idx],
        n_atoms=np.asarray(ex.n_atoms)[idx],
        temperatures=ex.temperatures,
        targets={k: v[idx] for k, v in ex.targets.items()},
        units=dict(ex.units),
    )
