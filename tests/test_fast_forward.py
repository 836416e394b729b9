"""Issue 12 §4: the lean training forward of the BERT trunk (``cloudphys.encoders.fast_bert``) gives the
transformers ``BertModel`` forward's results at a fixed seed: the same dropout masks (drawn in the same
order and shapes, the global generator left where the HF forward leaves it), outputs and gradients
equal to float rounding, in train and eval mode, float32 and float64; and the trainer uses it by
default, with the same loss trajectory and final weights as the HF forward.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys.encoders import fast_bert
from cloudphys.encoders.bert import ScopeBertEncoder, build_scope_bert
from cloudphys.physics.contract import LatentSpec
from cloudphys.training import fit

SPECS = [LatentSpec("theta_D", "K", lower=1.0, upper=5000.0, typical=300.0, scale="log"),
         LatentSpec("v", "", typical=0.0, shape=(3,))]
TOL = {torch.float32: dict(rtol=2e-5, atol=2e-6), torch.float64: dict(rtol=1e-10, atol=1e-12)}


def _encoder(dtype: torch.dtype = torch.float32, **kw) -> ScopeBertEncoder:
    torch.manual_seed(0)
    sizes = dict(hidden_size=32, num_layers=2, num_heads=4, dropout=0.2, composition_features=True)
    enc = build_scope_bert(latents=SPECS, tokenizer=tokenizer(), **{**sizes, **kw})
    return enc.to(dtype)


def _batch(n: int = 6, length: int = 13, seed: int = 1, n_features: int = 8) -> tuple[torch.Tensor, ...]:
    """Token ids with [CLS] first and a padded tail of varying length (one row without padding)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 60, (n, length), generator=gen)
    ids[:, 0] = 2
    mask = torch.ones(n, length, dtype=torch.long)
    for i in range(1, n):
        real = length - (i * 2) % (length - 3)
        ids[i, real:] = 0
        mask[i, real:] = 0
    return ids, mask, torch.randn(n, n_features, generator=gen)


def _run(enc: ScopeBertEncoder, ids, mask, feats, mode: str, seed: int = 5):
    """Latents, parameter gradients and the generator state afterwards, with forward ``mode``."""
    enc.fast_forward = mode
    enc.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    out = enc(ids, mask, feats.to(next(enc.parameters()).dtype))
    rng = torch.get_rng_state()
    gen = torch.Generator().manual_seed(2)
    total = sum((v * torch.randn(v.shape, generator=gen, dtype=v.dtype)).sum() for v in out.values())
    total.backward()
    grads = {n: p.grad.detach().clone() for n, p in enc.named_parameters() if p.grad is not None}
    return {k: v.detach() for k, v in out.items()}, grads, rng


def _assert_same(a, b, dtype) -> None:
    (oa, ga, ra), (ob, gb, rb) = a, b
    assert torch.equal(ra, rb), "the global generator ends elsewhere: other dropout masks"
    assert oa.keys() == ob.keys()
    for k in oa:
        torch.testing.assert_close(oa[k], ob[k], **TOL[dtype], msg=k)
    assert ga.keys() == gb.keys() and len(ga) > 10
    scale = max(float(g.abs().max()) for g in gb.values())
    for k in ga:  # atol relative to the largest gradient: the key biases' gradients are 0 up to rounding
        torch.testing.assert_close(ga[k], gb[k], rtol=TOL[dtype]["rtol"] * 10, atol=TOL[dtype]["atol"] * scale, msg=k)


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_fast_forward_equals_the_transformers_forward(pooling, train) -> None:
    """The encoder (trunk + latent layer, float32 as it trains): latents and gradients."""
    enc = _encoder(pooling=pooling)
    enc.train(train)
    ids, mask, feats = _batch(n_features=enc.latent_layer.n_features)
    hf = _run(enc, ids, mask, feats, "never")
    fast = _run(enc, ids, mask, feats, "always")
    _assert_same(fast, hf, torch.float32)
    if train:  # dropout was active: another seed gives other outputs (the comparison is not vacuous)
        other = _run(enc, ids, mask, feats, "always", seed=6)
        assert not torch.allclose(other[0]["theta_D"], hf[0]["theta_D"])


def _run_trunk(bert, ids, mask, fast: bool, cls: bool, seed: int = 5):
    bert.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    if fast:
        out = (fast_bert.bert_cls_state if cls else fast_bert.bert_hidden_states)(bert, ids, mask)
    else:
        out = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        out = out[:, 0] if cls else out
    rng = torch.get_rng_state()
    if not cls:  # padding rows of the last layer reach nothing (the encoder pools over real tokens)
        out = out * mask.unsqueeze(-1)
    gen = torch.Generator().manual_seed(2)
    (out * torch.randn(out.shape, generator=gen, dtype=out.dtype)).sum().backward()
    grads = {n: p.grad.detach().clone() for n, p in bert.named_parameters() if p.grad is not None}
    return {"out": out.detach()}, grads, rng


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("cls", [True, False], ids=["cls", "all-rows"])
@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_trunk_equals_the_transformers_forward(dtype, cls, train) -> None:
    """The BERT trunk alone in float32 and float64: [CLS] state / hidden states and gradients."""
    bert = _encoder(dtype).bert
    bert.train(train)
    ids, mask, _ = _batch(n=5, length=11)
    _assert_same(_run_trunk(bert, ids, mask, True, cls), _run_trunk(bert, ids, mask, False, cls), dtype)


