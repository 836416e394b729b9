"""``fit``: the supervised training loop of ONE model (CPU/GPU, DDP through ``torchrun``).

* AdamW (the latent layer may have its own learning rate), linear warm-up then cosine decay,
  gradient clipping, early stopping on the validation loss (:mod:`cloudphys.training.losses`);
* seeded: shuffling comes from ``(seed, epoch)``, dropout/initialisation from ``torch.manual_seed``
  inside :func:`torch.random.fork_rng` (the caller's global RNG is restored afterwards);
* each epoch appends to ``metrics.jsonl`` / ``metrics.csv``, writes ``last/`` (for ``resume``) and,
  when validation improves, ``model/`` -- both atomically (:mod:`cloudphys.training.checkpoint`);
  the run directory is locked for the whole run, so two processes never write one run;
* ``resume`` refuses a config that differs from the run's in anything that changes training;
* under ``torchrun`` (``WORLD_SIZE`` > 1) the model is wrapped in DDP; each rank takes its share of
  every global batch; rank 0 writes files.

Ensembles (``train.ensemble`` > 1) are trained by :mod:`cloudphys.training.ensemble`, which calls
this ``fit`` once per member; :func:`cloudphys.training.train` picks the one a config asks for.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from ..config import Config, TrainConfig, load_config
from ..data.base import Examples
from ..errors import ConfigError, DataError
from ..modeling.core import predict_encoded
from ..modeling.encoding import Encoded, collate, encode, load_split, reads_geometry_config
from ..modeling.model import ScopePhysicsModel, build_model
from . import checkpoint as ckpt
from . import runtime
from .batching import batch_indices, formula_weights, load_extra, strings_dialect, take
from .ema import WeightAverage, averaged
from .exclusion import drop_excluded, excluded_keys, keep_mask
from .losses import (
    check_loss_weights,
    dos_roughness,
    dos_w1,
    effective_weights,
    loss,
    loss_value,
    metrics_from_predictions,
    per_atom,
    target_stats,
)
from .resume import check_resume_config, prepare_run_dir
from .transfer import init_weights

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["FitResult", "clip_gradients", "fit", "make_optimizer", "param_groups"]


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
    members: list[FitResult] = field(default_factory=list)


@dataclass
class _Data:
    """A run's encoded splits and what the loss needs about them."""

    train: Encoded
    val: Encoded | None
    observables: list[str]
    stats: dict[str, Any]
    units: dict[str, str]
    dialect: str
    #: ``train.exclude``'s counts: excluded crystals (``strings``) and examples removed per split
    excluded: dict[str, int] | None = None
    #: ``train.extra_data``: examples added per entry
    extra: list[dict[str, Any]] = field(default_factory=list)
    #: ``train.formula_weight``: per training example, its weight in the loss (None: all the same)
    weights: np.ndarray | None = None


def param_groups(model: ScopePhysicsModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """AdamW groups: (latent layer or not) x (decayed or not: biases and LayerNorm are not)."""
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


def make_optimizer(model: ScopePhysicsModel, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    """AdamW over :func:`param_groups`, with torch's fused kernel where the device has one (CPU, CUDA).

    The fused step does the same update as the per-tensor loop up to float rounding (about 1e-7
    relative in float32: ``tests/test_training_speed.py``) in one kernel per parameter group instead of
    ~10 small ops per tensor: ~3x cheaper on CPU, fewer kernel launches on GPU (issue 12 §4).
    """
    groups = param_groups(model, cfg)
    if device.type in ("cpu", "cuda"):
        with contextlib.suppress(RuntimeError, ValueError, TypeError):  # a dtype or build without the fused kernel
            return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)


def clip_gradients(model: nn.Module, max_norm: float, device: torch.device) -> None:
    """``clip_grad_norm_`` over the model's parameters; on CPU and CUDA the multi-tensor (foreach)
    kernels, the same norm and scaling as the per-tensor loop (bit for bit on CPU)."""
    foreach = True if device.type in ("cpu", "cuda") else None
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm, foreach=foreach)


