"""Masked-language-model pretraining of the ``scope-bert`` trunk on unlabelled SCOPE strings.

``cloudphys pretrain CONFIG --out DIR`` reads the ``encoder`` section (sizes) and the ``pretrain``
section (sources, exclusions, schedule; or ``corpus``: a token corpus streamed from disk, with DDP
and mid-epoch resume, :mod:`cloudphys.training.stream`), trains a transformers ``BertForMaskedLM`` with
``DataCollatorForLanguageModeling`` and writes the run directory DIR::

    DIR/.lock            held while the run lasts (a second process on DIR is refused)
    DIR/config.yaml      the resolved config
    DIR/last/            latest epoch: model + tokenizer + optimizer + RNG state (``--resume``)
    DIR/metrics.jsonl    one row per epoch (and metrics.csv)
    DIR/model/           the pretrained encoder: config.json + model.safetensors + tokenizer
    DIR/pretrain.json    corpus counts, history, seconds (written last: the run is complete)

A fine-tuning config starts from it with ``encoder: {name: scope-bert, pretrained: DIR}``
(:func:`cloudphys.encoders.pretrained.load_pretrained_bert`; the 0.1 layout with the encoder files
in DIR itself still loads). Every directory is saved atomically; an existing DIR is refused unless
``resume`` or ``overwrite`` (which removes only what pretraining writes; a training run is never
overwritten), and a resumed run ends with the weights of an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..config import Config, PretrainConfig, load_config
from ..errors import CheckpointError, ConfigError, DataError
from ..modeling.encoding import tokenize
from ..modeling.model import load_tokenizer
from . import checkpoint as ckpt
from . import runtime
from .exclusion import entry_strings, excluded_keys, keep_mask
from .mlm import mlm_model, mlm_step, restore_last, save_encoder, save_epoch, write_json_atomic
from .resume import check_resume_config

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["PRETRAIN_FILES", "collect_strings", "pretrain"]

#: What ``pretrain`` writes into DIR (``--overwrite`` replaces these and nothing else: ``last/`` and
#: the metrics at the start, ``model/`` and ``pretrain.json`` only once the new ones are complete).
PRETRAIN_FILES = ("model", "last", "metrics.jsonl", "metrics.csv", "pretrain.json", "config.yaml")
#: The encoder files cloudphys 0.1 wrote into DIR itself (removed once a new ``model/`` replaces them).
LEGACY_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json", "pretrain.json")


def collect_strings(cfg: PretrainConfig, registry: PluginRegistry) -> tuple[list[str], dict[str, Any]]:
    """The corpus: every source's strings minus every excluded crystal (order kept, duplicates kept).

    A string is excluded when its canonical SCOPE string equals that of an ``exclude`` string
    (:mod:`cloudphys.training.exclusion`), whichever dialect or setting either is written in.
    """
    for kind in ("sources", "exclude"):  # every entry against the registry before any is read
        for i, entry in enumerate(getattr(cfg, kind)):
            PretrainConfig.check_source(f"pretrain.{kind}[{i}]", entry, registry)
    excluded = excluded_keys(cfg.exclude, registry, "pretrain")
    corpus: list[str] = []
    counts = []
    for i, entry in enumerate(cfg.sources):
        got = entry_strings(entry, registry, f"pretrain.sources[{i}]")
        kept = [s for s, k in zip(got, keep_mask(got, excluded)) if k] if excluded else got
        counts.append({"source": dict(entry), "strings": len(got), "kept": len(kept)})
        corpus.extend(kept)
    if not corpus:
        raise DataError("pretraining corpus is empty after exclusions")
    return corpus, {"sources": counts, "excluded_strings": len(excluded), "corpus": len(corpus)}


def _prepare_dir(out: Path, *, resume: bool, overwrite: bool, check_only: bool = False) -> None:
    """Refuse what must not be touched; tidy atomic-save leftovers; on ``overwrite`` remove our old files
    (``check_only``: the refusals alone, nothing touched)."""
    if (out / "model" / "head.json").is_file() or (out / "last" / "head.json").is_file() or ckpt.is_ensemble_dir(out):
        raise CheckpointError(f"{out} holds a training run (cloudphys train), not a pretraining run; "
                              "pretrain into another directory")
    if not check_only:
        for name in ("model", "last"):
            ckpt.recover_atomic(out / name)
    holds = any((out / n).exists() for n in ("model", "last", "pretrain.json"))
    if resume:
        if not check_only and not (out / "last" / "trainer_state.json").is_file():
            raise CheckpointError(f"nothing to resume in {out}: no 'last' checkpoint")
        return
    if holds and not overwrite:
        raise CheckpointError(f"{out} already holds a pretraining run; pass --resume to continue it, --overwrite "
                              "to replace it, or use a new directory")
    if overwrite and not check_only:  # the previous model/ and pretrain.json stay until the new ones replace them
        for name in ("last", "metrics.jsonl", "metrics.csv"):
            p = out / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()


def _remove_legacy(out: Path) -> None:
    """After the new ``model/`` is in place: the encoder files cloudphys 0.1 wrote into ``out`` itself."""
    if (out / "config.json").is_file() and (out / "model" / "config.json").is_file():
        for name in LEGACY_FILES:
            if name != "pretrain.json":
                (out / name).unlink(missing_ok=True)


def _check_config(config: Config) -> tuple[PretrainConfig, dict[str, Any]]:
    pc = config.pretrain
    if pc is None:
        raise ConfigError("config has no 'pretrain' section")
    if config.encoder.name != "scope-bert":
        raise ConfigError(f"pretraining supports encoder 'scope-bert', not {config.encoder.name!r}")
    ep = dict(config.encoder.params)
    if ep.get("pretrained"):
        raise ConfigError("encoder.pretrained is set: pretraining starts from scratch; remove it")
    return pc, ep


def _val_loss(model: Any, batch: Any, val_idx: np.ndarray, pc: PretrainConfig, device: torch.device) -> float:
    """MLM loss on the held-out strings with fixed masks (seeded; the training RNG is restored)."""
    model.eval()
    vl = []
    with torch.no_grad():
        state = torch.get_rng_state()  # fixed masks: comparable val loss across epochs
        torch.manual_seed(pc.seed)
        for start in range(0, len(val_idx), 256):
            with runtime.autocast(device, pc.precision):
                vl.append(float(model(**batch(val_idx[start : start + 256])).loss))
        torch.set_rng_state(state)
    return float(np.mean(vl))


def pretrain(
    config: Config | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    overrides: Iterable[str] = (),
    registry: PluginRegistry | None = None,
    tokenizer: Any = None,
    resume: bool = False,
    overwrite: bool = False,
    accept_config_changes: bool = False,
    sample_log: list[list[int]] | None = None,
) -> dict[str, Any]:
    """MLM-pretrain the encoder sizes of ``config`` on its ``pretrain`` corpus; write run directory ``out_dir``.

    :param resume: continue the run in ``out_dir`` from its last epoch (same config).
    :param overwrite: replace the pretraining run in ``out_dir`` (only the files pretraining writes).
    :param sample_log: ``pretrain.corpus`` runs append each step's corpus indices (this rank's) to it
        (tests of the exact resume).
    :returns: ``{out_dir, corpus, steps, seconds, final}`` (``final``: the last epoch's row).
    """
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if not isinstance(config, Config):
        config = load_config(config, overrides=overrides, registry=registry)
    pc, ep = _check_config(config)
    out = Path(out_dir)
    _prepare_dir(out, resume=resume, overwrite=overwrite, check_only=True)  # refuse before any work
    tokenizer = tokenizer or load_tokenizer(int(ep.get("max_length", 256)))
    if pc.corpus is not None:  # streamed from a token corpus on disk (cloudphys.training.stream)
        from .stream import train_from_corpus

        rank0 = runtime.dist_info()[0] == 0
        with ckpt.run_lock(out) if rank0 else contextlib.nullcontext():
            if rank0:
                _prepare_dir(out, resume=resume, overwrite=overwrite)
            if resume:
                check_resume_config(out, config, accept=accept_config_changes, registry=registry)
            res = train_from_corpus(config, pc, ep, out, tokenizer, resume, registry, sample_log=sample_log)
        if rank0:
            _remove_legacy(out)
        return res
    corpus, info = collect_strings(pc, registry)
    ids = tokenize(tokenizer, corpus, validate=True)  # same checks as training: vocabulary, grammar, length
    with ckpt.run_lock(out):  # nothing is written before the corpus is known good
        _prepare_dir(out, resume=resume, overwrite=overwrite)
        if resume:
            check_resume_config(out, config, accept=accept_config_changes, registry=registry)
        return _pretrain(config, pc, ep, out, tokenizer, ids, info, resume)


def _pretrain(config: Config, pc: PretrainConfig, ep: dict[str, Any], out: Path, tokenizer: Any,
              ids: list[np.ndarray], info: dict[str, Any], resume: bool) -> dict[str, Any]:
    from transformers import DataCollatorForLanguageModeling

    device = runtime.resolve_device(pc.device)
    with runtime.threads(pc.num_threads), runtime.seeded(pc.seed, device):
        rng = np.random.default_rng(pc.seed)
        order = rng.permutation(len(ids))
        n_val = round(pc.val_fraction * len(ids))
        val_idx, train_idx = order[:n_val], order[n_val:]
        model = mlm_model(ep, tokenizer)
        model.to(device)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=pc.mlm_probability,
                                                   return_tensors="pt")
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": pc.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=pc.lr)
        steps_per_epoch = max(1, -(-len(train_idx) // pc.batch_size))
        total = pc.epochs * steps_per_epoch
        if pc.max_steps:
            total = min(total, pc.max_steps)
        state: dict[str, Any] = {"epoch": 0, "step": 0, "best_val_loss": 0.0, "best_epoch": 0, "bad_epochs": 0,
                                 "seconds": 0.0}
        history: list[dict[str, Any]] = []
        if resume:
            state, history = restore_last(out, model, opt)
        else:
            config.dump(out / "config.yaml")
            for name in ("metrics.jsonl", "metrics.csv"):
                (out / name).unlink(missing_ok=True)
        step, t_start = int(state["step"]), time.perf_counter() - float(state.get("seconds", 0.0))
        show = runtime.progress_enabled(pc.progress, 0)

        def batch(idx: np.ndarray) -> dict[str, torch.Tensor]:
            b = collator([{"input_ids": ids[i].tolist()} for i in idx])
            return {k: v.to(device) for k, v in b.items()}

        for epoch in range(int(state["epoch"]) + 1, pc.epochs + 1):
            if step >= total:
                break
            model.train()
            perm = np.random.default_rng([pc.seed, epoch]).permutation(train_idx)
            losses = []
            bar = runtime.progress_bar(show, steps_per_epoch, f"pretrain {epoch}/{pc.epochs}")
            for start in range(0, len(perm), pc.batch_size):
                if step >= total:
                    break
                for g in opt.param_groups:
                    g["lr"] = pc.lr * runtime.lr_factor(step, total, pc.warmup)
                loss = mlm_step(model, batch(perm[start : start + pc.batch_size]), opt, model.parameters(), pc, device)
                step += 1
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            if bar is not None:
                bar.close()
            row = {"epoch": epoch, "step": step, "train_mlm_loss": float(np.mean(losses)) if losses else None}
            if n_val:
                row["val_mlm_loss"] = _val_loss(model, batch, val_idx, pc, device)
            history.append(row)
            state.update(epoch=epoch, step=step, seconds=time.perf_counter() - t_start)
            save_epoch(out, model, tokenizer, opt, state, row)
        elapsed = time.perf_counter() - t_start

    ckpt.save_atomic(out / "model", lambda tmp: save_encoder(model, tokenizer, tmp))
    write_json_atomic(out / "pretrain.json", {"config": config.to_dict(), "corpus": info, "history": history,
                                               "seconds": elapsed})
    _remove_legacy(out)
    return {"out_dir": str(out), "corpus": info["corpus"], "steps": step, "seconds": round(elapsed, 1),
            "final": history[-1] if history else None}
