"""Masked-language-model pretraining of the ``scope-bert`` trunk on unlabelled SCOPE strings.

``cloudphys pretrain CONFIG --out DIR`` reads the ``encoder`` section (sizes) and the ``pretrain``
section (sources, exclusions, schedule), trains a transformers ``BertForMaskedLM`` with
``DataCollatorForLanguageModeling`` and writes DIR (``config.json`` + ``model.safetensors`` +
tokenizer + ``pretrain.json``). A fine-tuning config starts from it with
``encoder: {name: scope-bert, pretrained: DIR}``.
"""

from __future__ import annotations

import contextlib
import csv
import json
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import torch

from ..config import Config, PretrainConfig, load_config
from ..data.base import Examples
from ..errors import CheckpointError, ConfigError, DataError
from .checkpoint import save_atomic
from .data import tokenize
from .model import load_tokenizer, quiet_transformers
from .trainer import _autocast, _lr_factor, _progress_enabled, _threads, resolve_device

__all__ = ["pretrain", "collect_strings", "load_pretrained_bert"]


def _strings_of(entry: Mapping[str, Any], registry: Any, what: str = "pretrain source") -> list[str]:
    """The strings of one ``sources`` / ``exclude`` entry: a data set (``name``, with its parameters,
    ``path`` included) or, without ``name``, a file (``path``, ``column``)."""
    kind = PretrainConfig.check_source(what, entry, registry)
    entry = dict(entry)
    if kind == "file":
        path = Path(entry.pop("path")).expanduser()
        column = entry.pop("column", None)
        if not path.is_file():
            raise DataError(f"pretrain source {path} not found")
        if path.suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as fh:
                reader = csv.DictReader(fh)
                cols = reader.fieldnames or []
                col = column or next((c for c in ("scope", "cloud") if c in cols), None)
                if col not in cols:
                    raise DataError(f"pretrain source {path}: no column {col or 'scope/cloud'!r}; columns: {cols}")
                return [row[col].strip() for row in reader if row[col].strip()]
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    name = entry.pop("name")
    split = entry.pop("split", "train")
    spec = registry.dataset(name)
    if split not in spec.splits:
        raise ConfigError(f"pretrain source {name!r}: no split {split!r}; available: {', '.join(spec.splits)}")
    out = spec.load(split=split, **entry)
    return list(out.scope) if isinstance(out, Examples) else [str(s) for s in out]


def collect_strings(cfg: PretrainConfig, registry: Any) -> tuple[list[str], dict[str, Any]]:
    """The corpus: every source's strings minus every excluded string (order kept, duplicates kept)."""
    excluded: set[str] = set()
    for kind in ("sources", "exclude"):  # every entry against the registry before any is read
        for i, entry in enumerate(getattr(cfg, kind)):
            PretrainConfig.check_source(f"pretrain.{kind}[{i}]", entry, registry)
    for i, entry in enumerate(cfg.exclude):
        excluded.update(_strings_of(entry, registry, f"pretrain.exclude[{i}]"))
    corpus: list[str] = []
    counts = []
    for i, entry in enumerate(cfg.sources):
        got = _strings_of(entry, registry, f"pretrain.sources[{i}]")
        kept = [s for s in got if s not in excluded]
        counts.append({"source": dict(entry), "strings": len(got), "kept": len(kept)})
        corpus.extend(kept)
    if not corpus:
        raise DataError("pretraining corpus is empty after exclusions")
    return corpus, {"sources": counts, "excluded_strings": len(excluded), "corpus": len(corpus)}


def load_pretrained_bert(path: str | Path, vocab: Mapping[str, int]) -> Any:
    """The ``BertModel`` trunk of a directory written by :func:`pretrain` (vocabulary checked)."""
    from transformers import BertForMaskedLM, PreTrainedTokenizerFast

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"no pretrained encoder in {path} (config.json missing)")
    with quiet_transformers():
        tok = PreTrainedTokenizerFast.from_pretrained(str(path))
    if dict(tok.get_vocab()) != dict(vocab):
        raise CheckpointError(f"pretrained encoder {path} was trained with a different vocabulary than this tokenizer")
    from .checkpoint import refuse_pickles

    refuse_pickles(path)
    try:
        with quiet_transformers():
            return BertForMaskedLM.from_pretrained(str(path), use_safetensors=True, local_files_only=True).bert
    except Exception as exc:  # noqa: BLE001 - corrupt or incompatible files
        raise CheckpointError(f"cannot load the pretrained encoder from {path}: {type(exc).__name__}: {exc}") from exc


