"""Hypothesis: random configs (real keys, random values; random YAML text) never crash load_config.

Whatever a user writes, ``load_config`` returns a :class:`Config` whose values all lie in their
bounds, or raises a one-line :class:`ConfigError` — never another exception.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cloudphys.config import (
    Bound,
    Config,
    PretrainConfig,
    TrainConfig,
    load_config,
    param_schema,
    read_config_file,
)
from cloudphys.config.coerce import split_annotated
from cloudphys.errors import ConfigError
from cloudphys.plugins import get_registry

REG = get_registry()
SECTION_KEYS: dict[str, list[str]] = {
    "train": [f.name for f in dataclasses.fields(TrainConfig)],
    "pretrain": [f.name for f in dataclasses.fields(PretrainConfig)],
    "encoder": sorted(param_schema("encoder", REG.encoders["scope-bert"]) or ()),
    "head": sorted(param_schema("head", REG.heads["debye"]) or ()),
    "data": sorted(param_schema("data", REG.datasets["cloud-cv"]) or ()),
}
VALID: dict[str, dict[str, Any]] = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
    "head": {"name": "debye"},
    "data": {"name": "cloud-cv"},
    "train": {"epochs": 1},
    "pretrain": {"sources": [{"path": "c.csv"}]},
}

numbers = (
    st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0, -1, 1, 3, 2**31, 2**32, 10**12, 0.5, 1.0, 1e-300, -0.0, float("nan"), float("inf")])
)
words = st.sampled_from(["auto", "cpu", "cuda", "cuda:0", "gpu", "yes", "no", "on", "010", "1:30", "l1", "huber",
                         "fp32", "bf16", "cls", "mean", "true", "", "1e-3", "nan", "-inf", "0x10"])
leaves = st.none() | st.booleans() | numbers | words | st.text(max_size=6)
values = st.recursive(
    leaves, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=4) | words, c, max_size=3),
    max_leaves=6,
)


def _hints(section: str) -> dict[str, Any]:
    if section in ("train", "pretrain"):
        cls = TrainConfig if section == "train" else PretrainConfig
        hints = typing.get_type_hints(cls, include_extras=True)
        return {f.name: (hints[f.name], f.metadata.get("bound")) for f in dataclasses.fields(cls)}
    things = {"encoder": REG.encoders["scope-bert"], "head": REG.heads["debye"], "data": REG.datasets["cloud-cv"]}
    thing = things[section]
    return {k: (p.hint, split_annotated(p.hint)[1]) for k, p in (param_schema(section, thing) or {}).items()}


HINTS = {section: _hints(section) for section in SECTION_KEYS}


def plausible(hint: Any, bound: Bound | None) -> st.SearchStrategy[Any]:
    """Values of the declared type, mostly inside the bound (so that many configs are accepted)."""
    base, _ = split_annotated(hint)
    origin, args = typing.get_origin(base), typing.get_args(base)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return st.none() | st.one_of([plausible(a, bound) for a in inner])
    if origin is typing.Literal:
        return st.sampled_from(args)
    if base is bool:
        return st.booleans()
    lo = (bound.ge if bound and bound.ge is not None else bound.gt if bound and bound.gt is not None else 0)
    hi = (bound.le if bound and bound.le is not None else bound.lt if bound and bound.lt is not None else lo + 1000)
    if base is int:
        return st.integers(int(math.ceil(lo)), int(min(hi, lo + 1000)))
    if base is float:
        return st.floats(float(lo), float(hi), allow_nan=False)
    if base is str and bound is not None and bound.pattern:
        return st.sampled_from(["auto", "cpu", "cuda:3", "mps"])
    return values


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config with random values at real keys of random sections (and sometimes junk keys)."""
    cfg = {k: dict(v) for k, v in VALID.items() if k in ("encoder", "head") or draw(st.booleans())}
    for _ in range(draw(st.integers(1, 6))):
        section = draw(st.sampled_from(sorted(SECTION_KEYS)))
        key = draw(st.sampled_from(SECTION_KEYS[section]) | words)
        cfg.setdefault(section, dict(VALID[section]))
        if isinstance(cfg[section], dict):
            typed = key in HINTS[section] and draw(st.integers(0, 9)) < 7
            cfg[section][key] = draw(plausible(*HINTS[section][key]) if typed else values)
    if draw(st.integers(0, 9)) == 0:
        cfg[draw(st.sampled_from(sorted(SECTION_KEYS)))] = draw(values)
    return cfg


def _in_bounds(cfg: Config) -> None:
    for section in (cfg.train, cfg.pretrain):
        if section is not None:
            section.validate()  # re-validates every field against its bound
    for f in dataclasses.fields(cfg.train):
        v = getattr(cfg.train, f.name)
        assert not (isinstance(v, float) and not math.isfinite(v)), f.name


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
@example({"encoder": {"name": "scope-bert", "num_heads": 0}, "head": {"name": "debye"}})
@example({"encoder": {"name": "scope-bert", "hidden_size": 2**70}, "head": {"name": "debye"}})
@example({"encoder": {"name": "scope-bert"}, "head": {"name": "debye", "order": [1]}})
@example({"encoder": {"name": "scope-bert"}, "head": {"name": "debye"}, "pretrain": {"sources": [[]]}})
def test_random_configs_give_a_config_or_a_config_error(raw: dict[str, Any]) -> None:
    _property(raw)


@pytest.mark.slow
@pytest.mark.soak
@settings(max_examples=20_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(configs())
def test_random_configs_slow_run(raw: dict[str, Any]) -> None:
    _property(raw)


def _property(raw: dict[str, Any]) -> None:
    try:
        cfg = load_config(raw)
    except ConfigError as exc:
        assert str(exc) and "\n" not in str(exc), str(exc)
        event("refused with ConfigError")
        return
    event("accepted")
    assert isinstance(cfg, Config)
    _in_bounds(cfg)
    assert load_config(cfg.to_dict()) == cfg


yaml_docs = st.lists(
    st.sampled_from(["encoder:", "  name: scope-bert", "head: {name: debye}", "train:", "  epochs: 010",
                     "  lr: 1:30", "  device: on", "  epochs: 2", "train: {lr: .nan}", "- a", "  - b", ": x",
                     "{", "]", "&a x", "*a", "!!python/name:os.system", "  num_heads: 3", "encoder: {name: x}",
                     "  seed: 0x10", "\t", "key: 'unclosed", "? complex", "  batch_size: yes"]),
    max_size=8,
).map("\n".join)


@settings(max_examples=200, deadline=None)
@given(yaml_docs)
def test_random_yaml_files_give_a_config_or_a_config_error(tmp_path_factory: Any, text: str) -> None:
    path = Path(tmp_path_factory.mktemp("c")) / "c.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        read_config_file(path)
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc), str(exc)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=20) | st.sampled_from(["train.lr=1:30", "train.epochs=010", "a.b={x: 1, x: 2}",
                                                        "train.device=gpu", "encoder.num_heads=7", "x=1"]), max_size=3))
def test_random_overrides_give_a_config_or_a_config_error(overrides: list[str]) -> None:
    try:
        load_config(VALID | {"pretrain": None}, overrides=overrides)
    except ConfigError as exc:
        assert "\n" not in str(exc), str(exc)
