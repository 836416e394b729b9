"""The physics checks of the battery: thermodynamic ``identities`` by autograd, ``limits`` (third
law, stability, the classical limit) and ``gradcheck`` (see :mod:`cloudphys.testing.checks`)."""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from ..physics.contract import R_GAS, PhysicsHead
from . import tolerances as tol
from .compare import (
    atoms_like,
    cast_latents,
    compare,
    describe_point,
    error_scale,
    evaluate,
    given_observables,
    is_per_kelvin,
)

__all__ = ["T_HIGH", "check_gradcheck", "check_identities", "check_limits", "heat_capacity"]

#: Temperature (K) of the classical-limit check.
T_HIGH = 1e7


def check_identities(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    given = set(given_observables(head))
    if not ({"u", "cv"} <= given or {"s", "f"} <= given or {"u", "s", "f"} <= given or {"s", "cv"} <= given):
        return
    la = cast_latents(lat, torch.float64)
    t = T.detach().to(torch.float64).requires_grad_(True)
    nn_ = n.to(torch.float64)
    out = evaluate(head, la, t, nn_)
    rtol = tol.IDENTITY_RTOL

    def d_dT(y: Tensor) -> Tensor:
        (g,) = torch.autograd.grad(y.sum(), t, retain_graph=True)
        return g

    td = t.detach()
    if {"u", "cv"} <= given:
        compare(
            failures,
            "identities",
            "cv",
            out["cv"],
            d_dT(out["u"]),
            error_scale(head, "cv", out["cv"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= du/dT",
        )
    if {"s", "f"} <= given:
        compare(
            failures,
            "identities",
            "s",
            out["s"],
            -d_dT(out["f"]),
            error_scale(head, "s", out["s"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= -df/dT",
        )
    if {"u", "s", "f"} <= given:
        rhs = out["u"] - td * out["s"]
        compare(
            failures,
            "identities",
            "f",
            out["f"],
            rhs,
            error_scale(head, "f", out["f"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= u - T*s",
        )
    if {"s", "cv"} <= given:
        compare(
            failures,
            "identities",
            "cv",
            out["cv"],
            td * d_dT(out["s"]),
            error_scale(head, "cv", out["cv"], td, nn_),
            rtol,
            la,
            td,
            nn_,
            "= T*ds/dT",
        )


def heat_capacity(head: PhysicsHead, lat: Mapping[str, Tensor], T: Tensor, n: Tensor) -> Tensor | None:
    """cv from whatever the head gives (cv; du/dT; T·ds/dT; −T·d²f/dT²), float64."""
    given = set(given_observables(head))
    if "cv" in given:
        return evaluate(head, lat, T, n, ("cv",))["cv"].detach()
    t = T.detach().to(torch.float64).requires_grad_(True)
    if "u" in given:
        (g,) = torch.autograd.grad(evaluate(head, lat, t, n, ("u",))["u"].sum(), t)
        return g
    if "s" in given:
        (g,) = torch.autograd.grad(evaluate(head, lat, t, n, ("s",))["s"].sum(), t)
        return t.detach() * g
    if "f" in given:
        f = evaluate(head, lat, t, n, ("f",))["f"]
        (g,) = torch.autograd.grad(f.sum(), t, create_graph=True)
        (g2,) = torch.autograd.grad(g.sum(), t)
        return -t.detach() * g2
    return None


def check_limits(
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
    given = set(given_observables(head))
    la = cast_latents(lat, torch.float64)
    out = evaluate(head, la, T, n)
    rtol = tol.LIMIT_RTOL
    # Third law and stability: cv ≥ 0, s ≥ 0; at T = 0, cv = s = 0 and u = f.
    for k in ("cv", "s"):
        if k in out:
            neg = out[k] < -rtol * error_scale(head, k, out[k], T, n)
            if bool(neg.any()):
                idx = tuple(int(i) for i in torch.nonzero(neg)[0])
                failures.append(
                    f"[limits] {k} is negative ({float(out[k][idx]):.6g}) at {describe_point(lat, T, n, idx)}"
                )
    zero = T == 0
    if bool(zero.any()):
        for k in ("cv", "s"):
            if k in out:
                compare(
                    failures,
                    "limits",
                    k,
                    out[k] * zero,
                    torch.zeros_like(out[k]),
                    error_scale(head, k, out[k], T, n),
                    rtol,
                    la,
                    T,
                    n,
                    "at T = 0",
                )
        if {"u", "f"} <= given:
            compare(
                failures,
                "limits",
                "f",
                out["f"] * zero,
                out["u"] * zero,
                error_scale(head, "u", out["u"], T, n),
                rtol,
                la,
                T,
                n,
                "= u at T = 0",
            )
    if not classical_limit:
        return
    th = torch.full((T.shape[0], 1), float(t_high), dtype=torch.float64)
    cv = heat_capacity(head, la, th, n)
    nR3 = 3.0 * R_GAS * atoms_like(n, th)
    if cv is not None:
        compare(
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
        u = evaluate(head, la, th, n, ("u",))["u"]
        compare(failures, "limits", "u", u, nR3 * th, nR3 * th, rtol, la, th, n, f"-> 3nRT at T = {t_high:g} K")


def check_gradcheck(
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
    obs = given_observables(head)
    scale = {k: (3.0 * R_GAS * nn_ * (1.0 if is_per_kelvin(k) else 1000.0)).unsqueeze(-1) for k in obs}

    def fn(*inputs: Tensor) -> tuple[Tensor, ...]:
        out = evaluate(head, dict(zip(names, inputs[:-1])), inputs[-1], nn_)
        return tuple(out[k] / scale[k] for k in obs)

    inputs = tuple(v.clone().requires_grad_(True) for v in la.values()) + (t.requires_grad_(True),)
    try:
        torch.autograd.gradcheck(fn, inputs, raise_exception=True, **tol.GRADCHECK)
    except Exception as exc:
        msg = str(exc).strip().splitlines()
        failures.append(f"[gradcheck] {' '.join(msg[:6])}")