def _dataset_dialect(config: Config, registry: PluginRegistry, train_ex: Examples) -> str:
    """The SCOPE dialect of the training strings: what the loader says (``Examples.dialect``), the
    data section's ``dialect``, what the data set declares, else read off the strings themselves --
    never guessed from the data set's name."""
    if getattr(train_ex, "dialect", None):
        return str(train_ex.dialect)
    if config.data is not None:
        if config.data.params.get("dialect"):
            return str(config.data.params["dialect"])
        with contextlib.suppress(Exception):  # a data set given as examples= need not be registered
            declared = getattr(registry.dataset(config.data.name), "dialect", None)
            if declared:
                return str(declared)
    return strings_dialect(train_ex.scope)


def _prepare_data(model: ScopePhysicsModel, config: Config, registry: PluginRegistry,
                  examples: Mapping[str, Examples] | None) -> _Data:
    """Load (or take) the train/val splits, tokenize them once, fit the head to the targets."""
    tc = config.train
    data = dict(examples) if examples is not None else {s: load_split(config, s, registry) for s in ("train", "val")}
    train_ex, val_ex = data["train"], data.get("val")
    primary = np.ones(len(train_ex), dtype=bool)  # the config's own data set (MAD means come from it)
    extra: list[dict[str, Any]] = []
    if tc.extra_data:  # more labelled data sets in the training split (one encoder, one head)
        train_ex, extra = load_extra(tc.extra_data, train_ex, registry,
                                     base_name=config.data.name if config.data is not None else None,
                                     geometry=reads_geometry_config(config))
        primary = np.arange(len(train_ex)) < len(primary)
    excluded = None
    if tc.exclude:  # the leakage rule: crystals of the excluded sets never enter training or validation
        keys = excluded_keys(tc.exclude, registry, "train")
        keep = keep_mask(train_ex.scope, keys)
        train_ex, primary = take(train_ex, np.flatnonzero(keep)), primary[keep]
        excluded = {"strings": len(keys), "train": int((~keep).sum()), "val": 0}
        if val_ex is not None:
            val_ex, gone = drop_excluded(val_ex, keys)
            excluded["val"] = len(gone)
        if not len(train_ex):
            raise DataError(f"train.exclude removes every training example ({excluded['train']} of them)")
    if tc.limit is not None:
        train_ex = take(train_ex, np.arange(min(tc.limit, len(train_ex))))
        primary = primary[: len(train_ex)]
    observables = [o for o in model.head.selected if o in train_ex.targets]
    if not observables:
        raise DataError(
            f"data set targets {sorted(train_ex.targets)} do not include any observable of head "
            f"{model.head.name!r} ({list(model.head.selected)})"
        )
    train = encode(train_ex, model, observables)
    val = encode(val_ex, model, observables) if val_ex is not None and len(val_ex) else None
    stats = target_stats(train, model.head)
    if primary.any() and not primary.all():  # loss scale: all trained on; MAD (evaluate): the own set's mean
        own = take(train_ex, np.flatnonzero(primary))
        own.targets = {k: v for k, v in own.targets.items() if k in observables}
        for k, entry in target_stats(own, model.head)["observables"].items():
            stats["observables"][k].update(mean=entry["mean"], mean_per_atom=entry["mean_per_atom"])
    model.head.fit_to_data({k: per_atom(v, train.n_atoms, model.head.observable(k).extensive)
                            for k, v in train.targets.items()})  # PhysicsHead's default does nothing
    return _Data(train, val, observables, stats, dict(train_ex.units), _dataset_dialect(config, registry, train_ex),
                 excluded, extra, formula_weights(train_ex.scope, tc.formula_weight))


