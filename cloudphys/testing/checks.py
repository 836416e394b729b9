"""``check_head``: the contract battery every physics head must pass.

Checks (names for ``checks=``):

``declarations``
    the class passes registration validation; the instance's latents are :class:`LatentSpec`;
    ``get_config()`` and ``describe()`` are JSON-serialisable and ``type(head)(**get_config())``
    gives the same numbers.
``shapes``
    outputs have the broadcast temperature shape (``[B]``, ``[B, nT]``, scalars), follow the input
    dtype, and asking for a subset of observables returns exactly that subset, same values.
``finite``
    values and gradients (w.r.t. every latent and the temperature) are finite in float64 and
    float32 over the declared latent ranges (bounds included) and temperatures including T = 0.
``dtype``
    float32 and bfloat16 agree with float64 evaluated at the same (rounded) inputs, within
    :data:`~cloudphys.testing.tolerances.TOLERANCES`.
``batch``
    a batch equals one sample at a time; a curve ``[B, nT]`` equals its columns as ``[B]``;
    unbatched latents broadcast.
``identities``
    for whatever of u, cv, s, f the head gives: cv = ∂u/∂T, s = −∂f/∂T, f = u − T·s,
    cv = T·∂s/∂T (autograd, float64, T = 0 included).
``gradcheck``
    ``torch.autograd.gradcheck`` w.r.t. latents and temperature at interior points (float64).
``range``
    every finite temperature the contract accepts (0, subnormals, 1e-30 K … the
    :func:`~cloudphys.physics.contract.temperature_limit` of float32 and float64) gives finite
    values and gradients, element by element (a batch mixing extreme and ordinary temperatures
    equals its rows alone); temperatures above the limit, inf and NaN are rejected with a
    ``ValueError`` naming the temperature; integer temperatures, latents and ``n_atoms`` give
    floating outputs.
``per_item``
    observables that are not curves (``ObservableSpec.kind`` ``probability`` or ``scalar``, e.g. a
    stability head's ``p_unstable``): one value per item, the same at every temperature; a
    probability lies in [0, 1] with finite gradients over the declared latent ranges; a head that
    declares no ``temperature`` condition works without one (``[B]`` outputs). Curves-only heads pass.
``limits``
    T = 0: cv = 0, s = 0, u = f; cv ≥ 0 and s ≥ 0 everywhere; the classical limit at high T:
    cv → 3·n·R and u → 3·n·R·T (skip with ``classical_limit=False`` for heads that are not
    harmonic lattices, e.g. two-level systems: docs/plugins.md has the Schottky head as example).

Scales and tolerances: see :mod:`cloudphys.testing.tolerances` (u and f are measured against
3·n·R·max(T, 1 K) + |u|, so a head with u(0) = 0 is checked like any other). Every failure is collected and
reported together in one :class:`HeadCheckError` naming the head, the check, the observable, the
error and where it occurred.

This module is the registry and the entry points; the checks themselves live in
:mod:`~cloudphys.testing.contract_checks` (declarations, shapes, numerical safety) and
:mod:`~cloudphys.testing.physics_checks` (identities, limits, gradcheck), their inputs in
:mod:`~cloudphys.testing.sampling` and the shared comparison in :mod:`~cloudphys.testing.compare`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from ..physics.contract import PhysicsHead
from .contract_checks import (
    check_batch,
    check_declarations,
    check_dtype,
    check_finite,
    check_per_item,
    check_range,
    check_shapes,
)
from .physics_checks import T_HIGH, check_gradcheck, check_identities, check_limits
from .sampling import latent_grid, range_temperatures, resolve_head

__all__ = [
    "CHECKS",
    "DEFAULT_TEMPERATURES",
    "DEFAULT_N_ATOMS",
    "HeadCheckError",
    "HeadCheckReport",
    "POINT_CHECKS",
    "T_HIGH",
    "check_head",
    "check_head_inputs",
    "latent_grid",
    "range_temperatures",
    "resolve_head",
]

CHECKS: tuple[str, ...] = (
    "declarations",
    "shapes",
    "finite",
    "range",
    "dtype",
    "batch",
    "identities",
    "gradcheck",
    "limits",
    "per_item",
)
#: Checks that run on any given inputs (see :func:`check_head_inputs`).
POINT_CHECKS: tuple[str, ...] = ("finite", "dtype", "batch", "identities", "limits")

#: Temperatures (K) of the battery's curves: T = 0, the quantum regime, room temperature, hot.
DEFAULT_TEMPERATURES: tuple[float, ...] = (
    0.0,
    1e-3,
    0.1,
    1.0,
    4.2,
    20.0,
    77.0,
    150.0,
    300.0,
    700.0,
    1500.0,
    5000.0,
    1e5,
)
#: Atoms per cell cycled over the battery's samples.
DEFAULT_N_ATOMS: tuple[float, ...] = (1.0, 2.0, 5.0, 24.0)


class HeadCheckError(AssertionError):
    """A head failed one or more contract checks; ``failures`` lists them."""

    def __init__(self, head: str, failures: Sequence[str]) -> None:
        self.head = head
        self.failures = list(failures)
        lines = "\n".join(f"  - {f}" for f in self.failures)
        super().__init__(f"head {head!r} failed {len(self.failures)} contract check(s):\n{lines}")


@dataclass
class HeadCheckReport:
    """What :func:`check_head` ran: the checks that passed (a failure raises instead)."""

    head: str
    passed: list[str] = field(default_factory=list)


_CHECK_FUNCS: dict[str, Callable[..., None]] = {
    "declarations": check_declarations,
    "shapes": check_shapes,
    "finite": check_finite,
    "range": check_range,
    "dtype": check_dtype,
    "batch": check_batch,
    "identities": check_identities,
    "gradcheck": check_gradcheck,
    "limits": check_limits,
    "per_item": check_per_item,
}


def _select(checks: Iterable[str] | None, allowed: Sequence[str]) -> list[str]:
    chosen = list(allowed if checks is None else checks)
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise ValueError(f"unknown checks {unknown}; available: {', '.join(allowed)}")
    return chosen


def _run(
    head: PhysicsHead, chosen: Sequence[str], lat: dict[str, Tensor], T: Tensor, n: Tensor, **options: Any
) -> HeadCheckReport:
    report = HeadCheckReport(head=head.name)
    failures: list[str] = []
    for name in chosen:
        before = len(failures)
        try:
            _CHECK_FUNCS[name](head, lat, T, n, failures, **options)
        except Exception as exc:
            failures.append(f"[{name}] raised {type(exc).__name__}: {exc}")
        if len(failures) == before:
            report.passed.append(name)
    if failures:
        raise HeadCheckError(head.name, failures)
    return report


def check_head(
    head: PhysicsHead | type | str,
    *,
    checks: Iterable[str] | None = None,
    samples: int = 6,
    seed: int = 0,
    temperatures: Sequence[float] = DEFAULT_TEMPERATURES,
    n_atoms: Sequence[float] = DEFAULT_N_ATOMS,
    classical_limit: bool = True,
    t_high: float = T_HIGH,
) -> HeadCheckReport:
    """Run the contract battery on ``head``; raise :class:`HeadCheckError` listing every failure.

    :param head: a built head, a head class (built with default parameters) or a registered name.
    :param checks: names from :data:`CHECKS` (default: all).
    :param samples: seeded random latent rows on top of typical values and range ends.
    :param seed: seed of those rows.
    :param temperatures: K, the curve every row is evaluated on (include 0).
    :param n_atoms: atoms per cell, cycled over the rows.
    :param classical_limit: check cv → 3nR, u → 3nRT at ``t_high`` (harmonic lattices; ``False``
        for a head without that limit, e.g. two-level systems -- every other check still runs).
    :param t_high: K, temperature of the classical-limit check.
    :returns: a :class:`HeadCheckReport` (passed checks).
    """
    built = resolve_head(head)
    chosen = _select(checks, CHECKS)
    lat = latent_grid(built, samples=samples, seed=seed)
    B = next(iter(lat.values())).shape[0]
    T = torch.tensor(list(temperatures), dtype=torch.float64).expand(B, -1).clone()
    nn_ = torch.tensor([n_atoms[i % len(n_atoms)] for i in range(B)], dtype=torch.float64)
    return _run(built, chosen, lat, T, nn_, classical_limit=classical_limit, t_high=t_high)


def check_head_inputs(
    head: PhysicsHead | type | str,
    latents: Mapping[str, Tensor],
    temperature: Tensor,
    n_atoms: Tensor | float,
    *,
    checks: Iterable[str] | None = None,
    classical_limit: bool = True,
    t_high: float = T_HIGH,
) -> HeadCheckReport:
    """Run the point-wise checks (:data:`POINT_CHECKS`) at given inputs, e.g. from hypothesis.

    :param latents: ``{name: [B, *shape]}`` within the declared bounds.
    :param temperature: K, ``[B]`` or ``[B, nT]``.
    :param n_atoms: a number or ``[B]``.
    """
    built = resolve_head(head)
    chosen = _select(checks, POINT_CHECKS)
    lat = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in latents.items()}
    T = torch.as_tensor(temperature, dtype=torch.float64)
    B = max([v.shape[0] for k, v in lat.items() if v.ndim > len(built.latent(k).shape)] + [T.shape[0] if T.ndim else 1])
    lat = {
        k: (v if v.ndim > len(built.latent(k).shape) else v.unsqueeze(0)).expand(B, *built.latent(k).shape)
        for k, v in lat.items()
    }
    T = T.reshape(-1, 1) if T.ndim <= 1 else T
    T = T.expand(B, T.shape[1]).clone()
    n = torch.as_tensor(n_atoms, dtype=torch.float64).reshape(-1).expand(B).clone()
    return _run(built, chosen, lat, T, n, classical_limit=classical_limit, t_high=t_high)
