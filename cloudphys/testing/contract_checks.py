"""The declaration and numerical-safety checks of the battery: ``declarations``, ``shapes``,
``finite``, ``range``, ``dtype``, ``batch`` (see :mod:`cloudphys.testing.checks` for what each asserts)."""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

import torch
from torch import Tensor

from ..physics.contract import LatentSpec, PhysicsHead, temperature_limit, validate_head_class
from . import tolerances as tol
from .compare import (
    cast_latents,
    compare,
    describe_point,
    error_scale,
    evaluate,
    given_observables,
    grad_inputs,
    nonfinite_values_and_gradients,
    round_into_bounds,
)
from .sampling import range_temperatures

__all__ = ["check_batch", "check_declarations", "check_dtype", "check_finite", "check_per_item", "check_range",
           "check_shapes"]


def check_declarations(
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
    a, b = evaluate(head, lat, T, n), evaluate(clone, lat, T, n)
    for k in a:
        compare(
            failures, "declarations", k, b[k], a[k], error_scale(head, k, a[k], T, n), 0.0, lat, T, n, "(rebuilt head)"
        )


def check_shapes(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    given = given_observables(head)
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
        out = evaluate(head, round_into_bounds(head, lat, dtype), T.to(dtype), n.to(dtype))
        for k, v in out.items():
            if v.dtype != dtype:
                failures.append(f"[shapes] {k}: {dtype} inputs gave a {v.dtype} result")
    full = evaluate(head, lat, T, n)
    for k in given:
        alone = evaluate(head, lat, T, n, (k,))
        if set(alone) != {k}:
            failures.append(f"[shapes] asking for {k!r} alone returned {sorted(alone)}")
            continue
        compare(
            failures,
            "shapes",
            k,
            alone[k],
            full[k],
            error_scale(head, k, full[k], T, n),
            tol.BATCH_RTOL,
            lat,
            T,
            n,
            "(asked alone)",
        )


def check_finite(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    for dtype in (torch.float64, torch.float32):
        la, t = grad_inputs(head, lat, T, dtype)
        nn_ = n.to(dtype)
        out = evaluate(head, la, t, nn_)
        for k, wrt, value, idx in nonfinite_values_and_gradients(out, {**la, "temperature": t}):
            if wrt is None:
                failures.append(f"[finite] {k} ({dtype}) is {value} at {describe_point(lat, T, n, idx)}")
            else:
                at = describe_point(lat, T, n, idx[:1] + ((0,) if wrt != "temperature" else idx[1:]))
                failures.append(f"[finite] d{k}/d{wrt} ({dtype}) is {value} at {at}")


def check_range(head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any) -> None:
    for dtype in (torch.float32, torch.float64):
        temps = range_temperatures(dtype)
        la0 = round_into_bounds(head, lat, dtype)
        B = next(iter(la0.values())).shape[0]
        t = temps.expand(B, -1).clone().requires_grad_(True)
        la = {k: v.clone().requires_grad_(True) for k, v in la0.items()}
        nn_ = n.to(dtype)
        out = evaluate(head, la, t, nn_)
        for k, wrt, value, idx in nonfinite_values_and_gradients(out, {**la, "temperature": t}):
            if wrt is None:
                failures.append(
                    f"[range] {k} ({dtype}) is {value} at T = {float(temps[idx[1]]):g} K, "
                    f"{describe_point(lat, T, n, idx[:1] + (0,))}"
                )
            else:
                failures.append(
                    f"[range] d{k}/d{wrt} ({dtype}) is not finite at row {idx[0]} "
                    f"(temperatures up to {temperature_limit(dtype):.3g} K)"
                )
        # Element by element: the extreme temperatures do not change the ordinary ones.
        ordinary = (temps >= 1.0) & (temps <= 1e4)
        alone = evaluate(head, la0, temps[ordinary].expand(B, -1), nn_)
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
                evaluate(
                    head, la0, torch.full((B, 2), 300.0, dtype=dtype).index_fill_(1, torch.tensor([1]), bad_t), nn_
                )
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
        got = evaluate(head, ints, torch.tensor([[0, 1, 300]]), torch.tensor([2]))
        for k, v in got.items():
            if not v.is_floating_point():
                failures.append(f"[range] {k}: integer inputs gave a {v.dtype} result (must be floating)")


def check_dtype(head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any) -> None:
    for dtype in (torch.float32, torch.bfloat16):
        la, t, nn_ = round_into_bounds(head, lat, dtype), T.to(dtype), n.to(dtype)
        try:
            low = evaluate(head, la, t, nn_)
        except Exception as exc:
            failures.append(f"[dtype] {dtype} inputs: {type(exc).__name__}: {exc}")
            continue
        # Reference: float64 at exactly the rounded inputs, so only the head's arithmetic counts.
        la64, t64, n64 = cast_latents(la, torch.float64), t.to(torch.float64), nn_.to(torch.float64)
        ref = evaluate(head, la64, t64, n64)
        for k, v in low.items():
            if v.dtype != dtype:
                failures.append(f"[dtype] {k}: {dtype} inputs gave a {v.dtype} result")
            compare(
                failures,
                "dtype",
                k,
                v,
                ref[k],
                error_scale(head, k, ref[k], t64, n64),
                tol.tolerance(dtype),
                la64,
                t64,
                n64,
                f"({dtype} vs float64)",
            )


def check_batch(head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any) -> None:
    full = evaluate(head, lat, T, n)

    def same(k: str, got: Tensor, ref: Tensor, la: Mapping[str, Tensor], t: Tensor, nn_: Tensor, what: str) -> None:
        compare(failures, "batch", k, got, ref, error_scale(head, k, ref, t, nn_), tol.BATCH_RTOL, la, t, nn_, what)

    for b in range(T.shape[0]):
        la = {k: v[b : b + 1] for k, v in lat.items()}
        one = evaluate(head, la, T[b : b + 1], n[b : b + 1])
        for k in full:
            same(k, one[k], full[k][b : b + 1], la, T[b : b + 1], n[b : b + 1], "(one sample vs batch)")
    for j in range(T.shape[1]):
        col = evaluate(head, lat, T[:, j], n)
        for k in full:
            same(k, col[k], full[k][:, j], lat, T[:, j], n, "(column vs curve)")
    # Unbatched latents broadcast over a [nT] temperature vector (nT samples of one material).
    first = {k: v[0] for k, v in lat.items()}
    bc = evaluate(head, first, T[0], n[0])
    la = {k: v[:1] for k, v in lat.items()}
    for k in full:
        same(k, bc[k].unsqueeze(0), full[k][:1], la, T[:1], n[:1], "(unbatched latents broadcast)")


def check_per_item(
    head: PhysicsHead, lat: dict[str, Tensor], T: Tensor, n: Tensor, failures: list[str], **_: Any
) -> None:
    """Observables that are not curves (``kind`` ``probability`` or ``scalar``, e.g. ``p_unstable``):
    the same value at every temperature; a probability in [0, 1] over the declared latent ranges
    (bounds included) with finite gradients w.r.t. every latent, float32 and float64; a head that
    does not declare ``temperature`` called without one gives one value per sample (``[B]``). A head
    with curves only passes trivially."""
    per_item = [s.name for s in head.observables if getattr(s, "kind", "curve") != "curve"]
    if not per_item:
        return
    for dtype in (torch.float64, torch.float32):
        la = {k: v.detach().clone().requires_grad_(True) for k, v in round_into_bounds(head, lat, dtype).items()}
        t, nn_ = T.to(dtype), n.to(dtype)
        out = head(latents=la, temperature=t, n_atoms=nn_, observables=tuple(per_item))
        for k in per_item:
            v = out[k]
            if tuple(v.shape) != tuple(t.shape):
                failures.append(f"[per_item] {k} ({dtype}) has shape {tuple(v.shape)}, expected {tuple(t.shape)}")
                continue
            vd = v.detach()
            if not bool((vd == vd[:, :1]).all()):
                failures.append(f"[per_item] {k} ({dtype}) changes with temperature (declared kind "
                                f"{head.observable(k).kind!r}: one value per item)")
            if not bool(torch.isfinite(vd).all()):
                failures.append(f"[per_item] {k} ({dtype}) is not finite somewhere over the latent ranges")
            if head.observable(k).kind == "probability" and bool(((vd < 0) | (vd > 1)).any()):
                idx = tuple(int(i) for i in torch.nonzero((vd < 0) | (vd > 1))[0])
                failures.append(f"[per_item] {k} ({dtype}) = {float(vd[idx])!r} is not a probability at "
                                f"{describe_point(lat, T, n, idx)}")
            grads = torch.autograd.grad(v.sum(), list(la.values()), allow_unused=True)
            for name, g in zip(la, grads):
                if g is not None and not bool(torch.isfinite(g).all()):
                    failures.append(f"[per_item] d{k}/d{name} ({dtype}) is not finite")
    if "temperature" not in head.conditions:
        try:
            alone = head(latents=dict(lat), n_atoms=n, observables=tuple(per_item))
        except Exception as exc:
            failures.append(f"[per_item] called without a temperature (the head declares none): "
                            f"{type(exc).__name__}: {exc}")
            return
        full = head(latents=dict(lat), temperature=T, n_atoms=n, observables=tuple(per_item))
        for k in per_item:
            if tuple(alone[k].shape) != (T.shape[0],):
                failures.append(f"[per_item] {k} without a temperature has shape {tuple(alone[k].shape)}, "
                                f"expected {(T.shape[0],)}")
            elif not torch.equal(alone[k], full[k][:, 0]):
                failures.append(f"[per_item] {k} without a temperature differs from its value along a curve")
