"""The config schema: typed dataclasses with each field's default and :class:`~.bounds.Bound`.

``train:`` and ``pretrain:`` share their optimisation and runtime options through
:class:`RunOptions`; ``encoder:``, ``head:`` and ``data:`` name a plugin (:class:`PluginSection`)
whose parameters are checked against the plugin's own signature (:mod:`.plugin_params`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from ..bounds import MAX_LOSS_WEIGHT, Bound, option
from ..errors import ConfigError
from .section import PluginSection
from .validate import check_fields, check_source
from .yaml12 import dump_yaml

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["DEVICE_PATTERN", "SECTIONS", "Config", "PluginSection", "PretrainConfig", "RunOptions", "TrainConfig"]

SECTIONS = ("encoder", "head", "data", "train", "pretrain")

#: Device names a config may give (availability of CUDA is checked when the run starts).
DEVICE_PATTERN = r"auto|cpu|mps|cuda(:[0-9]+)?"

_LR = {"gt": 0, "le": 1, "remedy": "learning rates are small positive numbers such as 1e-4"}
_BATCH = {"ge": 1, "le": 1 << 20, "remedy": "give a positive number of examples, e.g. 64"}


@dataclass
class RunOptions:
    """Options ``train:`` and ``pretrain:`` share (optimiser schedule and runtime).

    :param epochs: maximum number of passes over the training data.
    :param batch_size: global batch size (split over DDP ranks).
    :param lr: peak learning rate of AdamW (per step, dimensionless).
    :param weight_decay: AdamW weight decay (not applied to biases and LayerNorm).
    :param warmup: fraction of the optimizer steps spent in linear warm-up (then cosine decay).
    :param grad_clip: maximum gradient norm (0: no clipping).
    :param seed: seeds shuffling, dropout and initialisation (the global RNG is restored after).
    :param device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``.
    :param precision: ``auto`` (bf16 autocast on CUDA, fp32 on CPU), ``fp32`` or ``bf16``.
    :param max_steps: stop after this many optimizer steps (smoke tests; 0: no limit).
    :param progress: show a progress bar (``auto``: when stderr is a terminal).
    :param num_threads: torch CPU threads during the run (``None``: leave as is).
    """

    epochs: int = option(100, ge=1, le=1_000_000, remedy="give a positive number of epochs")
    batch_size: int = option(64, **_BATCH)
    lr: float = option(1.0e-4, **_LR)
    weight_decay: float = option(0.01, ge=0, le=1, remedy="AdamW weight decay is usually 0 to 0.1")
    warmup: float = option(0.05, ge=0, lt=1, remedy="warmup is a fraction of the optimizer steps")
    grad_clip: float = option(1.0, ge=0, le=1e6, remedy="0 turns clipping off")
    seed: int = option(0, ge=0, le=2**32 - 1, remedy="seeds are integers from 0 to 2**32 - 1")
    device: str = option("auto", pattern=DEVICE_PATTERN, remedy="use auto, cpu, cuda, cuda:N or mps")
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    max_steps: int = option(0, ge=0, le=10**12, remedy="0 means no limit")
    progress: Literal["auto", "true", "false"] = "auto"
    num_threads: int | None = option(None, ge=1, le=4096, remedy="give a positive thread count or null to leave it")

    def validate(self) -> None:
        """Check every field against its bound (:class:`~cloudphys.errors.ConfigError`)."""
        check_fields(self, self.SECTION)

    SECTION: ClassVar[str] = "run"


def _like(name: str, default: Any) -> Any:
    """Field ``name`` of :class:`RunOptions` with another default (same bound)."""
    bound: Bound | None = RunOptions.__dataclass_fields__[name].metadata.get("bound")
    return option(default, **dataclasses.asdict(bound)) if bound else option(default)


@dataclass
class TrainConfig(RunOptions):
    """The ``train:`` section (supervised fine-tuning); shared options in :class:`RunOptions`.

    :param eval_batch_size: batch size for validation / evaluation / prediction.
    :param latent_lr: peak learning rate of the latent layer (default: ``lr``).
    :param patience: stop after this many epochs without a better validation loss (0: never).
    :param loss: ``l1``, ``mse`` or ``huber`` on per-atom values divided by the training spread.
    :param group_by_length: batch strings of similar token length together (less padding).
    :param limit: use only the first ``limit`` training examples (smoke tests).
    :param ensemble: train this many models with seeds ``seed, seed+1, ...`` (run directories
        ``member-K/``) whose latents are averaged at prediction (see :mod:`cloudphys.training.ensemble`).
    :param init_from: a trained run or model directory whose encoder and head weights this run
        starts from (fine-tuning a model trained on another data set: same encoder sizes, head and
        tokenizer; an ensemble run gives member ``k`` of this ensemble its member ``k`` modulo its
        size). Supersedes ``encoder.pretrained``.
    :param exclude: entries like ``pretrain.exclude`` (``{name: cloud-cv, split: test}``, ``{path:
        FILE}``): training and validation examples whose canonical SCOPE string equals one of
        theirs are left out (the leakage rule; the counts are recorded in the model's metadata).
    :param extra_data: labelled data sets added to the training split (never to validation):
        ``{name: DATASET, split: train, **params}`` on the same temperature grid and SCOPE dialect
        (e.g. phonondb-thermo's Cv at 300 K beside CLOUD's, one encoder and one head).
    :param dos_smoothness: weight of a smoothness prior on the head's phonon density of states
        (:func:`cloudphys.training.losses.dos_roughness`) added to the training loss (0: none; needs a
        head with ``has_density_of_states``).
    :param dos_weight: weight of the phonon-DOS term added to the training loss where a material has a
        DOS label (``Examples.dos``): the Wasserstein-1 distance per mode, in THz, between the head's
        DOS and the label (:func:`cloudphys.training.losses.dos_w1`; 0: none; needs a head with
        ``dos_histogram``, e.g. ``phonon-dos``). Validation and early stopping use the curves' loss.
    :param parallel_members: train up to this many ensemble members at once, each in its own process
        (CPU: give each ``num_threads`` threads so that ``parallel_members × num_threads`` fits the cores);
        the members are the same as trained one after the other.
    :param loss_weights: relative weights of the observables in the loss, e.g. ``{cv: 2}``
        (unlisted observables weigh 1; the loss is the weighted mean, in training and validation).
    :param ema: decay of an exponential moving average of the weights (0: none), e.g. 0.999;
        validation, the best checkpoint and the trained model use the average
        (:mod:`cloudphys.training.ema`).
    :param formula_weight: exponent α of a per-example weight in the training loss: an example whose
        composition (that of its parsed SCOPE record, which polymorphs share) occurs in m
        training examples weighs m^-α, normalised to mean 1 (:func:`cloudphys.training.batching.formula_weights`).
        0 (the default): every example weighs the same; 1: every composition weighs the same, so a
        family of many polytypes (phonondb's 113 CdI2 in the train split) does not outweigh the rest.
        Validation and early stopping stay unweighted.
    """

    SECTION: ClassVar[str] = "train"

    eval_batch_size: int = option(256, **_BATCH)
    latent_lr: float | None = option(None, **_LR)
    patience: int = option(20, ge=0, remedy="0 turns early stopping off")
    loss: Literal["l1", "mse", "huber"] = "l1"
    group_by_length: bool = True
    limit: int | None = option(None, ge=1, remedy="give a positive number of examples or null for all")
    ensemble: int = option(1, ge=1, le=1024, remedy="give the number of models, 1 for a single model")
    init_from: str | None = None
    exclude: list[Any] = field(default_factory=list)
    extra_data: list[Any] = field(default_factory=list)
    ema: float = option(0.0, ge=0, lt=1, remedy="0 turns the weight average off; e.g. 0.999")
    dos_smoothness: float = option(
        0.0, ge=0, le=MAX_LOSS_WEIGHT, remedy="0 turns the prior off; e.g. 0.01 (weight x loss stays finite)")
    dos_weight: float = option(
        0.0, ge=0, le=MAX_LOSS_WEIGHT, remedy="0 turns the DOS term off; e.g. 0.03 (weight x loss stays finite)")
    parallel_members: int = option(1, ge=1, le=1024, remedy="1 trains the members one after the other")
    formula_weight: float = option(0.0, ge=0, le=1, remedy="0 weighs every example the same; 1 every composition")
    loss_weights: dict[str, float] = option(
        factory=dict, ge=0, le=MAX_LOSS_WEIGHT,
        remedy="weights are relative, e.g. {cv: 2} (weight x loss must stay finite in float32)")

    def validate(self) -> None:
        super().validate()
        for i, entry in enumerate(self.extra_data):
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                raise ConfigError(f"train.extra_data[{i}] must be a mapping with the 'name' of a labelled data set "
                                  f"(and its split and parameters), got {entry!r}")
        if self.init_from is not None and not str(self.init_from).strip():
            raise ConfigError("train.init_from is empty: give a trained run directory or null")
        for i, src in enumerate(self.exclude):
            PretrainConfig.check_source(f"train.exclude[{i}]", src)


@dataclass
class PretrainConfig(RunOptions):
    """The ``pretrain:`` section (masked-language-model pretraining of the encoder).

    :param sources: unlabelled SCOPE strings: ``{name: DATASET, split: ..., **params}`` (a
        registered data set and its parameters, e.g. ``{name: corpus-csv, path: corpus.csv}`` for a
        data set that takes ``path``; labelled sets give their strings) or, without ``name``,
        ``{path: FILE.csv, column: COL}`` (a CSV's ``scope``/``cloud`` column, or a text file of one
        string a line).
    :param exclude: the same kind of entries whose strings are removed from the corpus (e.g. the
        test split of the benchmark you will fine-tune on).
    :param mlm_probability: fraction of tokens masked (transformers' MLM collator).
    :param val_fraction: fraction of the corpus held out to report the MLM loss.
    :param corpus: a token corpus directory (``cloudphys data build-corpus ... --out DIR``) streamed
        from disk instead of ``sources`` (memory flat in corpus size; DDP ranks read disjoint parts;
        the held-out part is chosen by each crystal's hash; ``exclude`` still applies).
    :param save_every: also checkpoint ``last/`` every this many optimizer steps, so a killed run
        resumes mid-epoch at the exact next batch (0: at the end of each epoch only; ``corpus`` runs).
    :param val_max: evaluate the MLM validation loss on at most this many held-out strings (``corpus`` runs).

    Shared options (``epochs``, ``batch_size``, ``lr``, ...) as in :class:`RunOptions`, with
    other defaults for ``epochs`` (5), ``batch_size`` (128) and ``lr`` (5e-4).
    """

    SECTION: ClassVar[str] = "pretrain"
    #: Keys of a file entry (one without ``name``).
    FILE_KEYS: ClassVar[tuple[str, ...]] = ("path", "column")

    epochs: int = _like("epochs", 5)
    batch_size: int = _like("batch_size", 128)
    lr: float = _like("lr", 5.0e-4)
    sources: list[Any] = field(default_factory=list)
    exclude: list[Any] = field(default_factory=list)
    mlm_probability: float = option(0.15, gt=0, lt=1, remedy="the fraction of tokens masked, e.g. 0.15")
    val_fraction: float = option(0.05, ge=0, lt=1, remedy="the fraction held out, e.g. 0.05")
    corpus: str | None = None
    save_every: int = option(0, ge=0, le=10**12, remedy="0 checkpoints at the end of each epoch only")
    val_max: int = option(4096, ge=1, le=1 << 30, remedy="give a positive number of strings, e.g. 4096")

    def validate(self) -> None:
        super().validate()
        if self.corpus is not None:
            if not str(self.corpus).strip():
                raise ConfigError("pretrain.corpus is empty: give a directory built by 'cloudphys data build-corpus "
                                  "--out DIR' or null")
            if self.sources:
                raise ConfigError("pretrain.corpus and pretrain.sources are both set: the corpus already holds "
                                  "the strings; remove sources (or corpus)")
        elif not self.sources:
            raise ConfigError("pretrain.sources is empty: list data sets ({name: ...}) or files ({path: ...})")
        for kind in ("sources", "exclude"):
            for i, src in enumerate(getattr(self, kind)):
                self.check_source(f"pretrain.{kind}[{i}]", src)

    @classmethod
    def check_source(cls, what: str, src: Any, registry: PluginRegistry | None = None) -> str:
        """Check one ``sources`` / ``exclude`` entry; return its kind, ``"dataset"`` or ``"file"``.

        See :func:`cloudphys.config.validate.check_source`.
        """
        return check_source(what, src, registry, file_keys=cls.FILE_KEYS)


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
            else dump_yaml(self.to_dict())
        )
        from ..outputs import write_text

        write_text(path, text)
