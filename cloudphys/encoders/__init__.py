"""Encoders: SCOPE tokens → a head's latents (``scope-bert``) and the latent layer."""

from __future__ import annotations

from typing import Any

__all__ = ["LatentLayer", "ScopeBertConfig", "ScopeBertEncoder", "build_scope_bert", "composition_features"]


def __getattr__(name: str) -> Any:  # lazy: keep plugin import cheap
    if name == "LatentLayer":
        from .latent import LatentLayer

        return LatentLayer
    if name in ("ScopeBertConfig", "ScopeBertEncoder", "build_scope_bert"):
        from . import bert

        return getattr(bert, name)
    if name == "composition_features":
        from .descriptors import composition_features

        return composition_features
    raise AttributeError(name)
