"""Every config value is checked before work starts: one-line ConfigError naming key, value, remedy."""

from __future__ import annotations

import copy
import dataclasses
import typing
from typing import Any, Literal

import pytest

from cloudphys.config import (
    Bound,
    PretrainConfig,
    RunOptions,
    TrainConfig,
    load_config,
    param_schema,
)
from cloudphys.config.coerce import split_annotated
from cloudphys.errors import ConfigError
from cloudphys.plugins import get_registry

BASE: dict[str, Any] = {
    "encoder": {"name": "scope-bert", "hidden_size": 32, "num_layers": 1, "num_heads": 2},
    "head": {"name": "debye", "observables": ["cv"]},
    "train": {"epochs": 1},
}
PRE = {"sources": [{"path": "corpus.csv"}]}


def _unbounded_ok(hint: Any) -> bool:
    """Types that need no numeric bound: bool, Literal choices, lists of entries, plain paths."""
    base, _ = split_annotated(hint)
    origin = typing.get_origin(base)
    return base is bool or origin is Literal or origin is list or base in (str | None,)


@pytest.mark.parametrize("cls", [RunOptions, TrainConfig, PretrainConfig])
def test_every_field_of_the_fixed_sections_has_a_bound_or_a_closed_type(cls: type) -> None:
    hints = typing.get_type_hints(cls, include_extras=True)
    for f in dataclasses.fields(cls):
        bound = f.metadata.get("bound")
        assert isinstance(bound, Bound) or _unbounded_ok(hints[f.name]), f"{cls.__name__}.{f.name} has no bound"


def test_every_numeric_parameter_of_the_built_in_encoder_has_a_bound() -> None:
    schema = param_schema("encoder", get_registry().encoders["scope-bert"])
    assert schema is not None and {"hidden_size", "num_heads", "dropout", "max_length"} <= set(schema)
    for name, p in schema.items():
        base, bound = split_annotated(p.hint)
        numeric = {int, float} & ({base} | set(typing.get_args(base)))
        assert bound is not None or not numeric, f"encoder.{name} has no bound"


BAD = [
    # (section, key, value, what the message must say)
    ("train", "epochs", 0, "train.epochs must be an integer >= 1"),
    ("train", "epochs", -3, "got -3"),
    ("train", "batch_size", 0, "train.batch_size must be an integer >= 1"),
    ("train", "batch_size", 10**12, "<= 1_048_576"),
    ("train", "eval_batch_size", -1, "train.eval_batch_size"),
    ("train", "lr", 0.0, "train.lr must be a finite number > 0 and <= 1, got 0.0"),
    ("train", "lr", 5.0, "learning rates are small positive numbers"),
    ("train", "lr", float("nan"), "train.lr must be a number, got NaN"),
    ("train", "lr", float("inf"), "train.lr must be a finite number"),
    ("train", "latent_lr", -1e-4, "train.latent_lr"),
    ("train", "weight_decay", -0.1, "train.weight_decay"),
    ("train", "warmup", 1.0, "train.warmup must be a finite number >= 0 and < 1"),
    ("train", "grad_clip", -1, "train.grad_clip"),
    ("train", "patience", -1, "train.patience must be an integer >= 0, got -1; 0 turns early stopping off"),
    ("train", "max_steps", -5, "train.max_steps must be an integer >= 0"),
    ("train", "limit", 0, "train.limit must be an integer >= 1"),
    ("train", "limit", -10, "train.limit"),
    ("train", "ensemble", 0, "train.ensemble must be an integer >= 1"),
    ("train", "ensemble", -2, "train.ensemble"),
    ("train", "num_threads", 0, "train.num_threads must be an integer >= 1"),
    ("train", "num_threads", -4, "train.num_threads"),
    ("train", "seed", -1, "train.seed"),
    ("train", "device", "gpu", "train.device: unknown value 'gpu'; use auto, cpu, cuda, cuda:N or mps"),
    ("train", "device", "cuda:one", "train.device"),
    ("train", "loss", "l3", "train.loss: unknown value 'l3'; valid: l1, mse, huber"),
    ("train", "precision", "fp16", "train.precision: unknown value 'fp16'; valid: auto, fp32, bf16"),
    ("train", "progress", "sometimes", "train.progress"),
    ("train", "group_by_length", "yes", "train.group_by_length must be true or false"),
    ("encoder", "hidden_size", 0, "encoder.hidden_size must be an integer >= 1"),
    ("encoder", "hidden_size", -64, "encoder.hidden_size"),
    ("encoder", "hidden_size", 33, "encoder.hidden_size=33 is not a multiple of encoder.num_heads=2; choose num_heads"),
    ("encoder", "num_heads", 3, "encoder.hidden_size=32 is not a multiple of encoder.num_heads=3"),
    ("encoder", "num_heads", 0, "encoder.num_heads must be an integer >= 1"),
    ("encoder", "num_layers", 0, "encoder.num_layers must be an integer >= 1"),
    ("encoder", "intermediate_size", -1, "encoder.intermediate_size"),
    ("encoder", "dropout", 1.0, "encoder.dropout must be a finite number >= 0 and < 1, got 1.0"),
    ("encoder", "dropout", -0.1, "encoder.dropout"),
    ("encoder", "dropout", 2, "encoder.dropout"),
    ("encoder", "max_length", 10**9, "encoder.max_length must be an integer >= 3 and <= 8192, got 1000000000; SCOPE"),
    ("encoder", "max_length", 0, "encoder.max_length"),
    ("encoder", "latent_mlp", -1, "encoder.latent_mlp"),
    ("encoder", "pooling", "max", "encoder.pooling: unknown value 'max'; valid: cls, mean"),
    ("pretrain", "mlm_probability", 0.0, "pretrain.mlm_probability must be a finite number > 0 and < 1"),
    ("pretrain", "mlm_probability", 1.5, "pretrain.mlm_probability"),
    ("pretrain", "val_fraction", 1.0, "pretrain.val_fraction"),
    ("pretrain", "epochs", 0, "pretrain.epochs must be an integer >= 1"),
    ("pretrain", "lr", 10.0, "pretrain.lr"),
    ("pretrain", "batch_size", -1, "pretrain.batch_size"),
    ("pretrain", "max_steps", -1, "pretrain.max_steps"),
    ("pretrain", "num_threads", 0, "pretrain.num_threads"),
]


