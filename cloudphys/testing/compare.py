"""Shared pieces of the contract checks: evaluating a head, error scales (J/mol or J/(K·mol)),
comparing against a reference and naming the point where a comparison failed."""

from __future__ import annotations

import math
from typing import Iterator, Mapping, Sequence

import torch
from torch import Tensor

from ..physics.contract import R_GAS, PhysicsHead
from .tolerances import ENERGY_FLOOR_K

__all__ = [
    "atoms_like",
    "cast_latents",
    "compare",
    "describe_point",
    "error_scale",
    "evaluate",
    "first_nonfinite",
    "nonfinite_values_and_gradients",
    "given_observables",
    "grad_inputs",
    "is_per_kelvin",
    "round_into_bounds",
]


def given_observables(head: PhysicsHead) -> tuple[str, ...]:
    return tuple(s.name for s in head.observables)


def is_per_kelvin(name: str) -> bool | None:
    """True for cv and s (J/(K·mol)), False for u and f (J/mol), None for other observables."""
    if name in ("cv", "s"):
        return True
    if name in ("u", "f"):
        return False
    return None


def atoms_like(n: Tensor, T: Tensor) -> Tensor:
    """``n_atoms`` shaped to broadcast against ``T`` (``[B]`` → ``[B, 1]`` for curves)."""
    return n.reshape(n.shape + (1,) * (T.ndim - n.ndim)) if n.ndim and T.ndim > n.ndim else n


def error_scale(head: PhysicsHead, name: str, ref: Tensor, T: Tensor, n: Tensor) -> Tensor:
    """What an error in ``name`` is measured against (see :mod:`.tolerances`): 3nR + |ref| for cv
    and s, 3nR·max(T, ENERGY_FLOOR_K) + |ref| for u and f (positive at T = 0 even where u(0) = 0),
    1 for a probability (absolute error), |ref| otherwise."""
    spec = next((s for s in head.observables if s.name == name), None)
    if getattr(spec, "kind", "curve") == "probability":  # absolute error: a probability's scale is 1
        return torch.ones_like(ref)
    kind = is_per_kelvin(name)
    nR3 = 3.0 * R_GAS * atoms_like(n, T)
    if kind is True:
        return nR3 + ref.abs()
    if kind is False:
        return nR3 * T.detach().clamp(min=ENERGY_FLOOR_K) + ref.abs()
    return ref.abs() + 1e-300


def describe_point(lat: Mapping[str, Tensor], T: Tensor, n: Tensor, idx: tuple[int, ...]) -> str:
    b = idx[0] if idx else 0
    parts = []
    for k, v in lat.items():
        vb = v[b] if v.ndim and v.shape[0] > b else v
        vb = vb.detach().double().flatten()
        parts.append(f"{k}={vb.tolist() if vb.numel() > 1 else float(vb):}")
    t = float(T.detach()[idx[: T.ndim]]) if T.ndim else float(T.detach())
    nb = n.detach().reshape(-1)
    nb = float(nb[b] if nb.numel() > b else nb[0])
    return f"latents {{{', '.join(parts)}}}, T={t:g} K, n_atoms={nb:g}"


def compare(
    failures: list[str],
    check: str,
    name: str,
    got: Tensor,
    ref: Tensor,
    scale: Tensor,
    rtol: float,
    lat: Mapping[str, Tensor],
    T: Tensor,
    n: Tensor,
    what: str = "",
) -> None:
    got, ref = got.detach().double(), ref.detach().double()
    scale = scale.detach().double()
    err = (got - ref).abs() / scale
    bad = ~(err <= rtol)  # NaN counts as failure
    if bool(bad.any()):
        worst = torch.where(torch.isnan(err), torch.full_like(err, math.inf), err)
        idx = tuple(int(i) for i in torch.nonzero(worst == worst.max())[0])
        label = f" {what}" if what else ""
        failures.append(
            f"[{check}] {name}{label}: relative error {float(worst[idx]):.3g} > {rtol:g} "
            f"(got {float(got[idx]):.10g}, expected {float(ref[idx]):.10g}) at {describe_point(lat, T, n, idx)}"
        )


def evaluate(
    head: PhysicsHead, lat: Mapping[str, Tensor], T: Tensor, n: Tensor, observables: Sequence[str] | None = None
) -> dict[str, Tensor]:
    return head(latents=dict(lat), temperature=T, n_atoms=n, observables=tuple(observables or given_observables(head)))


def cast_latents(lat: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    return {k: v.detach().to(dtype) for k, v in lat.items()}


def round_into_bounds(head: PhysicsHead, lat: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    """Latents cast to ``dtype``; a value that rounding pushed past a bound steps one ulp back."""
    out = {}
    for spec in head.latents:
        v = lat[spec.name].detach().to(dtype)
        for bound, toward in ((spec.upper, -math.inf), (spec.lower, math.inf)):
            if bound is None:
                continue
            past = v.double() > bound if toward < 0 else v.double() < bound
            if bool(past.any()):
                v = torch.where(past, torch.nextafter(v, torch.full_like(v, toward)), v)
        out[spec.name] = v
    return out


def grad_inputs(
    head: PhysicsHead, lat: Mapping[str, Tensor], T: Tensor, dtype: torch.dtype
) -> tuple[dict[str, Tensor], Tensor]:
    la = {k: v.requires_grad_(True) for k, v in round_into_bounds(head, lat, dtype).items()}
    return la, T.detach().to(dtype).requires_grad_(True)


def first_nonfinite(x: Tensor) -> tuple[int, ...] | None:
    """Index of the first NaN or ±inf element of ``x`` (row-major), or ``None`` when all are finite."""
    bad = ~torch.isfinite(x.detach())
    if not bool(bad.any()):
        return None
    return tuple(int(i) for i in torch.nonzero(bad)[0])


def nonfinite_values_and_gradients(
    out: Mapping[str, Tensor], inputs: Mapping[str, Tensor]
) -> Iterator[tuple[str, str | None, float, tuple[int, ...]]]:
    """``(observable, None, value, index)`` for each output with a NaN/inf value (its first one);
    else ``(observable, input, value, index)`` for each of ``inputs`` whose gradient has one."""
    for k, v in out.items():
        idx = first_nonfinite(v)
        if idx is not None:
            yield k, None, float(v.detach()[idx]), idx
            continue
        grads = torch.autograd.grad(v.sum(), list(inputs.values()), retain_graph=True, allow_unused=True)
        for name, g in zip(inputs, grads):
            at = None if g is None else first_nonfinite(g)
            if at is not None:
                yield k, name, float(g[at]), at
