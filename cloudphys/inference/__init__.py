"""Using trained models: load one (single or ensemble), predict, evaluate.

:mod:`.model` -- :func:`load_model` (decides single model vs ensemble from the directory) and
:func:`predict_encoded`; :mod:`.ensemble` -- seed ensembles as one model; :mod:`.predict` -- the
prediction core (:func:`predict_items`: items → latents + observables + errors) and the file
front end; :mod:`.evaluation` -- metrics on a labelled split.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "EnsembleEncoder",
    "ItemPredictions",
    "evaluate",
    "evaluate_model",
    "load_ensemble",
    "load_model",
    "predict_encoded",
    "predict_items",
    "predict_with_members",
]


def __getattr__(name: str) -> Any:  # lazy: torch is imported on first use
    if name in ("load_model", "predict_encoded"):
        from . import model as mod
    elif name in ("predict_items", "predict_with_members", "ItemPredictions"):
        from . import predict as mod
    elif name in ("evaluate", "evaluate_model"):
        from . import evaluation as mod
    elif name in ("load_ensemble", "EnsembleEncoder"):
        from . import ensemble as mod
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(mod, name)