@pytest.mark.parametrize(("section", "key", "value", "needle"), BAD, ids=[f"{s}.{k}={v!r}" for s, k, v, _ in BAD])
def test_out_of_range_values_are_refused_with_key_value_and_remedy(section: str, key: str, value: Any,
                                                                   needle: str) -> None:
    raw = copy.deepcopy(BASE)
    if section == "pretrain":
        raw["pretrain"] = dict(PRE)
    raw.setdefault(section, {})[key] = value
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    msg = str(info.value)
    assert needle in msg and "\n" not in msg, msg


def test_the_same_bounds_hold_for_overrides_and_objects_built_in_python() -> None:
    with pytest.raises(ConfigError, match="train.batch_size must be an integer >= 1"):
        load_config(BASE, overrides=["train.batch_size=0"])
    with pytest.raises(ConfigError, match="train.patience"):
        TrainConfig(patience=-1).validate()
    with pytest.raises(ConfigError, match="train.loss: unknown value 'l9'"):
        TrainConfig(loss="l9").validate()  # type: ignore[arg-type]


def test_values_at_the_edges_of_their_bounds_are_accepted() -> None:
    raw = copy.deepcopy(BASE)
    raw["train"].update(lr=1.0, warmup=0.0, patience=0, max_steps=0, limit=1, num_threads=1, seed=2**32 - 1,
                        device="cuda:1", grad_clip=0.0, weight_decay=0.0)
    raw["encoder"].update(dropout=0.0, max_length=3, hidden_size=2, num_heads=2, latent_mlp=0)
    cfg = load_config(raw)
    assert cfg.train.seed == 2**32 - 1 and cfg.encoder.params["max_length"] == 3


def test_pretrain_and_train_share_one_definition_of_the_common_options() -> None:
    common = {f.name for f in dataclasses.fields(RunOptions)}
    assert len(common) == 12
    for cls in (TrainConfig, PretrainConfig):
        assert issubclass(cls, RunOptions) and common <= {f.name for f in dataclasses.fields(cls)}
    # other defaults, same bounds
    assert PretrainConfig().epochs == 5 and TrainConfig().epochs == 100
    bound = {c: next(f for f in dataclasses.fields(c) if f.name == "lr").metadata["bound"]
             for c in (TrainConfig, PretrainConfig)}
    assert bound[TrainConfig] == bound[PretrainConfig]