def _restore(out: Path, model: ScopePhysicsModel, optimizer: torch.optim.Optimizer, registry: PluginRegistry,
             rank: int, ema: WeightAverage | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Load ``out/last`` into ``model``, ``optimizer`` (and the weight average); the state and the
    metrics rows up to it."""
    last = out / "last"
    loaded = ScopePhysicsModel.from_pretrained(last, registry=registry)
    model.encoder.load_state_dict(loaded.encoder.state_dict())
    model.head.load_state_dict(loaded.head.state_dict())
    model.meta = loaded.meta
    ckpt.optimizer_from_files(optimizer, last)
    if ema is not None:
        ema.from_files(last)
    state, rng = ckpt.load_training_state(last)
    torch.set_rng_state(rng)
    history = [h for h in ckpt.read_metrics(out) if h["epoch"] <= state["epoch"]]
    if rank == 0:  # rows of epochs after the checkpoint (killed before it was written) are redone
        ckpt.write_metrics(out, history)
    return state, history


def _train_epoch(train_model: nn.Module, model: ScopePhysicsModel, optimizer: torch.optim.Optimizer, d: _Data,
                 tc: TrainConfig, epoch: int, step: int, total_steps: int, device: torch.device, rank: int,
                 world: int, show: bool, steps_per_epoch: int,
                 ema: WeightAverage | None = None) -> tuple[int, dict[str, Any]]:
    """One pass over the training split; returns the new step count and the epoch's row."""
    model.train()
    t0 = time.perf_counter()
    seen, nb = 0, 0
    # the running loss stays on the device (float64: the same sum as adding Python floats): reading
    # it every step (float(value)) would make a GPU wait for each step before queueing the next
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    w1_sum = torch.zeros((), dtype=torch.float64, device=device)
    weights = effective_weights(model.head, tc.loss_weights)  # fixed for the run: once, not per step
    lengths = np.array([len(r) for r in d.train.input_ids]) if tc.group_by_length else None
    it = batch_indices(len(d.train), tc.batch_size, shuffle=True, seed=tc.seed, epoch=epoch, rank=rank, world=world,
                       lengths=lengths)
    pad = int(model.tokenizer.pad_token_id)
    bar = runtime.progress_bar(show, steps_per_epoch, f"epoch {epoch}/{tc.epochs}")
    for idx in it:
        if tc.max_steps and step >= total_steps:
            break
        b = collate(d.train, idx, pad, device)
        factor = runtime.lr_factor(step, total_steps, tc.warmup)
        for g in optimizer.param_groups:
            g["lr"] = g["base_lr"] * factor
        with runtime.autocast(device, tc.precision):
            pred, latents = train_model(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"],
                                        b["features"], d.observables, n_atoms_primitive=b["n_atoms_primitive"])
        ex_w = None if d.weights is None else torch.from_numpy(d.weights[idx]).float().to(device)
        value = loss(pred, b["targets"], b["n_atoms"], d.stats, tc.loss, weights, example_weights=ex_w)
        if tc.dos_smoothness > 0:  # the DOS smoothness prior (a training term only; validation is the loss)
            value = value + tc.dos_smoothness * dos_roughness(model.head, latents, b["n_atoms"])
        if tc.dos_weight > 0 and "dos" in b:  # W1 to the DOS labels, where a material has one (issue 20)
            w1 = dos_w1(model.head, latents, b["n_atoms"], b["dos"], example_weights=ex_w)
            value = value + tc.dos_weight * w1
            w1_sum += w1.detach().double()
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if tc.grad_clip > 0:
            clip_gradients(model, tc.grad_clip, device)
        optimizer.step()
        if ema is not None:
            ema.update()
        step += 1
        nb += 1
        seen += len(idx)
        loss_sum += value.detach().double()
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss_sum) / nb:.4f}")
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    return step, {
        "epoch": epoch,
        "step": step,
        "train_loss": float(loss_sum) / max(nb, 1),
        **({"train_dos_w1_thz": float(w1_sum) / max(nb, 1)} if tc.dos_weight > 0 else {}),
        "lr": optimizer.param_groups[0]["lr"],
        "samples_per_s": seen * world / elapsed if elapsed > 0 else None,
        "time_s": elapsed,
    }


def _validate(model: ScopePhysicsModel, d: _Data, tc: TrainConfig, device: torch.device, row: dict[str, Any]) -> float:
    """Validation loss (the training loss on the val split; the train loss without one); adds val metrics to ``row``."""
    if d.val is None:
        return float(row["train_loss"])
    vpred, _ = predict_encoded(model, d.val, batch_size=tc.eval_batch_size, device=device, precision=tc.precision,
                               observables=d.observables)
    vloss = loss_value(vpred, d.val, d.stats, tc.loss, effective_weights(model.head, tc.loss_weights))
    vm = metrics_from_predictions(d.val, vpred, model.head, d.stats)
    row["val_loss"] = vloss
    row["val_mae"] = vm.get("mae")
    row["val_mae_over_mad"] = vm.get("mae_over_mad")
    return vloss


