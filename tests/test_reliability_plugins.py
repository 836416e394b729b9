"""Reliability guarantee 5: broken plugins are reported and skipped; the rest of cloudphys works.

tests/test_plugins.py checks each failure alone at the registry level (import error, duplicate name,
malformed declaration, raising registration, environment narrowing). Here the process-wide plugin
manager holds all of them at once -- installed as entry points and as modules -- and the public API
and the CLI (``plugins``, ``scope``, ``predict``), config loading and training still work.
See docs/reliability.md.
"""

from __future__ import annotations

import csv
import importlib
import importlib.metadata as md
import json
import math
import types
from pathlib import Path

import numpy as np
import pytest
import torch

import cloudphys
from cloudphys import plugins as plugins_mod
from cloudphys.cli import main
from cloudphys.hookspecs import hookimpl
from cloudphys.physics import LatentSpec, ObservableSpec, PhysicsHead
from cloudphys.physics.debye import DebyeHead

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

NACL = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"


class GoodHead(PhysicsHead):
    """A third-party head that is fine: cv = 3nR·a."""

    name = "reltest-good"
    latents = (LatentSpec("a", "", lower=0.0, upper=1.0, typical=0.5),)
    observables = (ObservableSpec("cv", "J/(K*mol)"),)

    def compute(self, latents, temperature, n_atoms, observables):
        return {"cv": 3 * n_atoms * 8.314462618 * latents["a"] * torch.ones_like(temperature)}


class FakeDebye(GoodHead):
    name = "debye"  # duplicate of the built-in


class Malformed(GoodHead):
    name = "reltest-malformed"
    latents = ("theta", 3)  # not LatentSpecs


def _module(name: str, **hooks) -> types.ModuleType:
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        fn.__name__ = hook
        setattr(mod, hook, hookimpl(fn))
    return mod


def _raise(message: str):
    def hook(**kwargs):
        raise RuntimeError(message)

    return hook


class _Dist:
    def __init__(self, name: str) -> None:
        self.name, self.version = name, "0.0.1"


class _EntryPoint:
    """An installed plugin: ``load()`` imports its module for real."""

    def __init__(self, name: str, module: str) -> None:
        self.name, self.module, self.dist = name, module, _Dist(f"dist-{name}")

    def load(self) -> object:
        return importlib.import_module(self.module)


