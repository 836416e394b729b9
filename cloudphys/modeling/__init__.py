"""What training and inference share: the model, its inputs, its files, and loading it.

Below both :mod:`cloudphys.training` and :mod:`cloudphys.inference` (which import it and never each
other), above the encoders, the physics heads and the data sets. Modules, bottom up:

* :mod:`.device` -- device and precision choice (:func:`resolve_device`, :func:`autocast`);
* :mod:`.format` -- the saved format's number and the ensemble manifest (``ensemble.json``);
* :mod:`.encoding` -- token checks (:func:`check_tokens`), :func:`encode` a split once,
  :func:`collate` a padded batch, :func:`load_split`;
* :mod:`.metrics` -- MAE, RMSE, MAD and MAE/MAD of predictions against labels;
* :mod:`.model` -- :class:`ScopePhysicsModel` (encoder + head, one model directory), :func:`build_model`;
* :mod:`.ensemble` -- a seed ensemble as one model (:class:`EnsembleEncoder`, :func:`load_ensemble`);
* :mod:`.core` -- :func:`load_core` (the one place that decides single model vs ensemble) and
  :func:`predict_encoded` (a model over an encoded split, in batches), :func:`predict_encoded_members`
  (an ensemble and each of its members from one encoder pass per member and batch).

Users load a model with :func:`cloudphys.load_model` (the user's :class:`~cloudphys.models.api.Model`,
which wraps what :func:`load_core` returns). Names are exported lazily: torch is imported on first use.
"""

from __future__ import annotations

from typing import Any

#: public name -> the module of this package that defines it
_EXPORTS = {
    "resolve_device": "device", "autocast": "device",
    "FORMAT_VERSION": "format", "ENSEMBLE_FILE": "format", "check_format": "format",
    "is_ensemble_dir": "format", "read_manifest": "format", "write_manifest": "format",
    "Encoded": "encoding", "check_tokens": "encoding", "tokenize": "encoding", "encode": "encoding",
    "collate": "encoding", "canonical_string": "encoding", "load_split": "encoding",
    "metrics_from_predictions": "metrics",
    "ScopePhysicsModel": "model", "build_model": "model", "load_tokenizer": "model",
    "model_dialect": "model", "resolve_model_dir": "model", "tokenizer_record": "model",
    "EnsembleEncoder": "ensemble", "ensemble_model": "ensemble", "load_ensemble": "ensemble",
    "load_core": "core", "predict_encoded": "core", "predict_encoded_members": "core",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:  # lazy: importing the package imports no torch
    where = _EXPORTS.get(name)
    if where == "device":
        from . import device as mod
    elif where == "format":
        from . import format as mod
    elif where == "encoding":
        from . import encoding as mod
    elif where == "metrics":
        from . import metrics as mod
    elif where == "model":
        from . import model as mod
    elif where == "ensemble":
        from . import ensemble as mod
    elif where == "core":
        from . import core as mod
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(mod, name)