def test_no_attention_mask() -> None:
    bert = _encoder(torch.float64).bert
    bert.train()
    ids, _, _ = _batch(n=3, length=9)
    torch.manual_seed(3)
    ref = bert(input_ids=ids).last_hidden_state[:, 0]
    torch.manual_seed(3)
    torch.testing.assert_close(fast_bert.bert_cls_state(bert, ids, None), ref, rtol=1e-10, atol=1e-12)


def test_masks_drawn_with_bernoulli_where_rand_would_differ(monkeypatch) -> None:
    """Where ``rand(float64) < q`` were not ``bernoulli_(q)`` (MKL's stream on Intel CPUs), every mask is
    drawn with ``bernoulli_`` on a tensor of the HF shape: still the HF forward's masks."""
    monkeypatch.setattr(fast_bert, "_uniform_masks", lambda device_type: False)
    enc = _encoder()
    enc.train()
    ids, mask, feats = _batch(n_features=enc.latent_layer.n_features)
    _assert_same(_run(enc, ids, mask, feats, "always"), _run(enc, ids, mask, feats, "never"), torch.float32)


def test_uniform_mask_check_holds_on_this_build() -> None:
    """The check itself: on this machine's torch either rand-based masks are the bernoulli masks, or
    the check says no (then the bernoulli path above is taken)."""
    gen1, gen2 = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    a = torch.empty(1000).bernoulli_(0.8, generator=gen1).bool()
    b = torch.rand(1000, dtype=torch.float64, generator=gen2) < 0.8
    assert fast_bert._uniform_masks("cpu") == (torch.equal(a, b) and torch.equal(gen1.get_state(), gen2.get_state()))
    assert fast_bert._uniform_masks("cuda") is False


def test_when_the_lean_forward_is_used(monkeypatch) -> None:
    enc = _encoder()
    ids, mask, feats = _batch(n_features=enc.latent_layer.n_features)
    calls = []
    real = fast_bert.bert_cls_state
    monkeypatch.setattr(fast_bert, "bert_cls_state", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert enc.fast_forward == "train"  # the default
    enc.train()
    assert enc.use_fast_forward(ids)
    enc(ids, mask, feats)
    assert calls == [1]
    enc.eval()  # evaluation and prediction keep the transformers forward by default
    assert not enc.use_fast_forward(ids)
    enc(ids, mask, feats)
    assert calls == [1]
    enc.train()
    enc.fast_forward = "never"
    assert not enc.use_fast_forward(ids)
    enc.fast_forward = "always"
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not enc.use_fast_forward(ids)
    enc.bert.config.output_hidden_states = True
    assert not enc.use_fast_forward(ids)
    enc.bert.config.output_hidden_states = False
    hook = enc.bert.encoder.layer[0].output.register_forward_hook(lambda *a: None)  # a hook must run
    assert not enc.use_fast_forward(ids)
    hook.remove()
    assert enc.use_fast_forward(ids)
    getattr(enc.bert, "activation_checkpointing_enable", enc.bert.gradient_checkpointing_enable)()
    assert fast_bert.unsupported(enc.bert) == "gradient checkpointing"
    assert not enc.use_fast_forward(ids)
    enc.fast_forward = "sometimes"
    with pytest.raises(ValueError, match="fast_forward"):
        enc.use_fast_forward(ids)
    bf = _encoder(torch.bfloat16)
    bf.train()
    assert not bf.use_fast_forward(ids)
    assert "state_dict" not in vars(enc) and "fast_forward" not in enc.config.to_dict()


@pytest.fixture(scope="module")
def data(data_root: Path):
    return {"train": cloud_examples(data_root, 48), "val": cloud_examples(data_root, 16, offset=48)}


def test_fit_same_trajectory_and_weights_as_the_transformers_forward(data, monkeypatch) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["encoder"] = {**cfg["encoder"], "hidden_size": 32, "num_layers": 2, "num_heads": 4}
    cfg["train"] = {**cfg["train"], "epochs": 3, "grad_clip": 0.5}
    tok = tokenizer()
    calls = []
    real = fast_bert.bert_cls_state
    with monkeypatch.context() as m:
        m.setattr(fast_bert, "bert_cls_state", lambda *a, **k: calls.append(1) or real(*a, **k))
        new = fit(cfg, None, tokenizer=tok, examples=data)
    assert len(calls) == 3 * 3  # 3 epochs x 3 batches: the trainer took the lean forward
    with monkeypatch.context() as m:
        m.setattr(ScopeBertEncoder, "fast_forward", "never")
        old = fit(cfg, None, tokenizer=tok, examples=data)
    assert len(new.history) == len(old.history) == 3
    for a, b in zip(new.history, old.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert new.history[-1]["train_loss"] != new.history[0]["train_loss"]
    sa, sb = new.model.state_dict(), old.model.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6, msg=k)
