"""Metrics of a trained model on labelled data (``cloudphys evaluate``)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..config import load_config
from ..data.base import Examples
from ..errors import CheckpointError, DataError
from ..modeling.core import load_core, predict_encoded
from ..modeling.device import resolve_device
from ..modeling.encoding import encode, load_split
from ..modeling.metrics import metrics_from_predictions
from ..modeling.model import ScopePhysicsModel

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["evaluate", "evaluate_model"]


def evaluate_model(
    model: ScopePhysicsModel,
    examples: Examples,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    precision: str = "auto",
) -> dict[str, Any]:
    """Metrics of ``model`` on labelled ``examples``
    (see :func:`~cloudphys.modeling.metrics.metrics_from_predictions`)."""
    dev = resolve_device(device) if isinstance(device, str) else device
    model.to(dev)
    observables = [o for o in model.head.selected if o in examples.targets]
    if not observables:
        raise DataError(
            f"the data has targets {sorted(examples.targets)} but the head predicts {list(model.head.selected)}"
        )
    enc = encode(examples, model, observables)
    preds, _ = predict_encoded(model, enc, batch_size=batch_size, device=dev, precision=precision,
                               observables=observables)
    return metrics_from_predictions(enc, preds, model.head, model.meta.get("target_stats"), examples.units)


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    *,
    overrides: Iterable[str] = (),
    registry: PluginRegistry | None = None,
    device: str = "auto",
    batch_size: int | None = None,
) -> dict[str, Any]:
    """Metrics of a trained run (``RUN_DIR``, an ensemble run or a model directory) on ``split`` of its data set.

    ``overrides`` (``data.key=value``) change the data section, e.g. the temperature range.
    """
    model = load_core(run_dir, registry=registry)
    cfg_dict = model.meta.get("config")
    if not cfg_dict:
        raise CheckpointError(f"{run_dir}: the model carries no run config; cannot tell which data to use")
    config = load_config(cfg_dict, overrides=overrides, registry=registry)
    examples = load_split(config, split, registry)
    if not len(examples):
        name = config.data.name if config.data is not None else None
        raise DataError(f"split {split!r} of data set {name!r} is empty: nothing to evaluate")
    metrics = evaluate_model(
        model, examples, batch_size=batch_size or config.train.eval_batch_size, device=device,
        precision=config.train.precision,
    )
    return {"split": split, "data": config.data.to_dict() if config.data else None, "head": model.head.name, **metrics}
