"""Inputs of the contract battery: resolving a head, latent rows over the declared ranges, and the
extreme temperatures of the ``range`` check."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..physics.contract import LatentSpec, PhysicsHead, temperature_limit

__all__ = ["latent_grid", "latent_span", "range_temperatures", "resolve_head"]


def resolve_head(head: PhysicsHead | type | str) -> PhysicsHead:
    """A built head from a head, a head class (default parameters) or a registered name."""
    if isinstance(head, PhysicsHead):
        return head
    if isinstance(head, type) and issubclass(head, PhysicsHead):
        return head()
    if isinstance(head, str):
        from .. import load_head

        return load_head(head)
    raise TypeError(f"expected a PhysicsHead, a PhysicsHead subclass or a registered head name, got {head!r}")


def latent_span(spec: LatentSpec) -> tuple[float, float]:
    """The finite range the battery samples for ``spec`` (its bounds, or a wide default)."""
    width = 100.0 * max(1.0, abs(spec.typical))
    lo = (
        spec.lower
        if spec.lower is not None
        else (spec.typical - width if spec.upper is None else spec.upper - 2 * width)
    )
    hi = spec.upper if spec.upper is not None else max(spec.typical, lo) + width
    return float(lo), float(hi)


def _sample(spec: LatentSpec, u: Tensor) -> Tensor:
    """Map uniform numbers in [0, 1] into the range of ``spec`` (log-uniform for log scale)."""
    lo, hi = latent_span(spec)
    if spec.scale == "log":
        return torch.exp(math.log(lo) + (math.log(hi) - math.log(lo)) * u).clamp(lo, hi)
    return (lo + (hi - lo) * u).clamp(lo, hi)


def latent_grid(head: PhysicsHead, samples: int = 6, seed: int = 0) -> dict[str, Tensor]:
    """Latent values (float64, ``[B, *shape]``) covering the declared ranges.

    Rows: all typical; all at the lower end; all at the upper end; each latent alone at its lower
    and upper end (others typical); then ``samples`` seeded random rows (log-uniform for log
    scale; vector latents get some elements exactly at the lower end). Unbounded directions use a
    span of 100·max(1, |typical|).
    """
    specs = head.latents
    gen = torch.Generator().manual_seed(seed)
    rows: list[dict[str, Tensor]] = []

    def const(spec: LatentSpec, value: float) -> Tensor:
        return torch.full(spec.shape, float(value), dtype=torch.float64)

    typical = {s.name: const(s, s.typical) for s in specs}
    rows.append(dict(typical))
    rows.append({s.name: const(s, latent_span(s)[0]) for s in specs})
    rows.append({s.name: const(s, latent_span(s)[1]) for s in specs})
    for s in specs:
        for end in latent_span(s):
            rows.append({**typical, s.name: const(s, end)})
    for i in range(samples):
        row = {}
        for s in specs:
            v = _sample(s, torch.rand(s.shape, generator=gen, dtype=torch.float64))
            if s.shape and i % 2 == 1:
                at_lower = torch.rand(s.shape, generator=gen) < 0.5
                v = torch.where(at_lower, torch.full_like(v, latent_span(s)[0]), v)
            row[s.name] = v
        rows.append(row)
    return {s.name: torch.stack([r[s.name] for r in rows]) for s in specs}


def range_temperatures(dtype: torch.dtype) -> Tensor:
    """K: 0, the smallest subnormal and normal numbers, every decade from 1e-30 up to the
    contract's :func:`~cloudphys.physics.contract.temperature_limit` of ``dtype``, and the limit."""
    fi = torch.finfo(dtype)
    limit = temperature_limit(dtype)
    values = [0.0, float(torch.tensor(fi.tiny, dtype=dtype) * fi.eps), float(fi.tiny)]
    values += [10.0**e for e in range(-30, int(math.log10(limit)) + 1)] + [limit]
    T = torch.tensor(values, dtype=dtype)
    return T[T <= limit]
