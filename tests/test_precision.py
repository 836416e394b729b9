"""GPU code paths exercised on the CPU: bf16 autocast, device resolution, the head kept in float32."""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys.errors import ConfigError
from cloudphys.modeling.device import autocast
from cloudphys.modeling.encoding import collate, encode
from cloudphys.training import fit, resolve_device


def test_autocast_choice() -> None:
    cpu = torch.device("cpu")
    assert isinstance(autocast(cpu, "auto"), contextlib.nullcontext)  # fp32 on the CPU unless asked
    assert isinstance(autocast(cpu, "fp32"), contextlib.nullcontext)
    lin = torch.nn.Linear(4, 4)
    with autocast(cpu, "bf16"):
        assert lin(torch.randn(2, 4)).dtype == torch.bfloat16
    auto_cuda = autocast(torch.device("cuda"), "auto")  # the object only; entering it needs a GPU
    assert isinstance(auto_cuda, torch.autocast) and auto_cuda.fast_dtype == torch.bfloat16


def test_device_resolution() -> None:
    if torch.cuda.is_available():  # pragma: no cover - GPU machines
        assert resolve_device("auto").type == "cuda"
    else:
        assert resolve_device("auto") == torch.device("cpu")
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")
    assert resolve_device("cpu") == torch.device("cpu")


def test_bf16_training_runs_and_the_head_stays_float32(data_root: Path) -> None:
    tok = tokenizer()
    data = {"train": cloud_examples(data_root, 32), "val": cloud_examples(data_root, 16, offset=32)}
    cfg = copy.deepcopy(TINY)
    cfg["train"].update(epochs=2, precision="bf16", device="cpu")
    res = fit(cfg, None, tokenizer=tok, examples=data)
    assert all(np.isfinite(r["val_loss"]) and np.isfinite(r["train_loss"]) for r in res.history)
    model = res.model
    enc = encode(data["val"], model, ["cv"])
    b = collate(enc, np.arange(len(enc)), tok.pad_token_id)
    with torch.no_grad(), autocast(torch.device("cpu"), "bf16"):
        obs, lat = model(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"])
    assert lat["theta_D"].dtype == torch.float32 and obs["cv"].dtype == torch.float32
    with torch.no_grad():
        obs32, lat32 = model(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"])
    # bf16 has 8 bits of mantissa: the encoder's latents agree with fp32 to a few per cent
    torch.testing.assert_close(lat["theta_D"], lat32["theta_D"], rtol=5e-2, atol=1.0)
    assert torch.isfinite(obs["cv"]).all() and (obs["cv"] >= 0).all()
