"""Gauss–Legendre quadrature with nodes cached per (order, dtype, device)."""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np
import torch
from torch import Tensor

__all__ = ["gauss_legendre", "integrate_0_to"]

_cache: dict[tuple[int, torch.dtype, torch.device], tuple[Tensor, Tensor]] = {}
_lock = threading.Lock()


def gauss_legendre(
    order: int, dtype: torch.dtype = torch.float64, device: torch.device | str | None = None
) -> tuple[Tensor, Tensor]:
    """Nodes and weights of the ``order``-point Gauss–Legendre rule on [0, 1].

    Computed once in float64 with :func:`numpy.polynomial.legendre.leggauss`, then cached per
    (order, dtype, device); the returned tensors are shared and must not be modified in place.
    The rule integrates polynomials of degree ≤ 2·order − 1 exactly.
    """
    if order < 1:
        raise ValueError(f"quadrature order must be >= 1, got {order}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    key = (int(order), dtype, dev)
    hit = _cache.get(key)
    if hit is not None:
        return hit
    with _lock:
        hit = _cache.get(key)
        if hit is None:
            x, w = np.polynomial.legendre.leggauss(int(order))
            nodes = torch.as_tensor((x + 1.0) / 2.0, dtype=dtype, device=dev)
            weights = torch.as_tensor(w / 2.0, dtype=dtype, device=dev)
            hit = (nodes, weights)
            _cache[key] = hit
    return hit


def integrate_0_to(f: Callable[[Tensor], Tensor], upper: Tensor, order: int) -> Tensor:
    """∫₀^upper f(t) dt for every element of ``upper`` (any shape), differentiable in ``upper``.

    ``f`` is applied element-wise to a tensor of shape ``upper.shape + (order,)``.
    """
    nodes, weights = gauss_legendre(order, upper.dtype, upper.device)
    t = upper.unsqueeze(-1) * nodes
    return (f(t) * weights).sum(-1) * upper
