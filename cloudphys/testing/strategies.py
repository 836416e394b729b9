"""Hypothesis strategies for a head's declared latents, temperatures and atom counts.

Every strategy draws float64 tensors by default (pass ``dtype=``). Latents stay inside their
declared bounds (bounds included; log-uniform for ``scale="log"``; unbounded directions span
100·max(1, |typical|) as in :func:`cloudphys.testing.latent_grid`); temperatures include T = 0 and
span decades. Example::

    from hypothesis import given
    from cloudphys.testing import check_head_inputs, strategies as cst

    head = MyHead()

    @given(cst.head_inputs(head))
    def test_contract_at_random_points(inputs):
        check_head_inputs(head, *inputs)
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from hypothesis import strategies as st
from torch import Tensor

from ..physics.contract import LatentSpec, PhysicsHead
from .sampling import latent_span

__all__ = ["HeadInputs", "latent_values", "latents", "temperatures", "atom_counts", "head_inputs"]


class HeadInputs(NamedTuple):
    """Arguments of a head call: ``head(latents=..., temperature=..., n_atoms=...)``."""

    latents: dict[str, Tensor]
    temperature: Tensor
    n_atoms: Tensor

    def as_kwargs(self) -> dict[str, object]:
        return {"latents": self.latents, "temperature": self.temperature, "n_atoms": self.n_atoms}


def _scalar(spec: LatentSpec) -> st.SearchStrategy[float]:
    lo, hi = latent_span(spec)
    if spec.scale == "log":
        inner = st.floats(math.log(lo), math.log(hi)).map(lambda v: min(max(math.exp(v), lo), hi))
    else:
        inner = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    return st.one_of(st.sampled_from([lo, hi, float(spec.typical)]), inner)


def latent_values(
    spec: LatentSpec, *, batch: int | None = None, dtype: torch.dtype = torch.float64
) -> st.SearchStrategy[Tensor]:
    """Values of one latent: shape ``spec.shape`` (``batch=None``) or ``[batch, *spec.shape]``."""
    count = spec.size * (1 if batch is None else batch)
    shape = spec.shape if batch is None else (batch, *spec.shape)
    return st.lists(_scalar(spec), min_size=count, max_size=count).map(
        lambda xs: torch.tensor(xs, dtype=dtype).reshape(shape)
    )


def latents(
    head: PhysicsHead, *, batch: int | None = None, dtype: torch.dtype = torch.float64
) -> st.SearchStrategy[dict[str, Tensor]]:
    """``{name: tensor}`` for every latent the (built) head declares."""
    return st.fixed_dictionaries({s.name: latent_values(s, batch=batch, dtype=dtype) for s in head.latents})


def temperatures(
    *,
    min_value: float = 0.0,
    max_value: float = 5000.0,
    shape: tuple[int, ...] = (),
    dtype: torch.dtype = torch.float64,
) -> st.SearchStrategy[Tensor]:
    """Temperatures in K: exactly ``min_value`` (0 by default), log-uniform over decades, uniform."""
    if not 0.0 <= min_value < max_value:
        raise ValueError(f"need 0 <= min_value < max_value, got {min_value}, {max_value}")
    low = max(min_value, 1e-3)
    one = st.one_of(
        st.just(float(min_value)),
        st.floats(math.log(low), math.log(max_value)).map(lambda v: min(max(math.exp(v), min_value), max_value)),
        st.floats(min_value, max_value, allow_nan=False, allow_infinity=False),
    )
    count = math.prod(shape)
    return st.lists(one, min_size=count, max_size=count).map(lambda xs: torch.tensor(xs, dtype=dtype).reshape(shape))


def atom_counts(*, min_value: int = 1, max_value: int = 64) -> st.SearchStrategy[int]:
    """Atoms per cell (integers)."""
    return st.integers(min_value, max_value)


@st.composite
def head_inputs(
    draw: st.DrawFn,
    head: PhysicsHead,
    *,
    max_batch: int = 4,
    max_temperatures: int = 5,
    curve: bool | None = None,
    max_temperature: float = 5000.0,
    dtype: torch.dtype = torch.float64,
) -> HeadInputs:
    """A whole head call: batched latents, ``[B]`` or ``[B, nT]`` temperatures, ``[B]`` atom counts."""
    B = draw(st.integers(1, max_batch))
    is_curve = draw(st.booleans()) if curve is None else curve
    shape = (B, draw(st.integers(1, max_temperatures))) if is_curve else (B,)
    lat = draw(latents(head, batch=B, dtype=dtype))
    T = draw(temperatures(max_value=max_temperature, shape=shape, dtype=dtype))
    n = torch.tensor(draw(st.lists(atom_counts(), min_size=B, max_size=B)), dtype=dtype)
    return HeadInputs(lat, T, n)
