"""Training: ``fit`` one model, ``train`` what a config asks for (one model or an ensemble);
MLM pretraining is :func:`cloudphys.training.pretrain.pretrain`.

Modules, bottom up: :mod:`.runtime` (device, autocast, DDP, threads, schedule, progress),
:mod:`.batching` (tokenize once, pad per batch, load a split), :mod:`.losses` (the loss and the
metrics), :mod:`.checkpoint` (atomic checkpoints, the metrics log, the run lock, the ensemble
manifest), :mod:`.model` (encoder + head as one model, saved as one directory), :mod:`.resume`
(what may happen to a run directory), :mod:`.loop` (``fit``: the training loop of one model),
:mod:`.ensemble` (seed ensembles, above ``fit``), :mod:`.pretrain` (MLM). (The loop's module is not
named ``fit``: it would shadow the function ``cloudphys.training.fit``.) Using a trained model is
:mod:`cloudphys.inference`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "FitResult",
    "ScopePhysicsModel",
    "build_model",
    "evaluate",
    "evaluate_model",
    "fit",
    "load_tokenizer",
    "predict_encoded",
    "resolve_device",
    "train",
]


def __getattr__(name: str) -> Any:  # lazy: importing cloudphys.training.runtime must not import the loop
    if name in ("ScopePhysicsModel", "build_model", "load_tokenizer"):
        from . import model as mod
    elif name in ("fit", "FitResult"):
        from . import loop as mod
    elif name == "train":
        from . import ensemble as mod
    elif name == "resolve_device":
        from . import runtime as mod
    elif name in ("evaluate", "evaluate_model"):
        from ..inference import evaluation as mod
    elif name == "predict_encoded":
        from ..inference import model as mod
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(mod, name)