@pytest.fixture
def broken_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The process-wide plugin manager with the built-ins, one good and six broken plugins."""
    (tmp_path / "reltest_raises_at_import.py").write_text("raise RuntimeError('libfoo is missing')\n")
    (tmp_path / "reltest_good_ep.py").write_text(
        "from cloudphys.hookspecs import hookimpl\n"
        "from test_reliability_plugins import GoodHead\n"
        "@hookimpl\ndef register_heads(register):\n    register(GoodHead)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    eps = [_EntryPoint("reltest-import", "reltest_raises_at_import"), _EntryPoint("reltest-good", "reltest_good_ep")]
    monkeypatch.setattr(md, "entry_points", lambda group=None, **kw: eps if group == "cloudphys" else [])
    monkeypatch.delenv("CLOUDPHYS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CLOUDPHYS_DISABLE_PLUGINS", raising=False)
    broken = [
        _module("reltest_duplicate", register_heads=lambda register: register(FakeDebye)),
        _module("reltest_malformed", register_heads=lambda register: register(Malformed)),
        _module("reltest_bad_encoder", register_encoders=lambda register: register("reltest-enc", "not callable")),
        _module("reltest_bad_dataset", register_datasets=lambda register: register(object())),
        _module("reltest_raises_registering", register_heads=_raise("registration exploded")),
        _module("reltest_bad_cli", register_commands=_raise("cannot add commands")),
    ]
    pm = plugins_mod.make_plugin_manager((*plugins_mod.DEFAULT_PLUGINS, *broken), entry_points=True)
    monkeypatch.setattr(plugins_mod, "_pm", pm)
    monkeypatch.setattr(plugins_mod, "_registry", None)
    return pm


EXPECTED_ERRORS = {
    "reltest-import": "RuntimeError: libfoo is missing",
    "reltest_duplicate": "duplicate head name 'debye' (already registered by plugin 'cloudphys.physics.debye')",
    "reltest_malformed": "LatentSpec",
    "reltest_bad_encoder": "factory must be callable",
    "reltest_bad_dataset": "has no 'name'",
    "reltest_raises_registering": "RuntimeError: registration exploded",
}


def test_broken_plugins_are_reported_by_name_and_reason(broken_world, capsys: pytest.CaptureFixture[str]) -> None:
    reg = plugins_mod.get_registry()
    errors = {e.plugin: e.error for e in reg.errors}
    assert set(errors) == set(EXPECTED_ERRORS)
    for name, needle in EXPECTED_ERRORS.items():
        assert needle in errors[name], (name, errors[name])
    assert next(e for e in reg.errors if e.plugin == "reltest-import").distribution == "dist-reltest-import"
    # nothing of a broken plugin is kept; the good ones are all there
    assert reg.head("debye") is DebyeHead and reg.owner("heads", "debye") == "cloudphys.physics.debye"
    assert "reltest-malformed" not in reg.heads and "reltest-enc" not in reg.encoders
    assert {"debye", "direct", "reltest-good"} <= set(reg.heads) and "scope-bert" in reg.encoders
    assert {"cloud-cv", "csv"} <= set(reg.datasets)

    assert main(["plugins", "--json"]) == 0
    captured = capsys.readouterr()
    listed = json.loads(captured.out)
    assert {e["plugin"] for e in listed["errors"]} == set(EXPECTED_ERRORS)
    assert "reltest_bad_cli" in captured.err and "cannot add commands" in captured.err  # reported, CLI still built
    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    for name in EXPECTED_ERRORS:
        assert f"FAILED {name}" in text


def test_the_rest_of_cloudphys_works_with_broken_plugins(broken_world, tmp_path: Path) -> None:
    from cloudphys.config import load_config
    from cloudphys.data import Examples
    from cloudphys.training import fit

    # public API
    head = cloudphys.load_head("debye")
    out = head(latents={"theta_D": torch.tensor([300.0])}, temperature=torch.tensor([[300.0]]), n_atoms=2)
    assert isinstance(head, DebyeHead) and 0 < float(out["cv"]) < 6 * 8.3145
    good = cloudphys.load_head("reltest-good")
    assert float(good(latents={"a": torch.tensor([1.0])}, temperature=torch.tensor([[10.0]]), n_atoms=1)["cv"]) > 0

    # the scope command
    from pymatgen.core import Lattice, Structure

    cif = tmp_path / "nacl.cif"
    Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(cif)
    )
    assert main(["scope", str(cif), "-o", str(tmp_path / "scope.csv"), "--no-progress"]) == 0
    with open(tmp_path / "scope.csv", newline="") as fh:
        assert [r["scope"] for r in csv.DictReader(fh)] == ["'" + NACL]  # spreadsheet-safe cell

    # config + training + predict
    cfg = {
        "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
        "head": {"name": "debye", "observables": ["cv"]},
        "train": {"epochs": 1, "batch_size": 4, "lr": 1.0e-3, "device": "cpu", "progress": "false"},
    }
    assert load_config(cfg).head.name == "debye"
    strings = [NACL, "-F 4 2 3 | 4a | Cu 1.0", "-F 4 2 3 | 8c | Si 1.0", "P 1 | 1a | Fe 1.0"]
    ex = Examples(
        ids=[f"r{k}" for k in range(4)],
        scope=strings,
        n_atoms=np.array([2.0, 1.0, 2.0, 1.0]),
        temperatures=np.array([300.0]),
        targets={"cv": np.array([[49.0], [24.4], [40.0], [25.0]])},
        units={"cv": "J/(K*mol)"},
    )
    res = fit(cfg, tmp_path / "run", examples={"train": ex, "val": ex})
    assert res.epochs_run == 1 and math.isfinite(res.best_val_loss)
    src = tmp_path / "in.csv"
    src.write_text(f"id,scope,n_atoms\nnacl,{NACL},2\n")
    assert (
        main(
            [
                "predict",
                str(tmp_path / "run"),
                "-i",
                str(src),
                "-T",
                "300",
                "-o",
                str(tmp_path / "p.csv"),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    with open(tmp_path / "p.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))  # the first line is the header
    cv = next(v for k, v in rows[0].items() if k.startswith("cv_"))  # cv with its unit in the column name
    assert len(rows) == 1 and not rows[0]["error"] and math.isfinite(float(cv))


def test_a_config_naming_a_broken_plugin_gets_a_clear_error(broken_world) -> None:
    from cloudphys.config import load_config
    from cloudphys.errors import ConfigError

    cfg = {"encoder": {"name": "reltest-enc"}, "head": {"name": "reltest-malformed"}}
    with pytest.raises(ConfigError, match="unknown encoder 'reltest-enc'; available: scope-bert"):
        load_config(cfg)
    cfg["encoder"] = {"name": "scope-bert"}
    with pytest.raises(ConfigError,
                       match="unknown head 'reltest-malformed'; available: debye, direct, multi, reltest-good"):
        load_config(cfg)


# -- reliability class 6: plugin output never reaches machine-readable stdout -------------------
class ChattyHead(GoodHead):
    name = "reltest-chatty"


def _chatty_world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process-wide plugin manager with a plugin that prints at import and while registering."""
    (tmp_path / "reltest_chatty.py").write_text(
        "import sys\n"
        "print('CHATTY import banner')\n"
        "sys.stdout.write('CHATTY raw write\\n')\n"
        "from cloudphys.hookspecs import hookimpl\n"
        "from test_reliability_plugins import ChattyHead\n"
        "@hookimpl\ndef register_heads(register):\n    print('CHATTY registering heads')\n    register(ChattyHead)\n"
        "@hookimpl\ndef register_commands(cli):\n    print('CHATTY adding commands')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    monkeypatch.delitem(__import__("sys").modules, "reltest_chatty", raising=False)
    eps = [_EntryPoint("reltest-chatty", "reltest_chatty")]
    monkeypatch.setattr(md, "entry_points", lambda group=None, **kw: eps if group == "cloudphys" else [])
    monkeypatch.delenv("CLOUDPHYS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CLOUDPHYS_DISABLE_PLUGINS", raising=False)
    monkeypatch.setattr(plugins_mod, "_pm", None)
    monkeypatch.setattr(plugins_mod, "_registry", None)


def test_plugin_prints_never_reach_json_on_stdout(tmp_path, monkeypatch, capsys) -> None:
    _chatty_world(tmp_path, monkeypatch)
    assert main(["plugins", "--json"]) == 0
    captured = capsys.readouterr()
    listed = json.loads(captured.out)  # the whole of stdout is one JSON document
    assert any(p["heads"] == ["reltest-chatty"] for p in listed["plugins"])
    assert "CHATTY" not in captured.out
    for line in ("CHATTY import banner", "CHATTY raw write", "CHATTY registering heads", "CHATTY adding commands"):
        assert line in captured.err


def test_plugin_prints_never_reach_csv_on_stdout(tmp_path, monkeypatch, capsys) -> None:
    from pymatgen.core import Lattice, Structure

    _chatty_world(tmp_path, monkeypatch)
    cif = tmp_path / "nacl.cif"
    Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(cif)
    )
    assert main(["scope", str(cif), "--no-progress"]) == 0  # CSV on stdout
    captured = capsys.readouterr()
    rows = list(csv.DictReader(captured.out.splitlines()))
    assert [r["scope"] for r in rows] == ["'" + NACL] and "CHATTY" not in captured.out  # spreadsheet-safe cell
    assert "CHATTY import banner" in captured.err


