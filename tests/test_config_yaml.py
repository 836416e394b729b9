"""Strict config reading: YAML 1.2 core scalars, repeated keys refused (YAML, TOML, JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys.config import load_config, parse_override, read_config_file
from cloudphys.config.yaml12 import StrictLoader, load_yaml
from cloudphys.errors import ConfigError

BASE = "encoder: {name: scope-bert, hidden_size: 32, num_layers: 1, num_heads: 2}\nhead: {name: debye}\n"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("010", 10),  # YAML 1.1: octal 8
        ("0o10", 8),
        ("0x10", 16),
        ("1:30", "1:30"),  # YAML 1.1: sexagesimal 90
        ("190:20:30", "190:20:30"),
        ("yes", "yes"), ("no", "no"), ("on", "on"), ("off", "off"), ("y", "y"),  # YAML 1.1: booleans
        ("true", True), ("False", False),
        ("1e-3", 1e-3), ("1.0e-4", 1e-4), ("+5", 5), ("-.5", -0.5),  # YAML 1.1: '1e-3' is a string
        ("1_000", "1_000"),  # YAML 1.1: 1000
        ("2001-12-14", "2001-12-14"),  # YAML 1.1: a date
        ("~", None), ("null", None), ("", None),
        ("'010'", "010"),
    ],
)
def test_scalars_follow_the_yaml_1_2_core_schema(text: str, value: object) -> None:
    assert load_yaml(f"a: {text}") == {"a": value}
    if text:
        assert parse_override(f"train.x={text}")[1] == value


def test_the_global_yaml_resolvers_are_untouched() -> None:
    load_yaml("a: 010")
    assert yaml.safe_load("a: 010") == {"a": 8} and yaml.safe_load("a: yes") == {"a": True}
    assert StrictLoader.yaml_implicit_resolvers is not yaml.SafeLoader.yaml_implicit_resolvers


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (BASE + "train: {epochs: 1}\nhead: {name: direct}\n", r"key 'head' is given twice \(lines 2 and 4\)"),
        (BASE + "train:\n  epochs: 1\n  lr: 1.0e-3\n  epochs: 2\n",
         r"key 'epochs' in train is given twice \(lines 4 and 6\)"),
        (BASE + "pretrain:\n  sources:\n    - {name: a, split: x, split: y}\n",
         r"key 'split' in pretrain.sources\[0\] is given twice \(lines 5 and 5\)"),
    ],
)
def test_a_repeated_key_at_any_level_names_the_key_and_both_lines(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle) as info:
        load_config(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_a_repeated_key_in_an_override_value_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"override .*key 'a' is given twice"):
        parse_override("data.x={a: 1, a: 2}")


def test_toml_and_json_refuse_repeated_keys(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[train]\nepochs = 1\n[head]\nname = "debye"\n[train]\nlr = 0.1\n')
    with pytest.raises(ConfigError, match=r"a\.toml.*line 5.*\[train\]"):
        read_config_file(tmp_path / "a.toml")
    (tmp_path / "b.toml").write_text('[train]\nepochs = 1\nepochs = 2\n')
    with pytest.raises(ConfigError, match=r"b\.toml.*line 3.*'epochs = 2' repeats a key"):
        read_config_file(tmp_path / "b.toml")
    (tmp_path / "c.json").write_text('{"train": {"epochs": 1, "epochs": 2}}')
    with pytest.raises(ConfigError, match=r"c\.json.*key 'epochs' is given twice"):
        read_config_file(tmp_path / "c.json")


def test_yaml_1_1_surprises_reach_the_schema_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "train: {group_by_length: yes}\n")
    with pytest.raises(ConfigError, match="train.group_by_length must be true or false, got 'yes'"):
        load_config(path)
    path.write_text(BASE + "train: {seed: 010, lr: 1e-3}\n")
    cfg = load_config(path)
    assert cfg.train.seed == 10 and cfg.train.lr == 1e-3


def test_parse_errors_are_one_line_with_the_position(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "train: {epochs: [1,\n")
    with pytest.raises(ConfigError, match=r"cannot parse config .*c\.yaml: .*line \d+, column \d+") as info:
        read_config_file(path)
    assert "\n" not in str(info.value)


keys = st.text(st.characters(codec="ascii", categories=("Ll", "Nd")), min_size=1, max_size=4)
printable = st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=8)
scalars = (st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
           | printable)
trees = st.recursive(scalars, lambda c: st.lists(c, max_size=3) | st.dictionaries(keys, c, max_size=3), max_leaves=12)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(keys, trees, max_size=4))
def test_what_json_dumps_the_strict_loader_reads_back(data: dict) -> None:
    # JSON is YAML 1.2: every JSON document must read back unchanged
    assert load_yaml(json.dumps(data, ensure_ascii=False)) == data


tricky = st.sampled_from(["1e3", "0o10", "0x1F", "010", "1:30", "yes", "No", "on", "~", "null", "", ".5", "+1", "-.inf",
                          ".NaN", "true", "2001-12-14", "1_000", "<<", "=", "a: b", "- x", "#c"])
strings = tricky | st.text(st.characters(categories=("L", "N", "P", "S", "Zs")), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(strings, st.recursive(strings | scalars, lambda c: st.lists(c, max_size=3), max_leaves=6),
                       max_size=5))
def test_dump_yaml_round_trips_through_the_strict_loader(data: dict) -> None:
    from cloudphys.config.yaml12 import dump_yaml

    assert load_yaml(dump_yaml(data)) == data


def test_a_dumped_config_keeps_strings_that_look_like_numbers(tmp_path: Path) -> None:
    cfg = load_config(yaml.safe_load(BASE) | {"pretrain": {"sources": [{"path": "1e3"}, {"path": "0o10"}]}})
    cfg.dump(tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == cfg and [s["path"] for s in again.pretrain.sources] == ["1e3", "0o10"]
