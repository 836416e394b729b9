"""The encoder contract: what ``register_encoders`` registers and what an encoder may offer.

An encoder is a :class:`torch.nn.Module` mapping token ids (and optional per-item features) to
``{latent name: tensor}``. The optional capabilities are declared here, on :class:`Encoder`, with
defaults, so nothing looks for them with ``getattr``:

* :meth:`Encoder.featurize` -- per-item input features beside the tokens (default: none).

A registered factory may be a plain callable (its signature declares the config parameters), or a
:class:`LazyFactory`, which imports its implementation on first use (plugin import stays cheap) and
reports the implementation's signature to :func:`inspect.signature`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["Encoder", "LazyFactory"]


class Encoder:
    """Mixin of the optional encoder capabilities, each with its default."""

    def featurize(self, scope: Sequence[str], n_atoms: Sequence[float]) -> Any:
        """``[N, F]`` features of each SCOPE string (fed to the latent layer beside the tokens), or
        ``None`` when the encoder reads tokens only (the default)."""
        return None


class LazyFactory:
    """A factory whose implementation is imported on first use.

    :param load: returns the real factory (import heavy modules inside it).
    :param doc: one line for listings.
    """

    def __init__(self, load: Callable[[], Callable[..., Any]], doc: str = "") -> None:
        self._load = load
        self.__doc__ = doc

    def resolve(self) -> Callable[..., Any]:
        """The real factory."""
        return self._load()

    def __call__(self, **params: Any) -> Any:
        return self.resolve()(**params)

    # What inspect.signature and typing.get_type_hints read: the implementation's signature and
    # annotations (so a config's parameters are checked against them, bounds included).
    @property
    def __signature__(self) -> inspect.Signature:
        return inspect.signature(self.resolve())

    @property
    def __wrapped__(self) -> Callable[..., Any]:
        return self.resolve()

    @property
    def __annotations__(self) -> dict[str, Any]:  # type: ignore[override]
        return dict(getattr(self.resolve(), "__annotations__", {}))
