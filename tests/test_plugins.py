"""The plugin system: discovery, validation, failure isolation, environment narrowing, CLI listing.

Every test builds its own plugin manager; nothing depends on what happens to be installed.
"""

from __future__ import annotations

import importlib.metadata as md
import inspect
import json
import sys
import types
from pathlib import Path

import pytest
import torch

import cloudphys
from cloudphys import hookspecs
from cloudphys.errors import PluginError
from cloudphys.hookspecs import hookimpl
from cloudphys.physics import LatentSpec, ObservableSpec, PhysicsHead
from cloudphys.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager

REPO = Path(__file__).resolve().parents[1]


class ToyHead(PhysicsHead):
    """A classical solid: cv = 3nR·a at all temperatures (for plugin tests)."""

    name = "toy"
    latents = (LatentSpec("a", "", lower=0.0, upper=1.0, typical=0.5),)
    observables = (ObservableSpec("cv", "J/(K*mol)"),)

    def compute(self, latents, temperature, n_atoms, observables):
        return {"cv": 3 * n_atoms * 8.314462618 * latents["a"] * torch.ones_like(temperature)}


def plugin(name: str, **hooks) -> types.ModuleType:
    """A plugin module named ``name`` with the given hook implementations."""
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        fn.__name__ = hook
        setattr(mod, hook, hookimpl(fn))
    return mod


def registry(*plugins, entry_points=False) -> Registry:
    return Registry(make_plugin_manager(plugins, entry_points=entry_points))


def test_builtin_debye_registered_through_the_same_hook():
    reg = registry(*DEFAULT_PLUGINS)
    assert "debye" in reg.heads
    assert reg.owner("heads", "debye") == "cloudphys.physics.debye"
    info = reg.plugins["cloudphys.physics.debye"]
    assert info.builtin and info.heads == ["debye"] and info.distribution == "cloudphys"


def test_third_party_head_registers_and_loads():
    reg = registry("cloudphys.physics.debye", plugin("toyplug", register_heads=lambda register: register(ToyHead)))
    assert set(reg.heads) >= {"debye", "toy"}
    head = reg.head("toy")()
    out = head(latents={"a": torch.tensor([0.5])}, temperature=torch.tensor([[1.0, 2.0]]), n_atoms=2)
    assert out["cv"].shape == (1, 2)
    assert torch.allclose(out["cv"], torch.full((1, 2), 3 * 2 * 8.314462618 * 0.5))


def test_duplicate_name_reported_naming_the_plugin_and_others_load():
    dup = plugin("dupplug", register_heads=lambda register: register(ToyHead))
    dup2 = plugin("dupplug2", register_heads=lambda register: register(ToyHead))
    reg = registry("cloudphys.physics.debye", dup, dup2)
    assert "toy" in reg.heads and reg.owner("heads", "toy") == "dupplug"
    [err] = reg.errors
    assert err.plugin == "dupplug2"
    assert "duplicate head name 'toy'" in err.error and "dupplug" in err.error
    assert "debye" in reg.heads


@pytest.mark.parametrize(
    "bad, needle",
    [
        (type("NoName", (ToyHead,), {"name": ""}), "declares no 'name'"),
        (type("NoLatents", (ToyHead,), {"name": "nolat", "latents": ()}), "declares no latents"),
        (type("NoObs", (ToyHead,), {"name": "noobs", "observables": ()}), "declares no observables"),
        (type("BadLat", (ToyHead,), {"name": "badlat", "latents": ("theta",)}), "LatentSpec"),
        (type("BadCond", (ToyHead,), {"name": "badcond", "conditions": ("pressure",)}), "unknown conditions"),
        (object, "PhysicsHead subclass"),
        (
            type(
                "NoCompute",
                (PhysicsHead,),
                {"name": "nc", "latents": ToyHead.latents, "observables": ToyHead.observables},
            ),
            "compute",
        ),
    ],
)
def test_malformed_declarations_are_reported_and_skipped(bad, needle):
    broken = plugin("broken", register_heads=lambda register: register(bad))
    good = plugin("good", register_heads=lambda register: register(ToyHead))
    reg = registry(broken, good)
    assert "toy" in reg.heads
    [err] = reg.errors
    assert err.plugin == "broken" and needle in err.error


