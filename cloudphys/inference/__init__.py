"""Using trained models: predict, evaluate, results, uncertainty, plots, export.

:mod:`.predict` -- the prediction core (:func:`predict_with_members`: items → latents + observables
+ errors, an ensemble's members on the same tokens); :mod:`.result` -- the user's
:class:`~.result.Prediction`; :mod:`.uncertainty` -- the
ensemble spread and its calibration. Loading a model is :func:`cloudphys.load_model` (the user's
model) or :func:`cloudphys.modeling.load_core` (the torch module), both below this package;
metrics on a labelled split are :func:`cloudphys.training.evaluate`.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ItemPredictions",
    "predict_with_members",
    "prepare_items",
    "read_items",
]


def __getattr__(name: str) -> Any:  # lazy: torch is imported on first use
    if name in ("predict_with_members", "prepare_items", "read_items", "ItemPredictions"):
        from . import predict as mod
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(mod, name)
