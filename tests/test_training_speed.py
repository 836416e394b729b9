"""Issue 12 §4: the faster training step gives the results of the step it replaced, at a fixed seed.

The trainer's optimizer is AdamW with torch's fused kernel (:func:`cloudphys.training.loop.make_optimizer`),
gradients are clipped with the multi-tensor kernels (:func:`~cloudphys.training.loop.clip_gradients`), the
running loss stays on the device and the BERT trunk runs the lean training forward
(:mod:`cloudphys.encoders.fast_bert`; compared op by op in ``tests/test_fast_forward.py``). Here ``fit``
runs once as it is and once with the code path it had before (the transformers forward, torch's
default AdamW loop over tensors, ``clip_grad_norm_`` per tensor): the same loss trajectory and the same
final weights up to float32 rounding.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys.config import load_config
from cloudphys.encoders.bert import ScopeBertEncoder
from cloudphys.training import build_model, fit
from cloudphys.training import loop as loop_module
from cloudphys.training.loop import clip_gradients, make_optimizer, param_groups


@pytest.fixture(scope="module")
def data(data_root: Path):
    return {"train": cloud_examples(data_root, 64), "val": cloud_examples(data_root, 16, offset=64)}


def _before(monkeypatch: pytest.MonkeyPatch) -> None:
    """The step as it was before issue 12 §4 (``loop.py`` at the commit before the change)."""

    def old_optimizer(model, cfg, device):
        return torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)

    def old_clip(model, max_norm, device):
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)

    monkeypatch.setattr(loop_module, "make_optimizer", old_optimizer)
    monkeypatch.setattr(loop_module, "clip_gradients", old_clip)
    monkeypatch.setattr(ScopeBertEncoder, "fast_forward", "never")  # the transformers forward


def test_same_seed_same_trajectory_and_weights_as_the_previous_step(data, monkeypatch) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["encoder"] = {**cfg["encoder"], "hidden_size": 32, "num_layers": 2}
    cfg["train"] = {**cfg["train"], "epochs": 4, "grad_clip": 0.5, "latent_lr": 3.0e-3, "weight_decay": 0.01}
    tok = tokenizer()
    new = fit(cfg, None, tokenizer=tok, examples=data)
    with monkeypatch.context() as m:
        _before(m)
        old = fit(cfg, None, tokenizer=tok, examples=data)
    assert len(new.history) == len(old.history) == 4
    for a, b in zip(new.history, old.history):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    assert new.history[-1]["train_loss"] < new.history[0]["train_loss"]  # it trained
    sa, sb = new.model.state_dict(), old.model.state_dict()
    assert sa.keys() == sb.keys()
    moved = 0
    init = build_model(load_config(cfg), tokenizer=tok).state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=1e-5, atol=1e-6, msg=k)
        moved += int(not torch.equal(sa[k], init[k]))
    assert moved > len(sa) // 2  # the weights compared are trained weights, not the initial ones


def test_trainer_uses_the_fused_step_on_cpu_and_exact_clipping() -> None:
    cfg = load_config(TINY)
    model = build_model(cfg, tokenizer=tokenizer())
    opt = make_optimizer(model, cfg.train, torch.device("cpu"))
    assert opt.defaults.get("fused") is True
    assert [g["weight_decay"] for g in opt.param_groups] == [g["weight_decay"] for g in param_groups(model, cfg.train)]
    gen = torch.Generator().manual_seed(0)
    ref = copy.deepcopy(model)
    for p, q in zip(model.parameters(), ref.parameters()):
        p.grad = torch.randn(p.shape, generator=gen) * 3.0
        q.grad = p.grad.clone()
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.7, foreach=False)
    clip_gradients(model, 0.7, torch.device("cpu"))
    for p, q in zip(model.parameters(), ref.parameters()):
        assert torch.equal(p.grad, q.grad)
