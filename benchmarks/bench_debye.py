"""Accuracy and throughput of the Debye head against the published CLOUD-DEBYE formula.

    python benchmarks/bench_debye.py [--batch 1000000] [--repeats 5] [--threads N]

Prints two Markdown tables (pasted into docs/physics.md):

1. accuracy: max relative error against mpmath (40 digits) over θ/T in [1e-3, 1e4] (71 log-spaced
   ratios, θ = 1, 300, 2500 K) and at T = 0, per observable and dtype; u and f relative to
   n·R·(T + θ). The published formula (Gauss–Legendre nodes over [0, θ/T], integrand
   t⁴eᵗ/(eᵗ−1)², 20 nodes) is evaluated on the same points for cv.
2. throughput: cv evaluations per second in float32 on the CPU for a batch of ``--batch``
   (θ, T) pairs, ours vs the published formula with the same number of nodes, in the same process,
   best of ``--repeats``; plus ours for all four observables.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import mpmath
import numpy as np
import torch

from cloudphys.physics import R_GAS, DebyeHead, gauss_legendre
from cloudphys.physics.debye import default_order


def reference(theta: float, T: float, n: float = 1.0) -> dict[str, float]:
    with mpmath.workdps(40):
        R = mpmath.mpf(R_GAS)
        th, t = mpmath.mpf(theta), mpmath.mpf(T)
        zpe = mpmath.mpf(9) / 8 * n * R * th
        if t == 0:
            return {"u": float(zpe), "cv": 0.0, "s": 0.0, "f": float(zpe)}
        x = th / t
        pts = [0, x] if x <= 40 else [0, 20, 40, x]
        j = mpmath.quad(lambda y: y**3 / mpmath.expm1(y), pts)
        i4 = mpmath.quad(lambda y: y**4 * mpmath.exp(-y) / mpmath.expm1(-y) ** 2, pts)
        d3 = 3 * j / x**3
        u = zpe + 3 * n * R * t * d3
        s = n * R * (4 * d3 - 3 * mpmath.log(-mpmath.expm1(-x)))
        return {"u": float(u), "cv": float(9 * n * R * i4 / x**3), "s": float(s), "f": float(u - t * s)}


def published_cv(theta: torch.Tensor, T: torch.Tensor, n: torch.Tensor, order: int = 20) -> torch.Tensor:
    """The published CLOUD-DEBYE heat capacity: nodes over [0, θ/T], exp integrand."""
    xi, w = np.polynomial.legendre.leggauss(order)
    xi = torch.as_tensor(xi, dtype=theta.dtype)
    w = torch.as_tensor(w, dtype=theta.dtype)
    x_d = (theta / T).unsqueeze(-1)
    t = 0.5 * x_d * (xi + 1.0)
    integrand = t**4 * torch.exp(t) / (torch.exp(t) - 1.0) ** 2
    integral = (0.5 * x_d * w * integrand).sum(-1)
    return 9.0 * n * R_GAS * (T / theta) ** 3 * integral


def published_cv_cached(xi: torch.Tensor, w: torch.Tensor, theta, T, n) -> torch.Tensor:
    """Same formula with precomputed nodes (fair timing: no numpy per call)."""
    x_d = (theta / T).unsqueeze(-1)
    t = 0.5 * x_d * (xi + 1.0)
    e = torch.exp(t)
    integrand = t**4 * e / (e - 1.0) ** 2
    return 9.0 * n * R_GAS * (T / theta) ** 3 * (0.5 * x_d * w * integrand).sum(-1)


def accuracy_table() -> str:
    ratios = np.logspace(-3, 4, 71)
    thetas, temps = [], []
    for th in (1.0, 300.0, 2500.0):
        for r in ratios:
            thetas.append(th)
            temps.append(th / r)
        thetas.append(th)
        temps.append(0.0)
    n = 2.0
    refs = [reference(a, b, n) for a, b in zip(thetas, temps)]
    head = DebyeHead()
    rows = ["| model | dtype | nodes | u | cv | s | f | NaN/inf |", "|---|---|---|---|---|---|---|---|"]
    for dtype in (torch.float64, torch.float32):
        th = torch.tensor(thetas, dtype=dtype)
        T = torch.tensor(temps, dtype=dtype)
        out = head(latents={"theta_D": th}, temperature=T, n_atoms=n)
        cells, bad = [], 0
        for k in ("u", "cv", "s", "f"):
            got = out[k].double().numpy()
            ref = np.array([r[k] for r in refs])
            scale = n * R_GAS * (np.array(temps) + np.array(thetas)) if k in ("u", "f") else np.where(ref != 0, np.abs(ref), 1.0)
            cells.append(f"{np.max(np.abs(got - ref) / scale):.1e}")
            bad += int((~np.isfinite(got)).sum())
        rows.append(f"| cloudphys `debye` | {str(dtype).split('.')[-1]} | {default_order(dtype)} | " + " | ".join(cells) + f" | {bad} |")
        # the published formula on the T > 0 points (it divides by T)
        pos = T > 0
        cv = published_cv(th[pos], T[pos], torch.tensor(n, dtype=dtype)).double().numpy()
        ref = np.array([r["cv"] for r, p in zip(refs, pos.tolist()) if p])
        finite = np.isfinite(cv)
        err = np.max(np.abs(cv[finite] - ref[finite]) / ref[finite]) if finite.any() else float("nan")
        rows.append(f"| published (20 nodes on [0, θ/T]) | {str(dtype).split('.')[-1]} | 20 | – | {err:.1e} (finite points) | – | – | {int((~finite).sum())} |")
    # the published formula at θ/T = 600 in float64
    th = torch.tensor([300.0], dtype=torch.float64)
    T = torch.tensor([0.5], dtype=torch.float64)
    p600 = published_cv(th, T, torch.tensor(1.0, dtype=torch.float64)).item()
    r600 = reference(300.0, 0.5)["cv"]
    ours = DebyeHead()(latents={"theta_D": th}, temperature=T)["cv"].item()
    rows.append("")
    rows.append(
        f"At θ/T = 600 in float64: published relative error {abs(p600 - r600) / r600:.1%}, "
        f"cloudphys {abs(ours - r600) / r600:.1e}."
    )
    return "\n".join(rows)


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def throughput_table(batch: int, repeats: int) -> str:
    g = torch.Generator().manual_seed(0)
    theta = 50.0 + 1950.0 * torch.rand(batch, generator=g)
    T = 5.0 + 995.0 * torch.rand(batch, generator=g)  # θ/T ≤ 400: keep the published formula finite
    n = torch.ones(batch)
    order = default_order(torch.float32)
    head_cv = DebyeHead(observables=["cv"])
    head_all = DebyeHead()
    xi, w = gauss_legendre(order, torch.float32)
    xi = 2.0 * xi - 1.0  # back to [-1, 1]
    w = 2.0 * w
    with torch.no_grad():
        t_pub = best_time(lambda: published_cv_cached(xi, w, theta, T, n), repeats)
        t_cv = best_time(lambda: head_cv(latents={"theta_D": theta}, temperature=T, n_atoms=n), repeats)
        t_all = best_time(lambda: head_all(latents={"theta_D": theta}, temperature=T, n_atoms=n), repeats)
    rows = [
        f"| what (float32, batch {batch:.0e}, {order} nodes, {torch.get_num_threads()} threads) | evaluations/s | ratio to published |",
        "|---|---|---|",
        f"| published formula, cv | {batch / t_pub:.3g} | 1.00x |",
        f"| cloudphys `debye`, cv (with input validation) | {batch / t_cv:.3g} | {t_pub / t_cv:.2f}x |",
        f"| cloudphys `debye`, u, cv, s, f together | {batch / t_all:.3g} | {t_pub / t_all:.2f}x |",
    ]
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=1_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # a benchmark script, not library code
    print("## Accuracy\n")
    print(accuracy_table())
    print("\n## Throughput\n")
    print(throughput_table(args.batch, args.repeats))
    return 0


if __name__ == "__main__":
    sys.exit(main())