def _save_epoch(out: Path, model: ScopePhysicsModel, optimizer: torch.optim.Optimizer, state: dict[str, Any],
                row: dict[str, Any], improved: bool, ema: WeightAverage | None = None) -> None:
    """Log the row, then write ``model/`` (if improved; the weight average where there is one) and
    ``last/`` (the trained weights, the optimizer, the average) atomically."""
    ckpt.append_metrics(out, row)
    if improved:
        with averaged(ema):
            ckpt.save_atomic(out / "model", model.save_pretrained)
    rng = torch.get_rng_state()

    def write_last(tmp: Path) -> None:
        model.save_pretrained(tmp)
        ckpt.optimizer_to_files(optimizer, tmp)
        if ema is not None:
            ema.to_files(tmp)
        ckpt.save_training_state(tmp, dict(state), rng)

    ckpt.save_atomic(out / "last", write_last)


def _load_best(model: ScopePhysicsModel, out: Path | None, best_state: dict[str, Any] | None,
               registry: PluginRegistry) -> None:
    """Put the best weights (lowest validation loss) back into ``model``."""
    if out is not None:
        if (out / "model").exists():
            best = ScopePhysicsModel.from_pretrained(out / "model", registry=registry)
            model.encoder.load_state_dict(best.encoder.state_dict())
            model.head.load_state_dict(best.head.state_dict())
            model.meta = best.meta
    elif best_state is not None:
        model.load_state_dict(best_state)
    model.eval()


def _loop(model: ScopePhysicsModel, d: _Data, config: Config, out: Path | None, resume: bool, registry: PluginRegistry,
          device: torch.device, rank: int, world: int,
          callbacks: Sequence[Callable[[dict[str, Any]], None]]) -> FitResult:
    """Optimizer, schedule, epochs, checkpoints: everything after the data are encoded."""
    tc = config.train
    optimizer = make_optimizer(model, tc, device)
    ema = WeightAverage(model, tc.ema) if tc.ema > 0 else None
    steps_per_epoch = sum(1 for _ in batch_indices(len(d.train), tc.batch_size, shuffle=False, rank=rank, world=world))
    total_steps = tc.epochs * steps_per_epoch
    if tc.max_steps:
        total_steps = min(total_steps, tc.max_steps)
    state: dict[str, Any] = {"epoch": 0, "step": 0, "best_val_loss": float("inf"), "best_epoch": 0, "bad_epochs": 0}
    history: list[dict[str, Any]] = []
    if resume and out is not None:
        state, history = _restore(out, model, optimizer, registry, rank, ema)
    elif out is not None and rank == 0:
        config.dump(out / "config.yaml")
        for name in ("metrics.jsonl", "metrics.csv"):
            (out / name).unlink(missing_ok=True)
    runtime.barrier(world)

    train_model: nn.Module = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel as DDP

        train_model = DDP(model, device_ids=[device.index] if device.type == "cuda" else None)
    show = runtime.progress_enabled(tc.progress, rank)
    best_state = None if out is not None else {k: v.detach().clone() for k, v in model.state_dict().items()}
    step = int(state["step"])
    for epoch in range(int(state["epoch"]) + 1, tc.epochs + 1):
        if tc.max_steps and step >= total_steps:
            break
        step, row = _train_epoch(train_model, model, optimizer, d, tc, epoch, step, total_steps, device, rank, world,
                                 show, steps_per_epoch, ema)
        with averaged(ema):  # validation (and the best checkpoint) see the weight average
            vloss = _validate(model, d, tc, device, row)
        improved = vloss < state["best_val_loss"]
        if improved:
            state["best_val_loss"], state["best_epoch"], state["bad_epochs"] = vloss, epoch, 0
        else:
            state["bad_epochs"] += 1
        state["epoch"], state["step"] = epoch, step
        history.append(row)
        if out is not None and rank == 0:
            _save_epoch(out, model, optimizer, state, row, improved, ema)
        elif out is None and improved:
            with averaged(ema):
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        runtime.barrier(world)
        for cb in callbacks:
            cb(dict(row))
        if tc.patience and state["bad_epochs"] >= tc.patience:
            break
    runtime.barrier(world)
    _load_best(model, out, best_state, registry)
    return FitResult(model=model, out_dir=out, best_epoch=int(state["best_epoch"]),
                     best_val_loss=float(state["best_val_loss"]), epochs_run=int(state["epoch"]), history=history)


