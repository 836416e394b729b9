"""The plugin is found only through its entry point; the vector latent wires through a config
into the encoder's latent layer, and gradients of thermodynamic losses reach the encoder;
``train.dos_smoothness`` (the smoothness prior on the head's spectrum,
``cloudphys.training.losses.dos_roughness``) works with this head."""

from __future__ import annotations

import csv
import importlib.metadata as md
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from cloudphys.cli import main
from cloudphys.data import Examples
from cloudphys.errors import ConfigError
from cloudphys.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager, reset
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


def test_head_comes_only_from_the_entry_point(capsys):
    eps = [
        ep
        for ep in md.entry_points(group="cloudphys")
        if ep.dist is not None and ep.dist.name == "cloudphys-phonon-dos"
    ]
    assert [(ep.name, ep.value) for ep in eps] == [("phonon-dos", "cloudphys_phonon_dos")]
    reg = Registry(make_plugin_manager(DEFAULT_PLUGINS, entry_points=True))
    assert reg.owner("heads", "phonon-dos") == "phonon-dos"
    assert reg.plugins["phonon-dos"].distribution == "cloudphys-phonon-dos"
    assert "phonon-dos" not in Registry(make_plugin_manager(DEFAULT_PLUGINS, entry_points=False)).heads
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [p["heads"] for p in listing["plugins"] if p["name"] == "phonon-dos"] == [["phonon-dos"]]


def test_disabling_the_plugin_leaves_the_core_working(monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_DISABLE_PLUGINS", "phonon-dos")
    reg = Registry(make_plugin_manager(DEFAULT_PLUGINS, entry_points=True))
    assert "phonon-dos" not in reg.heads and "debye" in reg.heads


@pytest.mark.parametrize(("params", "names"), [({}, ["dos", "theta_max"]), ({"bins": 8, "theta_max": 900.0}, ["dos"])])
def test_config_builds_a_model_whose_latent_layer_emits_the_dos(params, names):
    from cloudphys.modeling.model import build_model

    model = build_model(
        {
            "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
            "head": {"name": "phonon-dos", "observables": ["cv", "s", "u"], **params},
        }
    )
    bins = params.get("bins", 16)
    assert [s.name for s in model.head.latents] == names and model.head.latent("dos").shape == (bins,)
    enc = model.tokenizer(
        ["225 Fm-3m | 4a 4b | Na 0.5 Cl 0.5", "227 Fd-3m | 8a | Si 1.0"], return_tensors="pt", padding=True
    )
    T = torch.tensor([[20.0, 300.0, 1000.0]] * 2)
    n = torch.tensor([2.0, 2.0])
    obs, lat = model(enc["input_ids"], enc["attention_mask"], T, n)
    assert lat["dos"].shape == (2, bins) and bool((lat["dos"] >= 0).all())
    if "theta_max" in lat:
        assert bool(((lat["theta_max"] >= 10.0) & (lat["theta_max"] <= 10000.0)).all())
    assert obs["cv"].shape == (2, 3) and bool((obs["cv"] > 0).all())
    # Thermodynamic labels only: the loss on cv, s, u trains the encoder end to end.
    loss = sum((obs[k] / obs[k].detach().abs().mean()).mean() for k in ("cv", "s", "u"))
    loss.backward()
    grads = [p.grad for p in model.encoder.parameters() if p.grad is not None]
    assert grads and all(bool(torch.isfinite(g).all()) for g in grads)
    assert any(float(g.abs().max()) > 0 for g in grads)


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
    from cloudphys.modeling.encoding import collate, encode

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