# -- reliability class 5: a head whose constructor raises, Ctrl-C during start-up --------------
class ExplodingHead(GoodHead):
    name = "reltest-exploding"

    def __init__(self, observables=None) -> None:
        super().__init__(observables)
        raise RuntimeError("libfoo is not initialised")


def test_a_head_whose_constructor_raises_is_one_error_line(monkeypatch, tmp_path, capsys) -> None:
    pm = plugins_mod.make_plugin_manager(
        (
            *plugins_mod.DEFAULT_PLUGINS,
            _module("reltest_exploding", register_heads=lambda register: register(ExplodingHead)),
        ),
        entry_points=False,
    )
    monkeypatch.setattr(plugins_mod, "_pm", pm)
    monkeypatch.setattr(plugins_mod, "_registry", None)
    with pytest.raises(
        cloudphys.PluginError,
        match=r"head 'reltest-exploding' \(plugin 'reltest_exploding'\) could not be "
        r"built: RuntimeError: libfoo is not initialised",
    ):
        cloudphys.load_head("reltest-exploding")
    # in a config (train): one error line naming the head and the reason, exit 1, no traceback
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        "encoder: {name: scope-bert, hidden_size: 16, num_layers: 1, num_heads: 2}\n"
        "head: {name: reltest-exploding}\ndata: {name: cloud-cv}\n"
    )
    assert main(["train", str(cfg), "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "reltest-exploding" in err[-1] and "libfoo is not initialised" in err[-1]
    assert "Traceback" not in "\n".join(err)


def test_ctrl_c_while_plugins_load_is_interrupted_130(monkeypatch, capsys) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(plugins_mod, "_pm", None)
    monkeypatch.setattr(plugins_mod, "_registry", None)
    monkeypatch.setattr(plugins_mod, "make_plugin_manager", interrupt)
    assert main(["plugins", "--json"]) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "interrupted" and captured.out == ""


def test_ctrl_c_during_start_up_in_a_real_process_exits_130(tmp_path: Path) -> None:
    """SIGINT while the process imports a slow plugin: 'interrupted', status 130, no traceback."""
    import os
    import signal
    import subprocess
    import sys
    import time

    (tmp_path / "reltest_slow.py").write_text(
        "import sys, time\nprint('importing', file=sys.stderr, flush=True)\ntime.sleep(60)\n")
    # The child gets Python's Ctrl-C handler even where this test's process ignores SIGINT (a shell
    # starts background jobs with SIGINT ignored, and a Python started so keeps ignoring it).
    launcher = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "import importlib, importlib.metadata as md, sys\n"
        "class EP:\n    name = 'reltest-slow'; dist = None\n"
        "    def load(self): return importlib.import_module('reltest_slow')\n"
        "md.entry_points = lambda group=None, **kw: [EP()] if group == 'cloudphys' else []\n"
        "from cloudphys.cli import main\n"
        "print('ready', file=sys.stderr, flush=True)\n"
        "sys.exit(main(['plugins', '--json']))\n"
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("CLOUDPHYS_LOAD_PLUGINS", None)
    env.pop("CLOUDPHYS_DISABLE_PLUGINS", None)
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    assert proc.stderr.readline().strip() == "ready"
    assert proc.stderr.readline().strip() == "importing"  # now inside the slow plugin's import
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip() == "interrupted" and out == "" and "Traceback" not in err
