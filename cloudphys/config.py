"""Run configuration: YAML/TOML → validated, typed objects; ``key.sub=value`` overrides.

A config has up to five sections::

    encoder:  {name: scope-bert, hidden_size: 256, num_layers: 4, num_heads: 4}
    head:     {name: debye, observables: [cv]}
    data:     {name: cloud-cv, temperature: 300}
    train:    {epochs: 200, lr: 1.0e-4, batch_size: 64, device: auto, seed: 0}
    pretrain: {sources: [{name: cloud-pretrain}], epochs: 5}      # optional, MLM

``encoder``, ``head`` and ``data`` name a plugin (resolved through the registry) and pass the
remaining keys as its parameters; ``train`` and ``pretrain`` are fixed schemas
(:class:`TrainConfig`, :class:`PretrainConfig`). Every unknown key or plugin name raises
:class:`~cloudphys.errors.ConfigError` naming it and listing the valid choices.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import sys
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

from .errors import ConfigError, PluginError

__all__ = [
    "Config",
    "PluginSection",
    "TrainConfig",
    "PretrainConfig",
    "load_config",
    "read_config_file",
    "apply_overrides",
    "parse_override",
]

SECTIONS = ("encoder", "head", "data", "train", "pretrain")


@dataclass
class PluginSection:
    """A section that names a plugin: ``name`` plus its keyword ``params``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **copy.deepcopy(self.params)}