def test_plugin_raising_during_registration_keeps_nothing_of_it():
    def register_heads(register):
        register(ToyHead)
        raise RuntimeError("boom")

    reg = registry(plugin("halfway", register_heads=register_heads), "cloudphys.physics.debye")
    assert "toy" not in reg.heads and "debye" in reg.heads
    assert reg.errors[0].plugin == "halfway" and "RuntimeError: boom" in reg.errors[0].error


def test_import_failure_reported_with_name_and_error():
    reg = registry("cloudphys.physics.debye", "cloudphys_no_such_module_xyz")
    [err] = reg.errors
    assert err.plugin == "cloudphys_no_such_module_xyz" and "ModuleNotFoundError" in err.error
    assert "debye" in reg.heads


class _FakeDist:
    def __init__(self, name, version):
        self.name, self.version = name, version


class _FakeEP:
    def __init__(self, name, target, dist):
        self.name, self._target, self.dist = name, target, dist

    def load(self):
        if isinstance(self._target, Exception):
            raise self._target
        return self._target


@pytest.fixture
def fake_entry_points(monkeypatch):
    eps = [
        _FakeEP(
            "toy-plugin",
            plugin("toy_ep", register_heads=lambda register: register(ToyHead)),
            _FakeDist("cloudphys-toy", "1.2.3"),
        ),
        _FakeEP("broken-plugin", ImportError("missing dependency 'foo'"), _FakeDist("cloudphys-broken", "0.1")),
    ]

    def entry_points(group=None, **kw):
        return eps if group == "cloudphys" else []

    monkeypatch.setattr(md, "entry_points", entry_points)
    monkeypatch.delenv("CLOUDPHYS_LOAD_PLUGINS", raising=False)
    monkeypatch.delenv("CLOUDPHYS_DISABLE_PLUGINS", raising=False)
    return eps


def test_entry_point_plugins_discovered_and_failures_reported(fake_entry_points):
    reg = registry("cloudphys.physics.debye", entry_points=True)
    assert "toy" in reg.heads
    info = reg.plugins["toy-plugin"]
    assert (info.distribution, info.version, info.builtin) == ("cloudphys-toy", "1.2.3", False)
    [err] = reg.errors
    assert (err.plugin, err.distribution) == ("broken-plugin", "cloudphys-broken")
    assert "missing dependency 'foo'" in err.error and "cloudphys-broken" in str(err)


