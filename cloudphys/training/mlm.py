"""Pieces of MLM pretraining shared by the in-memory loop (:mod:`.pretrain`) and the streamed one
(:mod:`.stream`): the model, the optimizer step, saving and restoring ``last/``."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from ..encoders.pretrained import load_masked_lm, quiet_transformers
from ..errors import CheckpointError
from . import checkpoint as ckpt
from . import runtime

__all__ = ["mlm_model", "mlm_step", "restore_last", "save_encoder", "save_epoch", "save_last", "write_json_atomic"]


def mlm_step(net: Any, batch: Mapping[str, torch.Tensor], opt: torch.optim.Optimizer, params: Any, pc: Any,
             device: Any) -> torch.Tensor:
    """One optimizer step of the MLM loss of ``batch`` through ``net`` (the model, or its DDP wrapper):
    autocast as ``pc.precision`` says, gradients of ``params`` clipped to ``pc.grad_clip``; the loss."""
    with runtime.autocast(device, pc.precision):
        loss = net(**batch).loss
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if pc.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, pc.grad_clip)
    opt.step()
    return loss


def mlm_model(ep: Mapping[str, Any], tokenizer: Any) -> Any:
    """A fresh ``BertForMaskedLM`` of the encoder section's sizes (element embeddings if asked)."""
    from transformers import BertForMaskedLM

    from ..encoders.bert import ScopeBertConfig, bert_config, init_element_embeddings

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
        init_element_embeddings(model.bert.embeddings.word_embeddings.weight, vocab, model.config.initializer_range)
    return model


def save_encoder(model: Any, tokenizer: Any, path: Path) -> None:
    with quiet_transformers():
        model.save_pretrained(path, safe_serialization=True)
        tokenizer.save_pretrained(path)


def restore_last(out: Path, model: Any, opt: torch.optim.Optimizer) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Weights, optimizer, RNG and history of ``out/last`` (every tensor accounted for)."""
    last = out / "last"
    ckpt.refuse_pickles(last)
    loaded = load_masked_lm(last, what="checkpoint", remedy="resume with the run's encoder sizes")
    try:
        model.load_state_dict(loaded.state_dict())
    except RuntimeError as exc:
        raise CheckpointError(f"{last} does not fit this encoder: {exc}") from exc
    ckpt.optimizer_from_files(opt, last)
    state, rng = ckpt.load_training_state(last)
    torch.set_rng_state(rng)
    history = [h for h in ckpt.read_metrics(out) if h["epoch"] <= state["epoch"]]
    ckpt.write_metrics(out, history)
    return state, history


def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def save_epoch(out: Path, model: Any, tokenizer: Any, opt: torch.optim.Optimizer, state: dict[str, Any],
                row: dict[str, Any]) -> None:
    """Log the epoch's row, then write ``last/`` (weights, tokenizer, optimizer, RNG) atomically."""
    ckpt.append_metrics(out, row)
    save_last(out, model, tokenizer, opt, state)


def save_last(out: Path, model: Any, tokenizer: Any, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Write ``last/`` (weights, tokenizer, optimizer, training state, RNG) atomically."""
    rng = torch.get_rng_state()

    def write_last(tmp: Path) -> None:
        save_encoder(model, tokenizer, tmp)
        ckpt.optimizer_to_files(opt, tmp)
        ckpt.save_training_state(tmp, dict(state), rng)

    ckpt.save_atomic(out / "last", write_last)
