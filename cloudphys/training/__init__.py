"""Training: ``fit`` one model, ``train`` what a config asks for (one model or an ensemble);
MLM pretraining is :func:`cloudphys.training.pretrain.pretrain`.

Modules, bottom up: :mod:`.runtime` (DDP, threads, schedule, progress), :mod:`.batching` (seeded,
length-grouped batches, extra data), :mod:`.losses` (the loss), :mod:`.checkpoint` (atomic
checkpoints, the metrics log, the run lock), :mod:`.resume` (what may happen to a run directory),
:mod:`.loop` (``fit``: the training loop of one model), :mod:`.ensemble` (seed ensembles, above
``fit``), :mod:`.pretrain` (MLM), :mod:`.evaluation` (metrics of a trained model on a labelled split,
``cloudphys evaluate``). (The loop's module is not named ``fit``: it would shadow the
function ``cloudphys.training.fit``.) What training shares with prediction -- the model class,
encoding, device choice, the saved format, loading -- is :mod:`cloudphys.modeling` (below this
package; ``ScopePhysicsModel``, ``build_model``, ``load_tokenizer`` and ``resolve_device`` are
re-exported here). Using a trained model is :mod:`cloudphys.inference`, which this package never imports.
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
    "resolve_device",
    "train",
]


def __getattr__(name: str) -> Any:  # lazy: importing cloudphys.training.runtime must not import the loop
    if name in ("ScopePhysicsModel", "build_model", "load_tokenizer"):
        from ..modeling import model as mod
    elif name in ("fit", "FitResult"):
        from . import loop as mod
    elif name == "train":
        from . import ensemble as mod
    elif name in ("evaluate", "evaluate_model"):
        from . import evaluation as mod
    elif name == "resolve_device":
        from ..modeling import device as mod
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(mod, name)
