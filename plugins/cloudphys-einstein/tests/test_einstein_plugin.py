"""The plugin is found only through its ``cloudphys`` entry point, and its heads work by name."""

from __future__ import annotations

import importlib.metadata as md
import json

import pytest
import torch

from cloudphys.cli import main
from cloudphys.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager, reset

HEADS = ["einstein", "debye-einstein"]


@pytest.fixture(autouse=True)
def _installed(monkeypatch):
    try:
        md.distribution("cloudphys-einstein")
    except md.PackageNotFoundError:
        pytest.skip("cloudphys-einstein is not installed (pip install ./plugins/cloudphys-einstein)")
    monkeypatch.delenv("CLOUDPHYS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CLOUDPHYS_DISABLE_PLUGINS", raising=False)
    reset()
    yield
    reset()


def test_entry_point_declared_in_the_cloudphys_group():
    eps = [
        ep for ep in md.entry_points(group="cloudphys") if ep.dist is not None and ep.dist.name == "cloudphys-einstein"
    ]
    assert [(ep.name, ep.value) for ep in eps] == [("einstein", "cloudphys_einstein")]
    assert not any("einstein" in p for p in DEFAULT_PLUGINS)


def test_heads_come_only_from_the_entry_point():
    reg = Registry(make_plugin_manager(DEFAULT_PLUGINS, entry_points=True))
    for name in HEADS:
        assert reg.owner("heads", name) == "einstein"
    info = reg.plugins["einstein"]
    assert (
        info.distribution == "cloudphys-einstein"
        and info.version == md.version("cloudphys-einstein")
        and not info.builtin
    )
    assert info.heads == HEADS
    assert not [e for e in reg.errors if e.plugin == "einstein"]
    without = Registry(make_plugin_manager(DEFAULT_PLUGINS, entry_points=False))
    assert not set(HEADS) & set(without.heads) and "debye" in without.heads


def test_disabling_the_plugin_leaves_the_core_working(monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_DISABLE_PLUGINS", "einstein")
    reg = Registry(make_plugin_manager(DEFAULT_PLUGINS, entry_points=True))
    assert not set(HEADS) & set(reg.heads) and "debye" in reg.heads


def test_listed_by_cloudphys_plugins(capsys):
    assert main(["plugins", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    (entry,) = [p for p in listing["plugins"] if p["name"] == "einstein"]
    assert entry["distribution"] == "cloudphys-einstein" and entry["heads"] == HEADS
    assert main(["plugins"]) == 0
    assert "heads: einstein, debye-einstein" in capsys.readouterr().out


@pytest.mark.parametrize("name", HEADS)
def test_usable_by_name_in_a_config(name):
    from cloudphys import load_head
    from cloudphys.config import load_config

    cfg = load_config(
        {
            "encoder": {"name": "scope-bert", "hidden_size": 32, "num_layers": 1, "num_heads": 2},
            "head": {"name": name, "observables": ["cv", "u"]},
        }
    )
    head = load_head(cfg.head.name, **cfg.head.params)
    assert head.name == name and head.selected == ("cv", "u")
    lat = {s.name: torch.tensor([s.typical]) for s in head.latents}
    out = head(latents=lat, temperature=torch.tensor([[0.0, 300.0]]), n_atoms=3)
    assert set(out) == {"cv", "u"} and float(out["cv"][0, 0]) == 0.0 and float(out["cv"][0, 1]) > 0.0
