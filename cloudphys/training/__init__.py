"""Training, evaluation and prediction: ``build_model``, ``fit``, ``evaluate``, ``predict``."""

from __future__ import annotations

from .model import ScopePhysicsModel, build_model, load_tokenizer
from .trainer import FitResult, evaluate, evaluate_model, fit, predict_encoded, resolve_device

__all__ = [
    "ScopePhysicsModel",
    "build_model",
    "load_tokenizer",
    "fit",
    "FitResult",
    "evaluate",
    "evaluate_model",
    "predict_encoded",
    "resolve_device",
]
