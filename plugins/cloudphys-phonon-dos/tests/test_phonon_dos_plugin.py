"""The plugin is found only through its entry point; the vector latent wires through a config
into the encoder's latent layer, and gradients of thermodynamic losses reach the encoder."""

from __future__ import annotations

import importlib.metadata as md
import json

import pytest
import torch

from cloudphys.cli import main
from cloudphys.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager, reset


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
    from cloudphys.training.model import build_model

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
