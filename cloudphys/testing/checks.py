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
``limits``
    T = 0: cv = 0, s = 0, u = f; cv ≥ 0 and s ≥ 0 everywhere; the classical limit at high T:
    cv → 3·n·R and u → 3·n·R·T (skip with ``classical_limit=False`` for heads that are not
    harmonic lattices).

Scales and tolerances: see :mod:`cloudphys.testing.tolerances`. Every failure is collected and
reported together in one :class:`HeadCheckError` naming the head, the check, the observable, the
error and where it occurred.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import Tensor

from ..physics.contract import R_GAS, LatentSpec, PhysicsHead, temperature_limit, validate_head_class
from . import tolerances as tol

__all__ = [
    "CHECKS",
    "DEFAULT_TEMPERATURES",
    "DEFAULT_N_ATOMS",
    "HeadCheckError",
    "HeadCheckReport",
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
#: Temperature (K) of the classical-limit check.
T_HIGH = 1e7


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


# -- resolving and sampling -----------------------------------------------------------------
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


def _span(spec: LatentSpec) -> tuple[float, float]:
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
    lo, hi = _span(spec)
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
    rows.append({s.name: const(s, _span(s)[0]) for s in specs})
    rows.append({s.name: const(s, _span(s)[1]) for s in specs})
    for s in specs:
        for end in _span(s):
            rows.append({**typical, s.name: const(s, end)})
    for i in range(samples):
        row = {}
        for s in specs:
            v = _sample(s, torch.rand(s.shape, generator=gen, dtype=torch.float64))
            if s.shape and i % 2 == 1:
                at_lower = torch.rand(s.shape, generator=gen) < 0.5
                v = torch.where(at_lower, torch.full_like(v, _span(s)[0]), v)
            row[s.name] = v
        rows.append(row)
    return {s.name: torch.stack([r[s.name] for r in rows]) for s in specs}


# -- helpers ----------------------------------------------------------------------------------
def _given(head: PhysicsHead) -> tuple[str, ...]:
    return tuple(s.name for s in head.observables)


def _is_per_kelvin(name: str) -> bool | None:
    """True for cv and s (J/(K·mol)), False for u and f (J/mol), None for other observables."""
    if name in ("cv", "s"):
        return True
    if name in ("u", "f"):
        return False
    return None


def _nb(n: Tensor, T: Tensor) -> Tensor:
    """``n_atoms`` shaped to broadcast against ``T`` (``[B]`` → ``[B, 1]`` for curves)."""
    return n.reshape(n.shape + (1,) * (T.ndim - n.ndim)) if n.ndim and T.ndim > n.ndim else n


def _scale(head: PhysicsHead, name: str, ref: Tensor, T: Tensor, n: Tensor) -> Tensor:
    kind = _is_per_kelvin(name)
    nR3 = 3.0 * R_GAS * _nb(n, T)
    if kind is True:
        return nR3 + ref.abs()
    if kind is False:
        return nR3 * T + ref.abs()
    return ref.abs() + 1e-300


def _where(lat: Mapping[str, Tensor], T: Tensor, n: Tensor, idx: tuple[int, ...]) -> str:
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


def _compare(
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
            f"(got {float(got[idx]):.10g}, expected {float(ref[idx]):.10g}) at {_where(lat, T, n, idx)}"
        )


def _eval(
    head: PhysicsHead, lat: Mapping[str, Tensor], T: Tensor, n: Tensor, observables: Sequence[str] | None = None
) -> dict[str, Tensor]:
    return head(latents=dict(lat), temperature=T, n_atoms=n, observables=tuple(observables or _given(head)))


def _cast(lat: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
    return {k: v.detach().to(dtype) for k, v in lat.items()}


def _round_into_bounds(head: PhysicsHead, lat: Mapping[str, Tensor], dtype: torch.dtype) -> dict[str, Tensor]:
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


# -- the individual checks --------------------------------------------------------------------
def _check_declarations(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    try:
        validate_head_class(type(head), plugin=getattr(type(head), "__module__", "?"))
    except Exception as exc:
        failures.append(f"[declarations] class validation failed: {exc}")
        return
    for spec in head.latents:
        if not isinstance(spec, LatentSpec):
            failures.append(f"[declarations] instance latent {spec!r} is not a LatentSpec")
            return
    names = [s.name for s in head.latents]
    if len(set(names)) != len(names):
        failures.append(f"[declarations] duplicate instance latent names {names}")
    for what, fn in (("get_config()", head.get_config), ("describe()", head.describe)):
        try:
            json.dumps(fn())
        except Exception as exc:
            failures.append(f"[declarations] {what} is not JSON-serialisable: {exc}")
            return
    try:
        clone = type(head)(**head.get_config())
    except Exception as exc:
        failures.append(f"[declarations] type(head)(**head.get_config()) failed: {type(exc).__name__}: {exc}")
        return
    if [s.as_dict() for s in clone.latents] != [s.as_dict() for s in head.latents]:
        failures.append("[declarations] the head rebuilt from get_config() declares different latents")
        return
    a, b = _eval(head, lat, T, n), _eval(clone, lat, T, n)
    for k in a:
        _compare(failures, "declarations", k, b[k], a[k], _scale(head, k, a[k], T, n), 0.0, lat, T, n, "(rebuilt head)")


def _check_shapes(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    given = _given(head)
    B, nT = T.shape
    cases = [
        ("curve [B, nT]", lat, T, n, (B, nT)),
        ("per-sample [B]", lat, T[:, -4], n, (B,)),
        ("scalar T and n_atoms", lat, 300.0, 2, (B,)),
        (
            "one sample, scalar T",
            {k: v[:1] for k, v in lat.items()},
            torch.tensor(300.0, dtype=torch.float64),
            n[:1],
            (1,),
        ),
    ]
    for label, la, t, nn_, shape in cases:
        try:
            out = head(latents=la, temperature=t, n_atoms=nn_)
        except Exception as exc:
            failures.append(f"[shapes] {label}: {type(exc).__name__}: {exc}")
            continue
        if set(out) != set(head.selected):
            failures.append(f"[shapes] {label}: returned {sorted(out)}, expected the selected {sorted(head.selected)}")
        for k, v in out.items():
            if tuple(v.shape) != shape:
                failures.append(f"[shapes] {label}: {k} has shape {tuple(v.shape)}, expected {shape}")
    for dtype in (torch.float32, torch.float64):
        out = _eval(head, _round_into_bounds(head, lat, dtype), T.to(dtype), n.to(dtype))
        for k, v in out.items():
            if v.dtype != dtype:
                failures.append(f"[shapes] {k}: {dtype} inputs gave a {v.dtype} result")
    full = _eval(head, lat, T, n)
    for k in given:
        alone = _eval(head, lat, T, n, (k,))
        if set(alone) != {k}:
            failures.append(f"[shapes] asking for {k!r} alone returned {sorted(alone)}")
            continue
        _compare(
            failures,
            "shapes",
            k,
            alone[k],
            full[k],
            _scale(head, k, full[k], T, n),
            tol.BATCH_RTOL,
            lat,
            T,
            n,
            "(asked alone)",
        )


def _grad_inputs(
    head: PhysicsHead, lat: Mapping[str, Tensor], T: Tensor, dtype: torch.dtype
) -> tuple[dict[str, Tensor], Tensor]:
    la = {k: v.requires_grad_(True) for k, v in _round_into_bounds(head, lat, dtype).items()}
    return la, T.detach().to(dtype).requires_grad_(True)


def _check_finite(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    for dtype in (torch.float64, torch.float32):
        la, t = _grad_inputs(head, lat, T, dtype)
        nn_ = n.to(dtype)
        out = _eval(head, la, t, nn_)
        for k, v in out.items():
            bad = ~torch.isfinite(v.detach())
            if bool(bad.any()):
                idx = tuple(int(i) for i in torch.nonzero(bad)[0])
                failures.append(f"[finite] {k} ({dtype}) is {float(v.detach()[idx])} at {_where(lat, T, n, idx)}")
                continue
            grads = torch.autograd.grad(v.sum(), [*la.values(), t], retain_graph=True, allow_unused=True)
            for name, g in zip([*la, "temperature"], grads):
                if g is None:
                    continue
                badg = ~torch.isfinite(g)
                if bool(badg.any()):
                    idx = tuple(int(i) for i in torch.nonzero(badg)[0])
                    at = _where(lat, T, n, idx[:1] + ((0,) if name != "temperature" else idx[1:]))
                    failures.append(f"[finite] d{k}/d{name} ({dtype}) is {float(g[idx])} at {at}")


def range_temperatures(dtype: torch.dtype) -> Tensor:
    """K: 0, the smallest subnormal and normal numbers, every decade from 1e-30 up to the
    contract's :func:`~cloudphys.physics.contract.temperature_limit` of ``dtype``, and the limit."""
    fi = torch.finfo(dtype)
    limit = temperature_limit(dtype)
    values = [0.0, float(torch.tensor(fi.tiny, dtype=dtype) * fi.eps), float(fi.tiny)]
    values += [10.0**e for e in range(-30, int(math.log10(limit)) + 1)] + [limit]
    T = torch.tensor(values, dtype=dtype)
    return T[T <= limit]


def _check_range(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    for dtype in (torch.float32, torch.float64):
        temps = range_temperatures(dtype)
        la0 = _round_into_bounds(head, lat, dtype)
        B = next(iter(la0.values())).shape[0]
        t = temps.expand(B, -1).clone().requires_grad_(True)
        la = {k: v.clone().requires_grad_(True) for k, v in la0.items()}
        nn_ = n.to(dtype)
        out = _eval(head, la, t, nn_)
        for k, v in out.items():
            bad = ~torch.isfinite(v.detach())
            if bool(bad.any()):
                idx = tuple(int(i) for i in torch.nonzero(bad)[0])
                failures.append(
                    f"[range] {k} ({dtype}) is {float(v.detach()[idx])} at T = {float(temps[idx[1]]):g} K, "
                    f"{_where(lat, T, n, idx[:1] + (0,))}"
                )
                continue
            grads = torch.autograd.grad(v.sum(), [*la.values(), t], retain_graph=True, allow_unused=True)
            for name, g in zip([*la, "temperature"], grads):
                if g is not None and not bool(torch.isfinite(g).all()):
                    row = int(torch.nonzero(~torch.isfinite(g))[0][0])
                    failures.append(
                        f"[range] d{k}/d{name} ({dtype}) is not finite at row {row} "
                        f"(temperatures up to {temperature_limit(dtype):.3g} K)"
                    )
        # Element by element: the extreme temperatures do not change the ordinary ones.
        ordinary = (temps >= 1.0) & (temps <= 1e4)
        alone = _eval(head, la0, temps[ordinary].expand(B, -1), nn_)
        for k, v in alone.items():
            ref = out[k].detach()[:, ordinary]
            if not torch.allclose(v, ref, rtol=8 * torch.finfo(dtype).eps, atol=0.0):
                failures.append(f"[range] {k} ({dtype}) at 1-1e4 K differs when extreme temperatures share the batch")
        # Beyond the limit: a clear error, before any NaN or inf.
        above = torch.nextafter(
            torch.tensor(temperature_limit(dtype), dtype=dtype), torch.tensor(math.inf, dtype=dtype)
        )
        for bad_t in (float(above), math.inf, math.nan):
            try:
                _eval(head, la0, torch.full((B, 2), 300.0, dtype=dtype).index_fill_(1, torch.tensor([1]), bad_t), nn_)
            except ValueError as exc:
                if "temperature" not in str(exc):
                    failures.append(f"[range] T = {bad_t!r} K ({dtype}): error does not name the temperature: {exc}")
            else:
                failures.append(f"[range] T = {bad_t!r} K ({dtype}) was accepted (must be rejected)")
    # Integer inputs are promoted to torch's default dtype.
    ints = {
        s.name: torch.full((1, *s.shape), int(round(s.typical)), dtype=torch.int64)
        for s in head.latents
        if float(round(s.typical)) == s.typical
    }
    if len(ints) == len(head.latents):
        got = _eval(head, ints, torch.tensor([[0, 1, 300]]), torch.tensor([2]))
        for k, v in got.items():
            if not v.is_floating_point():
                failures.append(f"[range] {k}: integer inputs gave a {v.dtype} result (must be floating)")


def _check_dtype(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    for dtype in (torch.float32, torch.bfloat16):
        la, t, nn_ = _round_into_bounds(head, lat, dtype), T.to(dtype), n.to(dtype)
        try:
            low = _eval(head, la, t, nn_)
        except Exception as exc:
            failures.append(f"[dtype] {dtype} inputs: {type(exc).__name__}: {exc}")
            continue
        # Reference: float64 at exactly the rounded inputs, so only the head's arithmetic counts.
        la64, t64, n64 = _cast(la, torch.float64), t.to(torch.float64), nn_.to(torch.float64)
        ref = _eval(head, la64, t64, n64)
        for k, v in low.items():
            if v.dtype != dtype:
                failures.append(f"[dtype] {k}: {dtype} inputs gave a {v.dtype} result")
            _compare(
                failures,
                "dtype",
                k,
                v,
                ref[k],
                _scale(head, k, ref[k], t64, n64),
                tol.tolerance(dtype),
                la64,
                t64,
                n64,
                f"({dtype} vs float64)",
            )


def _check_batch(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    full = _eval(head, lat, T, n)

    def same(k: str, got: Tensor, ref: Tensor, la: Mapping[str, Tensor], t: Tensor, nn_: Tensor, what: str) -> None:
        _compare(failures, "batch", k, got, ref, _scale(head, k, ref, t, nn_), tol.BATCH_RTOL, la, t, nn_, what)

    for b in range(T.shape[0]):
        la = {k: v[b : b + 1] for k, v in lat.items()}
        one = _eval(head, la, T[b : b + 1], n[b : b + 1])
        for k in full:
            same(k, one[k], full[k][b : b + 1], la, T[b : b + 1], n[b : b + 1], "(one sample vs batch)")
    for j in range(T.shape[1]):
        col = _eval(head, lat, T[:, j], n)
        for k in full:
            same(k, col[k], full[k][:, j], lat, T[:, j], n, "(column vs curve)")
    # Unbatched latents broadcast over a [nT] temperature vector (nT samples of one material).
    first = {k: v[0] for k, v in lat.items()}
    bc = _eval(head, first, T[0], n[0])
    la = {k: v[:1] for k, v in lat.items()}
    for k in full:
        same(k, bc[k].unsqueeze(0), full[k][:1], la, T[:1], n[:1], "(unbatched latents broadcast)")


def _check_identities(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    given = set(_given(head))
    if not ({"u", "cv"} <= given or {"s", "f"} <= given or {"u", "s", "f"} <= given or {"s", "cv"} <= given):
        return
    la = _cast(lat, torch.float64)
    t = T.detach().to(torch.float64).requires_grad_(True)
    nn_ = n.to(torch.float64)
    out = _eval(head, la, t, nn_)
    rtol = tol.IDENTITY_RTOL

    def d_dT(y: Tensor) -> Tensor:
        (g,) = torch.autograd.grad(y.sum(), t, retain_graph=True)
        return g

    td = t.detach()
    if {"u", "cv"} <= given:
        _compare(
            failures,
            "identities",
            "cv",
            out["cv"],
            d_dT(out["u"]),
            _scale(head, "cv", out["cv"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= du/dT",
        )
    if {"s", "f"} <= given:
        _compare(
            failures,
            "identities",
            "s",
            out["s"],
            -d_dT(out["f"]),
            _scale(head, "s", out["s"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= -df/dT",
        )
    if {"u", "s", "f"} <= given:
        rhs = out["u"] - td * out["s"]
        _compare(
            failures,
            "identities",
            "f",
            out["f"],
            rhs,
            _scale(head, "f", out["f"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= u - T*s",
        )
    if {"s", "cv"} <= given:
        _compare(
            failures,
            "identities",
            "cv",
            out["cv"],
            td * d_dT(out["s"]),
            _scale(head, "cv", out["cv"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= T*ds/dT",
        )


def _heat_capacity(head: PhysicsHead, lat: Mapping[str, Tensor], T: Tensor, n: Tensor) -> Tensor | None:
    """cv from whatever the head gives (cv; du/dT; T·ds/dT; −T·d²f/dT²), float64."""
    given = set(_given(head))
    if "cv" in given:
        return _eval(head, lat, T, n, ("cv",))["cv"].detach()
    t = T.detach().to(torch.float64).requires_grad_(True)
    if "u" in given:
        (g,) = torch.autograd.grad(_eval(head, lat, t, n, ("u",))["u"].sum(), t)
        return g
    if "s" in given:
        (g,) = torch.autograd.grad(_eval(head, lat, t, n, ("s",))["s"].sum(), t)
        return t.detach() * g
    if "f" in given:
        f = _eval(head, lat, t, n, ("f",))["f"]
        (g,) = torch.autograd.grad(f.sum(), t, create_graph=True)
        (g2,) = torch.autograd.grad(g.sum(), t)
        return -t.detach() * g2
    return None


def _check_limits(
    head: PhysicsHead,
    lat: dict[str, Tensor],
    T: Tensor,
    n: Tensor,
    failures: list[str],
    *,
    classical_limit: bool = True,
    t_high: float = T_HIGH,
    **_: Any,
) -> None:
    given = set(_given(head))
    la = _cast(lat, torch.float64)
    out = _eval(head, la, T, n)
    rtol = tol.LIMIT_RTOL
    # Third law and stability: cv ≥ 0, s ≥ 0; at T = 0, cv = s = 0 and u = f.
    for k in ("cv", "s"):
        if k in out:
            neg = out[k] < -rtol * _scale(head, k, out[k], T, n)
            if bool(neg.any()):
                idx = tuple(int(i) for i in torch.nonzero(neg)[0])
                failures.append(f"[limits] {k} is negative ({float(out[k][idx]):.6g}) at {_where(lat, T, n, idx)}")
    zero = T == 0
    if bool(zero.any()):
        for k in ("cv", "s"):
            if k in out:
                _compare(
                    failures,
                    "limits",
                    k,
                    out[k] * zero,
                    torch.zeros_like(out[k]),
                    _scale(head, k, out[k], T, n),
                    rtol,
                    la,
                    T,
                    n,
                    "at T = 0",
                )
        if {"u", "f"} <= given:
            _compare(
                failures,
                "limits",
                "f",
                out["f"] * zero,
                out["u"] * zero,
                _scale(head, "u", out["u"], T, n),
                rtol,
                la,
                T,
                n,
                "= u at T = 0",
            )
    if not classical_limit:
        return
    th = torch.full((T.shape[0], 1), float(t_high), dtype=torch.float64)
    cv = _heat_capacity(head, la, th, n)
    nR3 = 3.0 * R_GAS * _nb(n, th)
    if cv is not None:
        _compare(
            failures,
            "limits",
            "cv",
            cv,
            nR3.expand_as(cv),
            nR3.expand_as(cv),
            rtol,
            la,
            th,
            n,
            f"-> 3nR at T = {t_high:g} K",
        )
    if "u" in given:
        u = _eval(head, la, th, n, ("u",))["u"]
        _compare(failures, "limits", "u", u, nR3 * th, nR3 * th, rtol, la, th, n, f"-> 3nRT at T = {t_high:g} K")


def _check_gradcheck(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    # Interior points: typical latents and the first random rows, temperatures away from 0.
    # Random rows with an even index have no element at a bound (see latent_grid).
    first = 3 + 2 * len(head.latents)
    rows = [0] + [r for r in (first, first + 2) if r < T.shape[0]]
    la = {k: v[rows].detach().to(torch.float64) for k, v in lat.items()}
    t = torch.tensor([[7.0, 60.0, 300.0, 1500.0]], dtype=torch.float64).expand(len(rows), 4).clone()
    nn_ = n[rows].to(torch.float64)
    names = list(la)
    obs = _given(head)
    scale = {k: (3.0 * R_GAS * nn_ * (1.0 if _is_per_kelvin(k) else 1000.0)).unsqueeze(-1) for k in obs}

    def fn(*inputs: Tensor) -> tuple[Tensor, ...]:
        out = _eval(head, dict(zip(names, inputs[:-1])), inputs[-1], nn_)
        return tuple(out[k] / scale[k] for k in obs)

    inputs = tuple(v.clone().requires_grad_(True) for v in la.values()) + (t.requires_grad_(True),)
    try:
        torch.autograd.gradcheck(fn, inputs, raise_exception=True, **tol.GRADCHECK)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        failures.append(f"[gradcheck] {' '.join(msg[:6])}")


_CHECK_FUNCS: dict[str, Callable[..., None]] = {
    "declarations": _check_declarations,
    "shapes": _check_shapes,
    "finite": _check_finite,
    "range": _check_range,
    "dtype": _check_dtype,
    "batch": _check_batch,
    "identities": _check_identities,
    "gradcheck": _check_gradcheck,
    "limits": _check_limits,
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
    :param classical_limit: check cv → 3nR, u → 3nRT at ``t_high`` (harmonic lattices).
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