@dataclass
class TrainConfig:
    """The ``train:`` section (supervised fine-tuning).

    :param epochs: maximum number of passes over the training split.
    :param batch_size: global batch size (split over DDP ranks).
    :param eval_batch_size: batch size for validation / evaluation / prediction.
    :param lr: peak learning rate of AdamW.
    :param latent_lr: peak learning rate of the latent layer (default: ``lr``).
    :param weight_decay: AdamW weight decay (not applied to biases and LayerNorm).
    :param warmup: fraction of the optimizer steps spent in linear warm-up (then cosine decay).
    :param grad_clip: maximum gradient norm (0: no clipping).
    :param patience: stop after this many epochs without a better validation loss (0: never).
    :param loss: ``l1``, ``mse`` or ``huber`` on per-atom values divided by the training spread.
    :param device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``...
    :param precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
    :param seed: seeds shuffling, dropout and initialisation (the global RNG is restored after).
    :param group_by_length: batch strings of similar token length together (less padding).
    :param limit: use only the first ``limit`` training examples (smoke tests).
    :param max_steps: stop after this many optimizer steps (smoke tests; 0: no limit).
    :param progress: show a progress bar (``auto``: when stderr is a terminal).
    :param num_threads: torch CPU threads during training (``None``: leave as is).
    :param ensemble: train this many models with seeds ``seed, seed+1, ...`` (run directories
        ``member-K/``) whose latents are averaged at prediction (see :mod:`cloudphys.training.ensemble`).
    """

    epochs: int = 100
    batch_size: int = 64
    eval_batch_size: int = 256
    lr: float = 1.0e-4
    latent_lr: float | None = None
    weight_decay: float = 0.01
    warmup: float = 0.05
    grad_clip: float = 1.0
    patience: int = 20
    loss: str = "l1"
    device: str = "auto"
    precision: str = "auto"
    seed: int = 0
    group_by_length: bool = True
    limit: int | None = None
    max_steps: int = 0
    progress: str = "auto"
    num_threads: int | None = None
    ensemble: int = 1

    def validate(self) -> None:
        _choice("train.loss", self.loss, ("l1", "mse", "huber"))
        _choice("train.precision", self.precision, ("auto", "fp32", "bf16"))
        _choice("train.progress", str(self.progress).lower(), ("auto", "true", "false"))
        for name in ("epochs", "batch_size", "eval_batch_size", "ensemble"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.warmup < 1:
            raise ConfigError(f"train.warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        _positive("train.lr", self.lr)
        if self.latent_lr is not None:
            _positive("train.latent_lr", self.latent_lr)
        _positive("train.weight_decay", self.weight_decay, zero=True)
        _positive("train.grad_clip", self.grad_clip, zero=True)


@dataclass
class PretrainConfig:
    """The ``pretrain:`` section (masked-language-model pretraining of the encoder).

    :param sources: unlabelled SCOPE strings: ``{name: DATASET, split: ..., **params}`` (a
        registered data set and its parameters, e.g. ``{name: corpus-csv, path: corpus.csv}`` for a
        data set that takes ``path``; labelled sets give their strings) or, without ``name``,
        ``{path: FILE.csv, column: COL}`` (a CSV's ``scope``/``cloud`` column, or a text file of one
        string a line).
    :param exclude: the same kind of entries whose strings are removed from the corpus (e.g. the
        test split of the benchmark you will fine-tune on).
    :param epochs, batch_size, lr, weight_decay, warmup, grad_clip, seed, device, precision,
        max_steps, progress, num_threads: as in :class:`TrainConfig`.
    :param mlm_probability: fraction of tokens masked (transformers' MLM collator).
    :param val_fraction: fraction of the corpus held out to report the MLM loss.
    """

    sources: list[dict[str, Any]] = field(default_factory=list)
    exclude: list[dict[str, Any]] = field(default_factory=list)
    epochs: int = 5
    batch_size: int = 128
    lr: float = 5.0e-4
    weight_decay: float = 0.01
    warmup: float = 0.05
    grad_clip: float = 1.0
    mlm_probability: float = 0.15
    val_fraction: float = 0.05
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"
    max_steps: int = 0
    progress: str = "auto"
    num_threads: int | None = None

    def validate(self) -> None:
        _choice("pretrain.precision", self.precision, ("auto", "fp32", "bf16"))
        if not self.sources:
            raise ConfigError("pretrain.sources is empty: list data sets ({name: ...}) or files ({path: ...})")
        for kind in ("sources", "exclude"):
            for i, src in enumerate(getattr(self, kind)):
                self.check_source(f"pretrain.{kind}[{i}]", src)
        if not 0 < self.mlm_probability < 1:
            raise ConfigError(f"pretrain.mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"pretrain.val_fraction must be in [0, 1), got {self.val_fraction}")
        _positive("pretrain.lr", self.lr)
        _positive("pretrain.weight_decay", self.weight_decay, zero=True)
        _positive("pretrain.grad_clip", self.grad_clip, zero=True)

    #: Keys of a file entry (one without ``name``).
    FILE_KEYS: typing.ClassVar[tuple[str, ...]] = ("path", "column")

    @classmethod
    def check_source(cls, what: str, src: Any, registry: Any = None) -> str:
        """Check one ``sources`` / ``exclude`` entry; return its kind, ``"dataset"`` or ``"file"``.

        ``{name: DATASET, ...}`` is a data set: every other key (``path`` included) is ``split`` or
        one of its parameters. ``{path: FILE, column: COL}`` (no ``name``) is a file. With
        ``registry``, a data set entry is also checked against the data set: its name, its split,
        its parameters (``path`` only where the data set takes one).

        :raises ConfigError: naming the entry and what is wrong with it.
        """
        if not isinstance(src, Mapping):
            raise ConfigError(f"{what} must be a mapping, {{name: DATASET, split: ..., **params}} or "
                              f"{{path: FILE, column: COL}}; got {src!r}")
        bad = [k for k in src if not isinstance(k, str)]
        if bad:
            raise ConfigError(f"{what}: keys must be strings, got {bad[0]!r}")
        if "name" not in src:
            if "path" not in src:
                raise ConfigError(f"{what} needs 'name' (a data set) or 'path' (a file of strings); got {src!r}")
            extra = sorted(k for k in src if k not in cls.FILE_KEYS)
            if extra:
                raise ConfigError(
                    f"{what}: a file entry (no 'name') takes only {', '.join(cls.FILE_KEYS)}, got {extra}; for a "
                    f"data set with parameters write {{name: DATASET, path: ..., ...}} (e.g. name: corpus-csv)"
                )
            for key in cls.FILE_KEYS:
                if key in src and src[key] is not None and not isinstance(src[key], str):
                    raise ConfigError(f"{what}.{key} must be a string, got {src[key]!r}")
            if not src["path"]:
                raise ConfigError(f"{what}.path must be a file, got {src['path']!r}")
            return "file"
        name = src["name"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{what}.name must be a data set name, got {name!r}")
        if "split" in src and not isinstance(src["split"], str):
            raise ConfigError(f"{what}.split must be a string, got {src['split']!r}")
        if "path" in src and (not isinstance(src["path"], str) or not src["path"]):
            raise ConfigError(f"{what}.path must be a file path (a string), got {src['path']!r}")
        if registry is None:
            return "dataset"
        if name not in registry.datasets:
            hint = " (for a file of strings, leave out 'name': {path: FILE})" if "path" in src else ""
            raise ConfigError(f"{what}: unknown data set {name!r}; available: "
                              f"{', '.join(sorted(registry.datasets)) or 'none'}{hint}")
        spec = registry.datasets[name]
        split = src.get("split", "train")
        splits = tuple(getattr(spec, "splits", ()) or ())
        if splits and split not in splits:
            raise ConfigError(f"{what}: data set {name!r} has no split {split!r}; available: {', '.join(splits)}")
        params = [k for k in src if k not in ("name", "split")]
        valid = _data_params(spec)
        if valid is not None:
            if "path" in params and "path" not in valid:
                with_path = sorted(n for n, s in registry.datasets.items() if "path" in (_data_params(s) or ()))
                raise ConfigError(
                    f"{what}: data set {name!r} takes no 'path' parameter, so {{name: {name}, path: ...}} is "
                    f"ambiguous; for a file of strings leave out 'name' ({{path: FILE, column: COL}}), or name a "
                    f"data set that reads a file ({', '.join(with_path) or 'none'})"
                )
            _unknown(f"{what} (data set {name!r})", params, valid | {"name", "split"})
        return "dataset"


@dataclass
class Config:
    """A validated run configuration."""

    encoder: PluginSection
    head: PluginSection
    data: PluginSection | None = None
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"encoder": self.encoder.to_dict(), "head": self.head.to_dict()}
        if self.data is not None:
            out["data"] = self.data.to_dict()
        out["train"] = dataclasses.asdict(self.train)
        if self.pretrain is not None:
            out["pretrain"] = dataclasses.asdict(self.pretrain)
        return out

    def dump(self, path: str | Path) -> None:
        """Write the config as YAML (or JSON for a ``.json`` path)."""
        path = Path(path)
        text = (
            json.dumps(self.to_dict(), indent=2)
            if path.suffix == ".json"
            else yaml.safe_dump(self.to_dict(), sort_keys=False)
        )
        path.write_text(text)


# -- reading -----------------------------------------------------------------------------
def read_config_file(path: str | Path) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``), TOML (``.toml``) or JSON file into a dict.

    :raises ConfigError: the file is missing, a folder, unreadable, not UTF-8, unparsable or not a
        mapping; the message names the file and the reason.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"cannot read config {path}: it is a folder, not a config file")
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"cannot read config {path}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start} "
            "cannot be decoded); save it as UTF-8"
        ) from exc
    except OSError as exc:  # permission denied, I/O error, ...
        raise ConfigError(f"cannot read config {path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        elif path.suffix == ".json":
            data = json.loads(text)
        else:
            data = yaml.safe_load(text)
    except Exception as exc:  # noqa: BLE001 - any parser error → ConfigError naming the file
        raise ConfigError(f"cannot parse config {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"config {path} must be a mapping of sections, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` → ``(["train", "lr"], 0.0003)`` (the value is read as YAML)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like key.sub=value")
    key, raw = text.split("=", 1)
    path = [p for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(f"override {text!r}: key must be section.key (e.g. train.lr), got {key!r}")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {text!r}: cannot read value: {exc}") from exc
    return path, _numeric(value)


def _numeric(value: Any) -> Any:
    """YAML 1.1 reads ``1e-3`` as a string; turn such strings into numbers."""
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """A deep copy of ``data`` with each ``key.sub=value`` override applied."""
    out = copy.deepcopy(dict(data))
    for text in overrides:
        path, value = parse_override(text)
        node: Any = out
        for i, key in enumerate(path[:-1]):
            nxt = node.get(key) if isinstance(node, dict) else None
            if nxt is None:
                nxt = node[key] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(f"override {text!r}: {'.'.join(path[: i + 1])} is not a section")
            node = nxt
        node[path[-1]] = value
    return out


# -- validation --------------------------------------------------------------------------
def _choice(what: str, value: Any, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ConfigError(f"{what}: unknown value {value!r}; valid: {', '.join(choices)}")


def _positive(what: str, value: float, zero: bool = False) -> None:
    """``value`` must be finite and > 0 (``zero``: >= 0); NaN never passes."""
    if not (math.isfinite(value) and (value >= 0 if zero else value > 0)):
        raise ConfigError(f"{what} must be a finite number {'>=' if zero else '>'} 0, got {value!r}")


def _unknown(what: str, keys: Iterable[str], valid: Iterable[str]) -> None:
    valid = sorted(valid)
    bad = [k for k in keys if k not in valid]
    if bad:
        raise ConfigError(f"unknown key{'s' if len(bad) > 1 else ''} {', '.join(map(repr, bad))} in {what}; valid: {', '.join(valid)}")


def _accepted(fn: Callable[..., Any], skip: Iterable[str] = ()) -> set[str] | None:
    """Keyword parameters ``fn`` accepts (``None``: it takes ``**kwargs``, accept anything)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return None
    names = set()
    for p in sig.parameters.values():
        if p.kind is p.VAR_KEYWORD:
            return None
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self":
            names.add(p.name)
    return names - set(skip)


def _typed(cls: type, what: str, raw: Mapping[str, Any]) -> Any:
    """Build dataclass ``cls`` from ``raw``, rejecting unknown keys and wrong types."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section {what!r} must be a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    _unknown(f"section {what!r}", raw, fields)
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in raw.items():
        kwargs[key] = _coerce(f"{what}.{key}", _numeric(value), hints[key])
    return cls(**kwargs)


def _coerce(what: str, value: Any, hint: Any) -> Any:
    args = typing.get_args(hint)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(what, value, a)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{what}: bad value {value!r}")
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{what} must be true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(f"{what} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if math.isnan(value):
                raise ConfigError(f"{what} must be a number, got NaN")
            return float(value)
        raise ConfigError(f"{what} must be a number, got {value!r}")
    if hint is str:
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (str, int, float)):
            return str(value)
        raise ConfigError(f"{what} must be a string, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{what} must be a list, got {value!r}")
        return list(value)
    return value


def _hints(fn: Any) -> dict[str, Any]:
    """Type hints of ``fn``'s parameters (empty if they cannot be resolved)."""
    try:
        return typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - unresolvable annotations: no type check
        return {}


def _plugin_section(
    what: str,
    raw: Any,
    table: Mapping[str, Any],
    accepted: Callable[[Any], set[str] | None],
    typed: Callable[[Any], Any] | None = None,
) -> PluginSection:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"section {what!r} must be a mapping with a 'name', got {raw!r}")
    if "name" not in raw:
        raise ConfigError(f"section {what!r} needs 'name'; available: {', '.join(sorted(table)) or 'none'}")
    name = raw["name"]
    if not isinstance(name, str) or name not in table:
        raise ConfigError(f"unknown {what} {name!r}; available: {', '.join(sorted(table)) or 'none'}")
    params = {k: v for k, v in raw.items() if k != "name"}
    bad_keys = [k for k in params if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"{what} {name!r}: keys must be strings, got {bad_keys[0]!r}")
    valid = accepted(table[name])
    if valid is not None:
        _unknown(f"{what} {name!r}", params, valid | {"name"})
    hints = _hints(typed(table[name])) if typed is not None else {}
    for key in params:
        if key in hints and key != "return":
            params[key] = _coerce(f"{what}.{key}", _numeric(params[key]), hints[key])
    return PluginSection(str(name), copy.deepcopy(params))


def _encoder_fn(factory: Any) -> Any:
    src = getattr(factory, "signature_source", None)
    return src() if callable(src) else factory


def _encoder_params(factory: Any) -> set[str] | None:
    return _accepted(_encoder_fn(factory), skip=("latents", "tokenizer"))


def _head_params(head_cls: Any) -> set[str] | None:
    return _accepted(head_cls.__init__)


def _data_params(spec: Any) -> set[str] | None:
    params = getattr(spec, "params", None)
    declared = set(params) if params else None
    loader = _accepted(spec.load, skip=("split",)) if callable(getattr(spec, "load", None)) else None
    if declared is None:
        return loader
    return declared | (loader or set())


def load_config(
    source: str | Path | Mapping[str, Any],
    overrides: Iterable[str] = (),
    registry: Any = None,
) -> Config:
    """Read (file or mapping), apply ``overrides`` and validate a config against ``registry``.

    :param source: path to a ``.yaml``/``.yml``/``.toml``/``.json`` file, or a mapping.
    :param overrides: ``key.sub=value`` strings (values read as YAML).
    :param registry: plugin registry (default: the process-wide one).
    :raises ConfigError: unknown section, key or plugin name (listing the valid ones), bad type.
    """
    data = read_config_file(source) if isinstance(source, (str, Path)) else dict(source)
    data = apply_overrides(data, overrides)
    if registry is None:
        from .plugins import get_registry

        registry = get_registry()
    _unknown("config", data, SECTIONS)
    for required in ("encoder", "head"):
        if required not in data:
            raise ConfigError(f"config needs an {required!r} section")
    encoder = _plugin_section("encoder", data["encoder"], registry.encoders, _encoder_params, _encoder_fn)
    head = _plugin_section("head", data["head"], registry.heads, _head_params, lambda cls: cls.__init__)
    dataset = None
    if data.get("data") is not None:
        dataset = _plugin_section("data", data["data"], registry.datasets, _data_params, lambda spec: getattr(spec, "load", None))
    train = _typed(TrainConfig, "train", data.get("train") or {})
    train.validate()
    pretrain = None
    if data.get("pretrain") is not None:
        pretrain = _typed(PretrainConfig, "pretrain", data["pretrain"])
        pretrain.validate()
    # Heads check their own parameters (e.g. observable names): fail now, not mid-run.
    try:
        registry.head(head.name)(**head.params)
    except PluginError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"head {head.name!r}: {exc}") from exc
    return Config(encoder=encoder, head=head, data=dataset, train=train, pretrain=pretrain)