def test_a_head_whose_constructor_raises_anything_is_a_config_error() -> None:
    from cloudphys.physics.debye import DebyeHead

    class Broken(DebyeHead):
        name = "broken-head"

        def __init__(self, observables: Any = None) -> None:
            raise RuntimeError("cannot build")

    class Reg:
        def __init__(self) -> None:
            real = get_registry()
            self.encoders, self.datasets = real.encoders, real.datasets
            self.heads = {**real.heads, "broken-head": Broken}

        def head(self, name: str) -> type:
            return self.heads[name]

    raw = copy.deepcopy(BASE)
    raw["head"] = {"name": "broken-head"}
    with pytest.raises(ConfigError, match="head 'broken-head': RuntimeError: cannot build"):
        load_config(raw, registry=Reg())


def test_docs_config_md_holds_the_bounds_table_generated_from_the_schema() -> None:
    from pathlib import Path

    from cloudphys.config.table import bounds_markdown

    page = (Path(__file__).resolve().parents[1] / "docs" / "config.md").read_text(encoding="utf-8")
    assert bounds_markdown() in page, "docs/config.md is out of date: paste the output of python -m cloudphys.config"


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"name": "cloud-cv", "seed": -1}, "data.seed must be an integer >= 0"),
        ({"name": "cloud-cv", "valid_size": 5}, "data.valid_size must be a finite number >= 0 and < 1, got 5.0"),
        ({"name": "cloud-cv", "temperature": -300}, "data.temperature must be a finite number >= 0"),
        ({"name": "phonondb-thermo", "temperatures": [300, -5]},
         "data.temperatures[1] must be a finite number >= 0 and <= 9.22e+18, got -5.0"),
        ({"name": "phonondb-thermo", "temperature_range": [20, float("inf")]},
         "data.temperature_range[1] must be a finite number"),
        ({"name": "phonondb-thermo", "limit": 0}, "data.limit must be an integer >= 1"),
        ({"name": "phonondb-thermo", "workers": 0}, "data.workers must be an integer >= 1"),
        ({"name": "csv", "symprec": 0}, "data.symprec must be a finite number > 0"),
        ({"name": "thermo-jsonl", "test_size": 1.0}, "data.test_size"),
    ],
)
def test_data_set_parameters_have_bounds_in_their_signatures(data: dict[str, Any], needle: str) -> None:
    raw = copy.deepcopy(BASE) | {"data": data}
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert needle in str(info.value), str(info.value)


def test_bounded_types_for_plugin_authors() -> None:
    from cloudphys.config.bounds import Count, Fraction, Kelvin, Seed, Tolerance, Workers
    from cloudphys.config.coerce import coerce

    assert coerce("x", "0.5", Fraction) == 0.5 and coerce("x", 3, Seed) == 3
    assert coerce("x", [1, 2], list[Kelvin]) == [1.0, 2.0]
    for hint, bad in ((Count, 0), (Workers, -1), (Tolerance, 2.0), (Kelvin, -1.0), (Seed, 2**32)):
        with pytest.raises(ConfigError):
            coerce("x", bad, hint)


def test_pretraining_sources_check_data_set_parameters_too() -> None:
    reg = get_registry()
    kind = PretrainConfig.check_source("pretrain.sources[0]", {"name": "cloud-pretrain", "holdout": 0.1}, reg)
    assert kind == "dataset"
    with pytest.raises(ConfigError, match=r"pretrain.sources\[0\].seed must be an integer >= 0 and <= 4_294_967_295"):
        PretrainConfig.check_source("pretrain.sources[0]", {"name": "cloud-pretrain", "seed": -1}, reg)
    with pytest.raises(ConfigError, match=r"pretrain.exclude\[1\].holdout"):
        PretrainConfig.check_source("pretrain.exclude[1]", {"name": "cloud-pretrain", "holdout": 2}, reg)


@pytest.mark.parametrize("source", [[1, 2], 3, None, b"train: {}"])
def test_a_config_that_is_neither_a_path_nor_a_mapping_is_a_config_error(source: Any) -> None:
    with pytest.raises(ConfigError, match="a config is a path or a mapping of sections"):
        load_config(source)


@pytest.mark.parametrize("order", [1, 0, -3, 100_000])
def test_a_head_parameter_bound_in_its_signature_is_checked(order: int) -> None:
    raw = copy.deepcopy(BASE) | {"head": {"name": "debye", "order": order}}
    with pytest.raises(ConfigError, match=rf"head.order must be an integer >= 2 and <= 1024, got {order}"):
        load_config(raw)


@pytest.mark.parametrize("value", [1e300, "x" * 500, list(range(1000))])
def test_messages_stay_short_for_huge_values(value: Any) -> None:
    raw = copy.deepcopy(BASE)
    raw["train"]["epochs"] = value
    with pytest.raises(ConfigError) as info:
        load_config(raw)
    assert "train.epochs" in str(info.value) and len(str(info.value)) < 200
