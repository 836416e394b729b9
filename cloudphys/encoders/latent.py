"""Latent layer: maps an encoder state to a head's declared latents, inside their bounds.

For each :class:`~cloudphys.physics.contract.LatentSpec` the layer emits ``spec.size`` unconstrained
numbers ``z`` and maps them into the declared range:

=============================  =========================================================
scale / bounds                  value
=============================  =========================================================
log, lower and upper            ``exp(log lo + (log hi − log lo)·sigmoid(z))``
log, lower only                 ``lo · exp(softplus(z))``
linear, lower and upper         ``lo + (hi − lo)·sigmoid(z)``
linear, lower only              ``lo + softplus(z)``
linear, upper only              ``hi − softplus(z)``
linear, no bounds               ``z``
=============================  =========================================================

Biases start at the inverse transform of ``spec.typical`` and weights are small, so a fresh model
predicts every latent near its typical value. Optional per-sample ``features`` (e.g. composition
descriptors) add a linear term to ``z`` (zero-initialised), which is how physical priors such as
"heavier atoms → lower Debye temperature" enter without changing the start.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ..physics.contract import LatentSpec

__all__ = ["LatentLayer", "latent_inverse", "latent_transform", "spec_from_dict"]

_EPS = 1e-6


def spec_from_dict(d: Mapping[str, Any] | LatentSpec) -> LatentSpec:
    """A :class:`LatentSpec` from its :meth:`~LatentSpec.as_dict` form (or itself)."""
    if isinstance(d, LatentSpec):
        return d
    kw = dict(d)
    kw["shape"] = tuple(int(s) for s in kw.get("shape", ()))
    return LatentSpec(**kw)


def _softplus_inv(y: float) -> float:
    y = max(y, _EPS)
    return y + math.log(-math.expm1(-y))


def _logit(p: float) -> float:
    p = min(max(p, _EPS), 1 - _EPS)
    return math.log(p / (1 - p))


def latent_transform(spec: LatentSpec, z: Tensor) -> Tensor:
    """Map unconstrained ``z`` into the bounds of ``spec`` (see the module table)."""
    lo, hi = spec.lower, spec.upper
    if spec.scale == "log":
        llo = math.log(lo)  # scale 'log' guarantees lo > 0
        if hi is not None:
            v = torch.exp(llo + (math.log(hi) - llo) * torch.sigmoid(z))
        else:
            v = torch.exp(llo + F.softplus(z))
    elif lo is not None and hi is not None:
        v = lo + (hi - lo) * torch.sigmoid(z)
    elif lo is not None:
        v = lo + F.softplus(z)
    elif hi is not None:
        v = hi - F.softplus(z)
    else:
        return z
    # exp/log round-off may step a hair outside the bounds; the head checks them strictly.
    return torch.clamp(v, min=lo, max=hi)


def latent_inverse(spec: LatentSpec, value: float) -> float:
    """The ``z`` that :func:`latent_transform` maps to ``value`` (clipped just inside the bounds)."""
    lo, hi = spec.lower, spec.upper
    if spec.scale == "log":
        llo = math.log(lo)
        if hi is not None:
            return _logit((math.log(value) - llo) / (math.log(hi) - llo))
        return _softplus_inv(math.log(value) - llo)
    if lo is not None and hi is not None:
        return _logit((value - lo) / (hi - lo))
    if lo is not None:
        return _softplus_inv(value - lo)
    if hi is not None:
        return _softplus_inv(hi - value)
    return float(value)


class LatentLayer(nn.Module):
    """``[B, hidden]`` (+ optional ``[B, n_features]``) → ``{latent: [B, *shape]}``.

    :param hidden_size: width of the encoder state.
    :param latents: the head's latent declarations (``LatentSpec`` or their dicts).
    :param n_features: width of optional per-sample features added linearly to ``z``.
    :param mlp_size: if > 0, a one-hidden-layer MLP (GELU) instead of a linear map.
    :param features_in_mlp: the MLP also reads the features (``[hidden, features]``), so they act
        nonlinearly and together with the encoder state; the linear feature term stays (needs
        ``mlp_size`` > 0 and features).
    """

    def __init__(
        self,
        hidden_size: int,
        latents: Sequence[LatentSpec | Mapping[str, Any]],
        n_features: int = 0,
        mlp_size: int = 0,
        dropout: float = 0.0,
        features_in_mlp: bool = False,
    ) -> None:
        super().__init__()
        if features_in_mlp and (mlp_size <= 0 or n_features <= 0):
            raise ValueError("features_in_mlp needs a latent MLP (mlp_size > 0) and features (n_features > 0)")
        self.features_in_mlp = bool(features_in_mlp)
        self.specs: tuple[LatentSpec, ...] = tuple(spec_from_dict(s) for s in latents)
        if not self.specs:
            raise ValueError("latent layer needs at least one latent")
        self.sizes = [s.size for s in self.specs]
        total = sum(self.sizes)
        if mlp_size > 0:
            self.body: nn.Module = nn.Sequential(
                nn.Linear(hidden_size + (n_features if features_in_mlp else 0), mlp_size), nn.GELU(),
                nn.Dropout(dropout), nn.Linear(mlp_size, total),
            )
        else:
            self.body = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden_size, total))
        self.n_features = int(n_features)
        self.features = nn.Linear(self.n_features, total, bias=False) if self.n_features else None
        self.reset_parameters()

    @property
    def out(self) -> nn.Linear:
        return self.body[-1]  # type: ignore[index, return-value]

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Small weights; biases at the inverse transform of each latent's typical value."""
        for m in self.body.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        self.out.weight.mul_(0.1)
        bias = []
        for spec in self.specs:
            bias += [latent_inverse(spec, spec.typical)] * spec.size
        self.out.bias.copy_(torch.tensor(bias, dtype=self.out.bias.dtype))
        if self.features is not None:
            nn.init.zeros_(self.features.weight)

    def forward(self, hidden: Tensor, features: Tensor | None = None) -> dict[str, Tensor]:
        hidden = hidden.float()
        if self.features is not None and features is None:
            raise ValueError(f"latent layer expects {self.n_features} features per sample, got none")
        if self.features_in_mlp:
            z = self.body(torch.cat([hidden, features.float()], dim=-1))
        else:
            z = self.body(hidden)
        if self.features is not None:
            z = z + self.features(features.float())
        out: dict[str, Tensor] = {}
        for spec, part in zip(self.specs, torch.split(z, self.sizes, dim=-1)):
            v = latent_transform(spec, part)
            out[spec.name] = v.reshape(v.shape[0], *spec.shape)
        return out
