"""Pretraining streamed from a token corpus on disk (``pretrain.corpus``; :mod:`cloudphys.data.shards`).

* **Flat memory**: strings are read from the memory-mapped shards batch by batch; what grows with the
  corpus is two index arrays (int32 below 2**31 strings: 4 bytes a string, 25 MB for 6.3 M).
* **Held-out part**: a string is ``val`` when its crystal's 64-bit hash falls in the first
  ``val_fraction`` of the hash range -- stable when the corpus grows, no permutation kept.
* **Leakage rule**: ``pretrain.exclude`` strings are hashed the same way and their crystals dropped.
* **Order**: epoch ``e`` visits the training strings in ``numpy.random.default_rng([seed, e])``
  order, in global batches of ``batch_size``; under ``torchrun`` rank ``r`` of ``W`` takes
  ``batch[r::W]`` of every global batch (disjoint parts; a last batch smaller than ``W`` is dropped).
* **Exact resume**: masks and dropout are seeded per (seed, epoch, step, rank), not drawn from a
  running RNG, and ``last/`` holds (epoch, step in the epoch, global step, seed): a run killed after
  any checkpoint (``save_every`` steps, and each epoch end) resumes at the exact next batch and
  ends with the weights of an uninterrupted run.
* **bf16**: the forward pass runs under :func:`cloudphys.training.runtime.autocast` (bf16 on CUDA
  with ``precision: auto``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError

__all__ = ["CorpusSampler", "corpus_split", "mask_tokens", "pad_batch"]

_HASH_RANGE = float(2**64)


def _index_dtype(n: int) -> Any:
    return np.int32 if n < 2**31 else np.int64


def corpus_split(corpus: Any, val_fraction: float,
                 excluded: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """``(train_idx, val_idx, n_excluded)`` of a :class:`~cloudphys.data.shards.TokenCorpus`, shard by shard.

    :param excluded: sorted unique key hashes to leave out (``pretrain.exclude``).
    """
    from ..data.shards import in_sorted

    cut = np.uint64(min(int(val_fraction * _HASH_RANGE), 2**64 - 1))
    dt = _index_dtype(len(corpus))
    train = np.empty(len(corpus), dtype=dt)  # filled in place: no list of parts beside the result
    val: list[np.ndarray] = []
    n_train = n_ex = base = 0
    for keys in corpus.keys():
        idx = np.arange(base, base + len(keys), dtype=dt)
        ok = np.ones(len(keys), dtype=bool)
        if excluded is not None and len(excluded):
            ok = ~in_sorted(keys, excluded)
            n_ex += int((~ok).sum())
        is_val = keys < cut if val_fraction > 0 else np.zeros(len(keys), dtype=bool)
        keep = idx[ok & ~is_val]
        train[n_train : n_train + len(keep)] = keep
        n_train += len(keep)
        val.append(idx[ok & is_val])
        base += len(keys)
    return train[:n_train], (np.concatenate(val) if val else np.zeros(0, dtype=dt)), n_ex


@dataclass
class CorpusSampler:
    """Which strings rank ``rank`` of ``world`` trains on at each step (see the module docstring)."""

    indices: np.ndarray
    batch_size: int
    seed: int
    rank: int = 0
    world: int = 1

    def __post_init__(self) -> None:
        if self.batch_size < self.world:
            raise DataError(f"pretrain.batch_size {self.batch_size} is smaller than the {self.world} DDP ranks; "
                            "each rank needs at least one string a step")
        if len(self.indices) < self.world:
            raise DataError(f"{len(self.indices)} training strings cannot be split over {self.world} ranks")

    def steps_per_epoch(self) -> int:
        n, b = len(self.indices), self.batch_size
        full, rest = divmod(n, b)
        return full + (1 if rest >= self.world else 0)

    def order(self, epoch: int) -> np.ndarray:
        """The epoch's global order (a permutation of ``indices``)."""
        return np.random.default_rng([self.seed, epoch]).permutation(self.indices)

    def batches(self, epoch: int, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
        """``(step_in_epoch, this rank's indices)`` from step ``start`` of ``epoch`` on."""
        perm = self.order(epoch)
        for s in range(start, self.steps_per_epoch()):
            glob = perm[s * self.batch_size : (s + 1) * self.batch_size]
            yield s, glob[self.rank :: self.world]


def pad_batch(rows: list[np.ndarray], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` padded on the right to the longest row."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    att = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.from_numpy(np.asarray(r, dtype=np.int64))
        att[i, : len(r)] = 1
    return ids, att


def mask_tokens(ids: torch.Tensor, special: torch.Tensor, mask_id: int, vocab_size: int, prob: float,
                gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking with an explicit generator: ``prob`` of the non-special tokens are chosen; of those
    80 % become ``[MASK]``, 10 % a random token, 10 % stay. Returns ``(inputs, labels)`` (-100: not scored)."""
    inputs = ids.clone()
    labels = ids.clone()
    is_special = torch.isin(ids, special)
    chosen = (torch.rand(ids.shape, generator=gen) < prob) & ~is_special
    labels[~chosen] = -100
    u = torch.rand(ids.shape, generator=gen)
    to_mask = chosen & (u < 0.8)
    to_rand = chosen & (u >= 0.8) & (u < 0.9)
    inputs[to_mask] = mask_id
    rand = torch.randint(vocab_size, ids.shape, generator=gen)
    inputs[to_rand] = rand[to_rand]
    return inputs, labels


def _step_seed(seed: int, epoch: int, step: int, rank: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, step, rank]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _batch(corpus: Any, idx: np.ndarray, tok: Any, special: torch.Tensor, prob: float, seed: int,
           device: torch.device) -> dict[str, torch.Tensor]:
    ids, att = pad_batch([corpus[int(i)] for i in idx], int(tok.pad_token_id))
    gen = torch.Generator().manual_seed(seed)
    inputs, labels = mask_tokens(ids, special, int(tok.mask_token_id), len(tok.get_vocab()), prob, gen)
    return {"input_ids": inputs.to(device), "attention_mask": att.to(device), "labels": labels.to(device)}


def train_from_corpus(config: Any, pc: Any, ep: dict[str, Any], out: Path, tokenizer: Any, resume: bool,
                      registry: Any, sample_log: list[list[int]] | None = None) -> dict[str, Any]:
    """The ``pretrain.corpus`` loop (called by :func:`cloudphys.training.pretrain.pretrain`)."""
    from ..data.shards import TokenCorpus, key_hash
    from . import checkpoint as ckpt
    from . import runtime
    from .exclusion import excluded_keys
    from .mlm import mlm_model, mlm_step, restore_last, save_encoder, save_epoch, save_last, write_json_atomic

    corpus = TokenCorpus(pc.corpus)
    max_len = int(ep.get("max_length", 256))
    if corpus.longest > max_len:
        raise DataError(f"pretrain.corpus {corpus.path} holds strings of up to {corpus.longest} tokens but "
                        f"encoder.max_length is {max_len} (strings are never truncated); raise encoder.max_length "
                        f"or rebuild the corpus with --max-length {max_len}")
    ex = excluded_keys(pc.exclude, registry, "pretrain") if pc.exclude else set()
    ex_hash = np.unique(np.array([key_hash(k) for k in ex], dtype=np.uint64))
    train_idx, val_idx, n_ex = corpus_split(corpus, pc.val_fraction, ex_hash)
    val_idx = val_idx[: pc.val_max]
    info = {"corpus_dir": str(corpus.path), "corpus": len(corpus), "train": int(len(train_idx)),
            "val_evaluated": int(len(val_idx)), "excluded_strings": len(ex), "excluded_in_corpus": n_ex,
            "vocab_sha256": corpus.manifest["vocab_sha256"]}
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
    device = runtime.resolve_device(pc.device)
    with runtime.distributed(device) as (rank, world), runtime.threads(pc.num_threads), \
            runtime.seeded(pc.seed, device):
        if device.type == "cuda" and world > 1:
            torch.cuda.set_device(device)
        sampler = CorpusSampler(train_idx, pc.batch_size, pc.seed, rank, world)
        model = mlm_model(ep, tokenizer).to(device)
        decay = [p for n, p in model.named_parameters() if p.ndim >= 2 and "LayerNorm" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.ndim >= 2 and "LayerNorm" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": pc.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=pc.lr)
        spe = sampler.steps_per_epoch()
        total = pc.epochs * spe if not pc.max_steps else min(pc.epochs * spe, pc.max_steps)
        state: dict[str, Any] = {"epoch": 0, "step": 0, "epoch_step": 0, "loss_sum": 0.0, "loss_n": 0,
                                 "best_val_loss": 0.0, "best_epoch": 0, "bad_epochs": 0,
                                 "seconds": 0.0, "seed": pc.seed, "n_train": int(len(train_idx)), "world": world}
        history: list[dict[str, Any]] = []
        if resume:
            got, history = restore_last(out, model, opt)
            if "epoch_step" not in got:
                raise DataError(f"{out}/last was not written by a corpus run; resume it without pretrain.corpus")
            if got.get("n_train") != len(train_idx) or got.get("seed") != pc.seed:
                raise DataError(f"{out}/last belongs to another corpus split or seed (n_train {got.get('n_train')} "
                                f"vs {len(train_idx)}); it cannot resume at the exact next sample")
            state.update(got)
            if 0 < int(state["epoch_step"]) < spe:  # killed mid-epoch: that epoch's row is written again
                history = [h for h in history if h["epoch"] < int(state["epoch"])]
                if rank == 0:
                    ckpt.write_metrics(out, history)
        elif rank == 0:
            config.dump(out / "config.yaml")
            for name in ("metrics.jsonl", "metrics.csv"):
                (out / name).unlink(missing_ok=True)
        runtime.barrier(world)
        net: Any = model
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
        step, t0 = int(state["step"]), time.perf_counter() - float(state.get("seconds", 0.0))
        tokens_seen, step_seconds = 0, 0.0  # this process's training steps only (no evaluation, no saving)
        show = runtime.progress_enabled(pc.progress, rank)
        # the epoch in progress: a finished epoch was saved with epoch_step == steps per epoch
        epoch = int(state["epoch"]) if state["epoch_step"] and state["epoch_step"] < spe else int(state["epoch"]) + 1
        start = int(state["epoch_step"]) if epoch == int(state["epoch"]) else 0
        if start == 0:
            state["loss_sum"], state["loss_n"] = 0.0, 0

        def save(row: dict[str, Any] | None) -> None:
            state["seconds"] = time.perf_counter() - t0
            if rank == 0:
                if row is None:  # mid-epoch: only last/
                    save_last(out, model, tokenizer, opt, dict(state))
                else:
                    save_epoch(out, model, tokenizer, opt, dict(state), row)
            runtime.barrier(world)

        while epoch <= pc.epochs and step < total:
            model.train()
            bar = runtime.progress_bar(show, spe, f"pretrain {epoch}/{pc.epochs}")
            if bar is not None:
                bar.update(start)
            for s, idx in sampler.batches(epoch, start):
                if step >= total:
                    break
                if sample_log is not None:
                    sample_log.append([int(i) for i in idx])
                for g in opt.param_groups:
                    g["lr"] = pc.lr * runtime.lr_factor(step, total, pc.warmup)
                t_step = time.perf_counter()
                seed = _step_seed(pc.seed, epoch, s, rank)
                b = _batch(corpus, idx, tokenizer, special, pc.mlm_probability, seed, device)
                tokens_seen += int(b["attention_mask"].sum())
                torch.manual_seed(seed)  # dropout: a function of the step, not of the history
                loss = mlm_step(net, b, opt, model.parameters(), pc, device)
                step += 1
                state["loss_sum"] += float(loss.detach())
                step_seconds += time.perf_counter() - t_step
                state["loss_n"] += 1
                state.update(epoch=epoch, epoch_step=s + 1, step=step)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{state['loss_sum'] / state['loss_n']:.3f}")
                if pc.save_every and step % pc.save_every == 0 and s + 1 < spe and step < total:
                    save(None)
            if bar is not None:
                bar.close()
            row = {"epoch": epoch, "step": step,
                   "train_mlm_loss": state["loss_sum"] / state["loss_n"] if state["loss_n"] else None}
            if len(val_idx):
                row["val_mlm_loss"] = mlm_val_loss(model, corpus, val_idx, tokenizer, special, pc, device)
            history.append(row)
            state["epoch"] = epoch
            save(row)
            state["loss_sum"], state["loss_n"] = 0.0, 0
            epoch, start = epoch + 1, 0
        elapsed = time.perf_counter() - t0
    if rank == 0:
        ckpt.save_atomic(out / "model", lambda tmp: save_encoder(model, tokenizer, tmp))
        write_json_atomic(out / "pretrain.json", {"config": config.to_dict(), "corpus": info, "history": history,
                                                   "seconds": elapsed, "world": world})
    return {"out_dir": str(out), "corpus": info["corpus"], "steps": step, "seconds": round(elapsed, 1),
            "final": history[-1] if history else None, "tokens_seen": tokens_seen,
            "step_seconds": step_seconds, "rank": rank, "world": world,
            "weights_sha256": _weights_sha256(model)}


def _weights_sha256(model: Any) -> str:
    """SHA-256 of this process's final weights (ranks of one DDP run, and a resumed run, must agree)."""
    import hashlib

    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().float().numpy().tobytes())
    return h.hexdigest()


def mlm_val_loss(model: Any, corpus: Any, val_idx: np.ndarray, tok: Any, special: torch.Tensor, pc: Any,
              device: torch.device) -> float:
    """MLM loss on the evaluated held-out strings with fixed masks (the same every epoch)."""
    from . import runtime

    model.eval()
    losses, weights = [], []
    with torch.no_grad():
        for k, a in enumerate(range(0, len(val_idx), 256)):
            idx = val_idx[a : a + 256]
            b = _batch(corpus, idx, tok, special, pc.mlm_probability, _step_seed(pc.seed, 2**31, k, 0), device)
            with runtime.autocast(device, pc.precision):
                losses.append(float(model(**b).loss))
            weights.append(len(idx))
    return float(np.average(losses, weights=weights))