def pretrain(
    config: Config | Mapping[str, Any] | str | Path,
    out_dir: str | Path,
    *,
    overrides: Iterable[str] = (),
    registry: Any = None,
    tokenizer: Any = None,
) -> dict[str, Any]:
    """MLM-pretrain the encoder sizes of ``config`` on its ``pretrain`` corpus; write ``out_dir``."""
    from transformers import BertForMaskedLM, DataCollatorForLanguageModeling

    from ..encoders.bert import ScopeBertConfig, bert_config

    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if not isinstance(config, Config):
        config = load_config(config, overrides=overrides, registry=registry)
    pc = config.pretrain
    if pc is None:
        raise ConfigError("config has no 'pretrain' section")
    if config.encoder.name != "scope-bert":
        raise ConfigError(f"pretraining supports encoder 'scope-bert', not {config.encoder.name!r}")
    ep = dict(config.encoder.params)
    if ep.get("pretrained"):
        raise ConfigError("encoder.pretrained is set: pretraining starts from scratch; remove it")
    tokenizer = tokenizer or load_tokenizer(int(ep.get("max_length", 256)))
    corpus, info = collect_strings(pc, registry)
    device = resolve_device(pc.device)
    out = Path(out_dir)
    with _threads(pc.num_threads), torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(pc.seed)
        ids = tokenize(tokenizer, corpus, validate=True)  # same checks as training: vocabulary, grammar, length
        rng = np.random.default_rng(pc.seed)
        order = rng.permutation(len(ids))
        n_val = int(round(pc.val_fraction * len(ids)))
        val_idx, train_idx = order[:n_val], order[n_val:]
        vocab = tokenizer.get_vocab()
        sc = ScopeBertConfig(
            vocab_size=len(vocab), pad_token_id=int(tokenizer.pad_token_id),
            hidden_size=ep.get("hidden_size", 256), num_hidden_layers=ep.get("num_layers", 4),
            num_attention_heads=ep.get("num_heads", 4), intermediate_size=ep.get("intermediate_size"),
            hidden_dropout_prob=ep.get("dropout", 0.1), attention_probs_dropout_prob=ep.get("dropout", 0.1),
            max_position_embeddings=ep.get("max_length", 256),
        )
        model = BertForMaskedLM(bert_config(sc))
        if ep.get("element_init"):
            from ..encoders.bert import init_element_embeddings

            init_element_embeddings(model.bert.embeddings.word_embeddings.weight, vocab,
                                    model.config.initializer_range)
        model.to(device)
        collator = DataCollatorForLanguageModeling(tokenizer, mlm=True, mlm_probability=pc.mlm_probability, return_tensors="pt")
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": pc.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=pc.lr)
        steps_per_epoch = max(1, -(-len(train_idx) // pc.batch_size))
        total = pc.epochs * steps_per_epoch
        if pc.max_steps:
            total = min(total, pc.max_steps)
        step, history, t_start = 0, [], time.perf_counter()
        show = _progress_enabled(pc.progress, 0)

        def batch(idx: np.ndarray) -> dict[str, torch.Tensor]:
            b = collator([{"input_ids": ids[i].tolist()} for i in idx])
            return {k: v.to(device) for k, v in b.items()}

        for epoch in range(1, pc.epochs + 1):
            if step >= total:
                break
            model.train()
            perm = np.random.default_rng([pc.seed, epoch]).permutation(train_idx)
            losses = []
            bar = None
            if show:
                from tqdm.auto import tqdm

                bar = tqdm(total=steps_per_epoch, desc=f"pretrain {epoch}/{pc.epochs}", leave=False)
            for start in range(0, len(perm), pc.batch_size):
                if step >= total:
                    break
                for g in opt.param_groups:
                    g["lr"] = pc.lr * _lr_factor(step, total, pc.warmup)
                b = batch(perm[start : start + pc.batch_size])
                with _autocast(device, pc.precision):
                    loss = model(**b).loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if pc.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), pc.grad_clip)
                opt.step()
                step += 1
                losses.append(float(loss.detach()))
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{np.mean(losses):.3f}")
            if bar is not None:
                bar.close()
            row = {"epoch": epoch, "step": step, "train_mlm_loss": float(np.mean(losses)) if losses else None}
            if n_val:
                model.eval()
                vl = []
                with torch.no_grad():
                    state = torch.get_rng_state()  # fixed masks: comparable val loss across epochs
                    torch.manual_seed(pc.seed)
                    for start in range(0, n_val, 256):
                        with _autocast(device, pc.precision):
                            vl.append(float(model(**batch(val_idx[start : start + 256])).loss))
                    torch.set_rng_state(state)
                row["val_mlm_loss"] = float(np.mean(vl))
            history.append(row)
        elapsed = time.perf_counter() - t_start

    def write(tmp: Path) -> None:
        with quiet_transformers():
            model.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
        (tmp / "pretrain.json").write_text(json.dumps(
            {"config": config.to_dict(), "corpus": info, "history": history, "seconds": elapsed}, indent=2))

    save_atomic(out, write)
    return {"out_dir": str(out), "corpus": info["corpus"], "steps": step, "seconds": round(elapsed, 1),
            "final": history[-1] if history else None}
