"""Config loading: YAML/TOML, typed sections, errors naming the bad key, overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from cloudphys.config import (
    Config,
    TrainConfig,
    apply_overrides,
    load_config,
    parse_override,
)
from cloudphys.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

YAML = """
encoder: {name: scope-bert, hidden_size: 64, num_layers: 2, num_heads: 2}
head: {name: debye, observables: [cv]}
data: {name: cloud-cv, temperature: 300}
train: {epochs: 3, lr: 1.0e-3, batch_size: 8, seed: 1}
"""

TOML = """
[encoder]
name = "scope-bert"
hidden_size = 64
num_layers = 2
num_heads = 2
[head]
name = "debye"
observables = ["cv"]
[data]
name = "cloud-cv"
temperature = 300
[train]
epochs = 3
lr = 1.0e-3
batch_size = 8
seed = 1
"""


def test_yaml_and_toml_give_the_same_typed_config(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(YAML)
    (tmp_path / "a.toml").write_text(TOML)
    a, b = load_config(tmp_path / "a.yaml"), load_config(tmp_path / "a.toml")
    assert isinstance(a, Config) and isinstance(a.train, TrainConfig)
    assert a.to_dict() == b.to_dict()
    assert a.train.lr == 1e-3 and a.train.epochs == 3 and a.train.seed == 1
    assert a.encoder.name == "scope-bert" and a.encoder.params["hidden_size"] == 64
    assert a.data is not None and a.data.params == {"temperature": 300}


@pytest.mark.parametrize(
    "patch, needle",
    [
        ({"optimizer": {}}, ["'optimizer'", "encoder", "train"]),
        ({"train": {"epochz": 3}}, ["'epochz'", "epochs", "batch_size"]),
        ({"encoder": {"name": "scope-bert", "hiden_size": 3}}, ["'hiden_size'", "hidden_size"]),
        ({"encoder": {"name": "gpt"}}, ["'gpt'", "scope-bert"]),
        ({"head": {"name": "debey"}}, ["'debey'", "debye", "direct"]),
        ({"head": {"name": "debye", "order": 20, "colour": 1}}, ["'colour'", "observables"]),
        ({"data": {"name": "cloud-cvv"}}, ["'cloud-cvv'", "cloud-cv"]),
        ({"data": {"name": "cloud-cv", "temp": 300}}, ["'temp'", "temperature"]),
        ({"train": {"epochs": "many"}}, ["train.epochs", "integer"]),
        ({"train": {"loss": "l3"}}, ["'l3'", "huber"]),
        ({"head": {"name": "debye", "observables": ["cp"]}}, ["'cp'", "cv"]),
    ],
)
def test_errors_name_the_key_and_list_valid_choices(patch: dict, needle: list[str]) -> None:
    import yaml

    data = yaml.safe_load(YAML)
    data.update(patch)
    with pytest.raises(ConfigError) as info:
        load_config(data)
    for n in needle:
        assert n in str(info.value), (n, str(info.value))


def test_overrides() -> None:
    assert parse_override("train.lr=3e-4") == (["train", "lr"], 3e-4)
    assert parse_override("data.temperature_range=[20, 1000]") == (["data", "temperature_range"], [20, 1000])
    assert parse_override("train.progress=false") == (["train", "progress"], False)
    import yaml

    cfg = load_config(yaml.safe_load(YAML), overrides=["train.lr=2e-4", "encoder.num_layers=1", "train.limit=10"])
    assert cfg.train.lr == 2e-4 and cfg.encoder.params["num_layers"] == 1 and cfg.train.limit == 10
    with pytest.raises(ConfigError, match="key.sub=value"):
        parse_override("train.lr")
    with pytest.raises(ConfigError, match="'nope'"):
        load_config(yaml.safe_load(YAML), overrides=["train.nope=1"])
    assert apply_overrides({"a": {"b": 1}}, ["a.c.d=2"]) == {"a": {"b": 1, "c": {"d": 2}}}


def test_shipped_configs_validate() -> None:
    files = sorted((REPO / "configs").glob("*.yaml")) + sorted((REPO / "configs").glob("*.toml"))
    assert len(files) >= 4
    from cloudphys.plugins import get_registry

    for f in files:
        cfg = load_config(f)
        assert cfg.head.name in get_registry().heads  # configs/ may use plugin heads (phonon-dos)


def test_dump_round_trip(tmp_path: Path) -> None:
    import yaml

    cfg = load_config(yaml.safe_load(YAML))
    cfg.dump(tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml").to_dict() == cfg.to_dict()


def test_the_shipped_geo_recipe_is_its_held_out_counterpart_plus_the_val_materials() -> None:
    """configs/phonondb-dos-geo.yaml (the final fit) and configs/phonondb-dos-geo-heldout.yaml (where its
    choices are made, whose calibration it ships) differ only in the val entry and early stopping."""
    from pathlib import Path

    from cloudphys.config import load_config

    root = Path(__file__).resolve().parents[1] / "configs"
    final = load_config(root / "phonondb-dos-geo.yaml").to_dict()
    held = load_config(root / "phonondb-dos-geo-heldout.yaml").to_dict()
    val_entries = [e for e in final["train"]["extra_data"] if e.get("split") == "val"]
    assert len(val_entries) == 1 and val_entries[0]["name"] == final["data"]["name"]
    assert final["train"]["patience"] == 0 and held["train"]["patience"] > 0
    assert not any(e.get("split") == "val" for e in held["train"]["extra_data"])
    for cfg in (final, held):
        cfg["train"]["extra_data"] = [e for e in cfg["train"]["extra_data"] if e.get("split") != "val"]
        cfg["train"].pop("patience")
    assert final == held
