"""``train.dos_smoothness``: the smoothness prior on the phonon-DOS head's spectrum
(``cloudphys.training.losses.dos_roughness``)."""

from __future__ import annotations

import csv
import importlib.metadata as md
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudphys.data import Examples
from cloudphys.errors import ConfigError
from cloudphys.plugins import reset
from cloudphys.training import fit
from cloudphys.training.losses import dos_roughness


@pytest.fixture(autouse=True)
def _installed(monkeypatch):
    try:
        md.distribution("cloudphys-phonon-dos")
    except md.PackageNotFoundError:
        pytest.skip("cloudphys-phonon-dos is not installed (pip install ./plugins/cloudphys-phonon-dos)")
    monkeypatch.delenv("CLOUDPHYS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CLOUDPHYS_DISABLE_PLUGINS", raising=False)
    reset()
    yield
    reset()


def _head(bins: int = 8):
    from cloudphys_phonon_dos.head import PhononDOSHead

    return PhononDOSHead(["cv"], bins=bins)


def test_roughness_is_zero_for_a_flat_dos_and_2k_for_a_spike():
    for bins in (4, 8, 16):
        head = _head(bins)
        n = torch.tensor([1.0, 3.0])
        flat = {"dos": torch.ones(2, bins), "theta_max": torch.tensor([500.0, 800.0])}
        assert float(dos_roughness(head, flat, n)) == pytest.approx(0.0, abs=1e-12)
        spike = torch.zeros(2, bins)
        spike[:, bins // 2] = 1.0
        got = float(dos_roughness(head, {"dos": spike, "theta_max": flat["theta_max"]}, n))
        assert got == pytest.approx(2.0 * bins, rel=1e-6)  # independent of the atoms per cell


def test_roughness_gradcheck_float64():
    head = _head(6)
    torch.manual_seed(0)
    w = (torch.rand(3, 6, dtype=torch.float64) + 0.1).requires_grad_()
    tmax = torch.tensor([400.0, 700.0, 900.0], dtype=torch.float64)
    n = torch.tensor([2.0, 1.0, 4.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda x: dos_roughness(head, {"dos": x, "theta_max": tmax}, n), (w,))


def _examples(n: int, offset: int) -> Examples:
    root = Path(os.environ.get("CLOUDPHYS_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    path = root / "cloud" / "cloud_cv_train_and_val.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found (set CLOUDPHYS_DATA)")
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))[offset : offset + n]
    return Examples(
        ids=[f"row{offset + i}" for i in range(len(rows))], scope=[r["cloud"] for r in rows],
        n_atoms=np.array([float(r["n_atoms"]) for r in rows]), temperatures=np.array([300.0]),
        targets={"cv": np.array([[float(r["cv"])] for r in rows])}, units={"cv": "J/(K*mol)"},
    )


def _config(weight: float, head: str = "phonon-dos") -> dict:
    return {
        "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "dropout": 0.0},
        "head": {"name": head, "observables": ["cv"], **({"bins": 8} if head == "phonon-dos" else {})},
        "train": {"epochs": 4, "batch_size": 16, "lr": 3.0e-3, "progress": "false", "patience": 0,
                  "dos_smoothness": weight},
    }


def test_the_prior_smooths_the_learned_dos_and_needs_a_dos_head():
    data = {"train": _examples(48, 0), "val": _examples(16, 48)}
    from cloudphys.training.batching import collate, encode

    rough = {}
    for weight in (0.0, 5.0):
        res = fit(_config(weight), None, examples=data)
        model = res.model.eval()
        enc = encode(data["val"], model, ["cv"])
        b = collate(enc, np.arange(len(enc.input_ids)), int(model.tokenizer.pad_token_id), torch.device("cpu"))
        with torch.no_grad():
            _, latents = model(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"],
                               ["cv"], n_atoms_primitive=b["n_atoms_primitive"])
        rough[weight] = float(dos_roughness(model.head, latents, b["n_atoms"]))
        assert all(np.isfinite(h["val_loss"]) for h in res.history)
    assert rough[5.0] < 0.5 * rough[0.0], rough
    with pytest.raises(ConfigError, match="dos_smoothness.*'debye'"):
        fit(_config(1.0, head="debye"), None, examples=data)