def fit(
    config: Config | Mapping[str, Any] | str | Path,
    out_dir: str | Path | None = None,
    *,
    overrides: Iterable[str] = (),
    resume: bool = False,
    overwrite: bool = False,
    accept_config_changes: bool = False,
    registry: PluginRegistry | None = None,
    tokenizer: Any = None,
    examples: Mapping[str, Examples] | None = None,
    callbacks: Sequence[Callable[[dict[str, Any]], None]] = (),
) -> FitResult:
    """Train one encoder + head on the config's data; write the run to ``out_dir``.

    :param config: a :class:`Config`, a mapping or a config file (``train.ensemble`` must be 1;
        :func:`cloudphys.training.train` also trains ensembles).
    :param out_dir: run directory (``None``: keep nothing on disk). Locked while the run lasts.
    :param resume: continue from ``out_dir/last`` with the same config (:class:`CheckpointError`
        listing the differences otherwise, unless ``accept_config_changes``).
    :param overwrite: start over in an ``out_dir`` that already holds a run, single or ensemble
        (only what cloudphys wrote there is replaced).
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
    if tc.ensemble > 1:
        raise ConfigError(f"train.ensemble={tc.ensemble}: fit trains one model; use cloudphys.training.train "
                          "(or `cloudphys train`) for an ensemble")
    device = runtime.resolve_device(tc.device)
    out = Path(out_dir) if out_dir is not None else None
    rank0 = runtime.dist_info()[0] == 0
    if out is not None:  # refuse before any work; nothing is written until the data are known good
        prepare_run_dir(out, ensemble=False, resume=resume, overwrite=overwrite, check_only=True)
    with runtime.distributed(device) as (rank, world), runtime.threads(tc.num_threads), \
            runtime.seeded(tc.seed, device):
        if device.type == "cuda" and world > 1:
            torch.cuda.set_device(device)
        model = build_model(config, registry=registry, tokenizer=tokenizer)
        if tc.dos_weight > 0 and not callable(getattr(model.head, "dos_histogram", None)):
            raise ConfigError(f"train.dos_weight={tc.dos_weight:g} needs a head whose phonon density of states is a "
                              f"histogram (dos_histogram, e.g. phonon-dos); head {model.head.name!r} has none "
                              "(set train.dos_weight=0)")
        if tc.dos_smoothness > 0 and not model.head.has_density_of_states:
            raise ConfigError(f"train.dos_smoothness={tc.dos_smoothness:g} needs a head with a phonon density of "
                              f"states; head {model.head.name!r} has none (set train.dos_smoothness=0)")
        d = _prepare_data(model, config, registry, examples)
        check_loss_weights(tc.loss_weights, d.observables)
        model.meta = {**model.meta, "dialect": d.dialect, "target_stats": d.stats, "units": d.units}
        if d.excluded is not None:
            model.meta["excluded"] = d.excluded
        if d.extra:
            model.meta["extra_data"] = d.extra
        if tc.init_from is not None and not resume:
            model.meta["init_from"] = init_weights(model, tc.init_from, registry, d.dialect)
        model.to(device)
        with ckpt.run_lock(out) if out is not None and rank0 else contextlib.nullcontext():
            if out is not None:
                prepare_run_dir(out, ensemble=False, resume=resume, overwrite=overwrite, rank0=rank0)
                if resume:
                    check_resume_config(out, config, accept=accept_config_changes, registry=registry)
            result = _loop(model, d, config, out, resume, registry, device, rank, world, callbacks)
            _calibrate(result.model, d, tc, device, out, rank)
            return result


def _calibrate(model: ScopePhysicsModel, d: _Data, tc: TrainConfig, device: torch.device, out: Path | None,
               rank: int) -> None:
    """After training: a head that calibrates (:meth:`~cloudphys.physics.PhysicsHead.calibrate`, e.g.
    the stability head's Platt scaling) fits on the validation split; the best model is saved again
    with it (and the record in ``cloudphys.json``'s ``calibration``). Other heads: nothing happens."""
    from ..physics.contract import PhysicsHead

    if d.val is None or type(model.head).calibrate is PhysicsHead.calibrate:
        return
    _, lat = predict_encoded(model, d.val, batch_size=tc.eval_batch_size, device=device, precision=tc.precision,
                             observables=d.observables)
    record = model.head.calibrate(lat, d.val.targets)
    if record is None:
        return
    model.meta = {**model.meta, "calibration": record}
    if out is not None and rank == 0:
        ckpt.save_atomic(out / "model", model.save_pretrained)