def test_load_plugins_env_narrows_entry_points(fake_entry_points, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_LOAD_PLUGINS", "toy-plugin")
    reg = registry("cloudphys.physics.debye", entry_points=True)
    assert "toy" in reg.heads and "debye" in reg.heads and not reg.errors
    monkeypatch.setenv("CLOUDPHYS_LOAD_PLUGINS", "")
    reg = registry("cloudphys.physics.debye", entry_points=True)
    assert "toy" not in reg.heads and "debye" in reg.heads


def test_disable_plugins_env(fake_entry_points, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_DISABLE_PLUGINS", "broken-plugin, cloudphys.physics.debye")
    reg = registry("cloudphys.physics.debye", entry_points=True)
    assert "debye" not in reg.heads and "toy" in reg.heads and not reg.errors


def test_unknown_head_lists_choices():
    reg = registry("cloudphys.physics.debye")
    with pytest.raises(PluginError, match=r"unknown head 'nope'; available: .*debye"):
        reg.head("nope")


def test_load_head_public_api():
    head = cloudphys.load_head("debye", observables=["cv"])
    assert head.selected == ("cv",)
    assert "debye" in cloudphys.list_heads()


def test_encoder_and_dataset_registration_validated():
    from cloudphys.data import DatasetSpec

    spec = DatasetSpec(name="toy-data", description="d", load=lambda split: [])
    good = plugin(
        "regs",
        register_encoders=lambda register: register("toy-enc", lambda **kw: kw),
        register_datasets=lambda register: register(spec),
    )
    bad_enc = plugin("badenc", register_encoders=lambda register: register("x", 42))
    bad_data = plugin("baddata", register_datasets=lambda register: register(DatasetSpec(name="d2", description="")))
    reg = registry(good, bad_enc, bad_data)
    assert reg.encoder("toy-enc")(a=1) == {"a": 1}
    assert reg.dataset("toy-data") is spec
    errs = {e.plugin: e.error for e in reg.errors}
    assert "factory must be callable" in errs["badenc"]
    assert "no callable 'load'" in errs["baddata"]


def test_cli_plugins_lists_builtin_debye(capsys):
    from cloudphys.cli import main

    assert main(["plugins"]) == 0
    text = capsys.readouterr().out
    assert "cloudphys.physics.debye" in text and "heads: debye" in text
    assert main(["plugins", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    [debye] = [p for p in data["plugins"] if p["name"] == "cloudphys.physics.debye"]
    assert debye["heads"] == ["debye"] and debye["distribution"] == "cloudphys" and debye["version"]
    assert isinstance(data["errors"], list)


def test_plugin_adds_a_cli_command(capsys):
    from cloudphys.cli import main

    def register_commands(cli):
        p = cli.add_parser("hello", help="say hello")
        p.add_argument("who")
        p.set_defaults(func=lambda args: print(f"hello {args.who}") or 0)

    def broken_commands(cli):
        raise RuntimeError("cannot add")

    pm = make_plugin_manager(
        [
            "cloudphys.cli.plugins_cmd",
            plugin("hello_plugin", register_commands=register_commands),
            plugin("bad_cmds", register_commands=broken_commands),
        ],
        entry_points=False,
    )
    assert main(["hello", "world"], pm=pm) == 0
    captured = capsys.readouterr()
    assert "hello world" in captured.out
    assert "bad_cmds" in captured.err and "cannot add" in captured.err


def test_cli_runs_as_a_process():
    import subprocess

    out = subprocess.run(
        [sys.executable, "-m", "cloudphys", "plugins", "--json"], capture_output=True, text=True, check=True
    )
    assert "debye" in json.loads(out.stdout)["plugins"][0]["heads"] or any(
        "debye" in p["heads"] for p in json.loads(out.stdout)["plugins"]
    )


def test_every_hook_is_documented_and_tested():
    """Meta-test: each hook spec has an argument doc, appears in docs/ and in a test file."""
    specs = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "cloudphys_spec")]
    assert set(specs) == {
        "register_heads",
        "register_encoders",
        "register_datasets",
        "register_models",
        "register_commands",
    }
    docs = (REPO / "docs" / "architecture.md").read_text()
    tests = "\n".join(p.read_text() for p in (REPO / "tests").glob("test_*.py"))
    for name in specs:
        fn = getattr(hookspecs, name)
        params = list(inspect.signature(fn).parameters)
        assert fn.__doc__ and all(f":param {p}:" in fn.__doc__ for p in params), f"{name} lacks argument docs"
        assert f"`{name}(" in docs, f"hook {name} is not in the hooks table of docs/architecture.md"
        assert f"{name}=" in tests or f"def {name}(" in tests, f"hook {name} is not exercised by a test"


def test_model_registration_validated():
    spec = types.SimpleNamespace(name="toy-model", files=())
    good = plugin("models_ok", register_models=lambda register: register(spec))
    dup = plugin("models_dup", register_models=lambda register: register(types.SimpleNamespace(name="toy-model")))
    nameless = plugin("models_bad", register_models=lambda register: register(object()))
    reg = registry(good, dup, nameless)
    assert reg.model("toy-model") is spec and reg.owner("models", "toy-model") == "models_ok"
    assert reg.plugins["models_ok"].models == ["toy-model"]
    errs = {e.plugin: e.error for e in reg.errors}
    assert "duplicate model name 'toy-model'" in errs["models_dup"] and "has no 'name'" in errs["models_bad"]
    with pytest.raises(PluginError, match="unknown model 'nope'; available: toy-model"):
        reg.model("nope")


def test_hooks_are_called_through_the_plugin_manager():
    """An implementation named differently (pluggy's ``specname``) is found: no lookup by function name."""

    @hookimpl(specname="register_heads")
    def my_heads(register):
        register(ToyHead)

    mod = types.ModuleType("specname_plugin")
    mod.my_heads = my_heads
    reg = registry(mod)
    assert reg.head("toy") is ToyHead and not reg.errors


def test_failure_in_one_hook_discards_the_plugins_other_registrations():
    def register_encoders(register):
        raise RuntimeError("encoder broke")

    bad = plugin("twohooks", register_heads=lambda register: register(ToyHead), register_encoders=register_encoders)
    reg = registry(bad, "cloudphys.physics.debye")
    assert "toy" not in reg.heads and "debye" in reg.heads
    [err] = reg.errors
    assert err.plugin == "twohooks" and "RuntimeError: encoder broke" in err.error


def test_plugin_failure_is_a_record_not_an_exception():
    from cloudphys.plugins import PluginFailure

    reg = registry("cloudphys_no_such_module_xyz")
    [err] = reg.errors
    assert isinstance(err, PluginFailure) and not isinstance(err, BaseException)


def test_core_commands_are_not_plugins_and_cannot_be_replaced(capsys):
    from cloudphys.cli import core_command_modules, main

    assert not any(m.startswith("cloudphys.cli") for m in DEFAULT_PLUGINS)
    assert {"cloudphys.cli.plugins_cmd", "cloudphys.cli.scope_cmd", "cloudphys.cli.train_cmd"} <= set(
        core_command_modules()
    )

    def hijack(cli):
        p = cli.add_parser("plugins", help="hijacked")
        p.set_defaults(func=lambda args: print("HIJACKED") or 0)
        q = cli.add_parser("mine", aliases=["scope"])  # an alias is a name too
        q.set_defaults(func=lambda args: print("HIJACKED") or 0)
        r = cli.add_parser("extra", help="a new command")
        r.set_defaults(func=lambda args: print("extra ran") or 0)

    def second(cli):
        cli.add_parser("extra").set_defaults(func=lambda args: print("SECOND") or 0)

    pm = make_plugin_manager(
        [
            "cloudphys.physics.debye",
            plugin("hijacker", register_commands=hijack),
            plugin("latecomer", register_commands=second),
        ],
        entry_points=False,
    )
    assert main(["plugins", "--json"], pm=pm) == 0
    captured = capsys.readouterr()
    assert "HIJACKED" not in captured.out and json.loads(captured.out)["plugins"]
    assert "plugin 'hijacker' tried to replace the core command 'plugins'" in captured.err
    assert "plugin 'hijacker' tried to replace the core command 'scope'" in captured.err
    assert "plugin 'latecomer' tried to replace the command of plugin 'hijacker' 'extra'" in captured.err
    assert main(["extra"], pm=pm) == 0
    assert "extra ran" in capsys.readouterr().out


def test_plugin_raising_half_way_through_commands_keeps_none_of_them(capsys):
    from cloudphys.cli import build_parser

    def half(cli):
        cli.add_parser("halfcmd").set_defaults(func=lambda args: 0)
        raise RuntimeError("second command broke")

    pm = make_plugin_manager([plugin("halfway_cmds", register_commands=half)], entry_points=False)
    parser = build_parser(pm)
    err = capsys.readouterr().err
    assert "plugin 'halfway_cmds' failed to add commands: RuntimeError: second command broke" in err
    with pytest.raises(SystemExit):
        parser.parse_args(["halfcmd"])
    assert "invalid choice: 'halfcmd'" in capsys.readouterr().err


def test_load_head_does_not_import_the_cli():
    import subprocess

    code = (
        "import sys, cloudphys; cloudphys.load_head('debye'); "
        "bad = [m for m in sys.modules if m.startswith('cloudphys.cli')]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)


def test_every_cli_module_with_commands_is_a_core_command_module():
    from cloudphys.cli import core_command_modules

    files = {f"cloudphys.cli.{p.stem}" for p in (REPO / "cloudphys" / "cli").glob("*_cmd.py")}
    assert set(core_command_modules()) == files
