"""Physical floors of the physics heads on phonondb-thermo, and trained models against them.

    python benchmarks/bench_heads.py floors [--limit N] [--json out.json] [--plot docs/img/heads.png]
    python benchmarks/bench_heads.py trained RUN_DIR [RUN_DIR ...] [--floors floors.json] [--plot ...]

``floors``: for every head, latents fitted per material to the true Cv curve of phonondb-thermo's
stable ``test`` materials (grid points 20–1000 K, 24 temperatures), minimising the mean absolute
error; reported as MAE per atom, J/(K·mol-atom) (the best any model with that head can do):

* ``debye``, ``einstein``: θ on a 300-point log grid over the declared range, then a 41-point
  local grid around the best;
* ``debye-einstein``: (θ_D, θ_E) on a 90 × 90 log grid, then a 21 × 21 local grid;
* ``phonon-dos`` (K bins): for a fixed θ_max, Cv is linear in the mode counts g_k ≥ 0 with
  Σ g_k = 3n, so the least-absolute-error fit is a linear programme (scipy HiGHS); θ_max on a
  30-point log grid, then golden-section refinement.

Every fitted latent is evaluated through the head itself (``cloudphys.load_head``) in float64; the
heads of the plugins need ``pip install ./plugins/cloudphys-einstein ./plugins/cloudphys-phonon-dos``.

``trained``: test-set MAE per atom of trained models (run or model directories written by
``cloudphys train``) on cv, s, u over the same materials and temperatures, next to the floors.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

import cloudphys
from cloudphys.physics.harmonic import oscillator_thermo

T_RANGE = (20.0, 1000.0)


# -- data -------------------------------------------------------------------------------------
def data_root() -> Path:
    root = os.environ.get("CLOUDPHYS_DATA")
    if root:
        return Path(root)
    here = Path(__file__).resolve().parents[2] / "shared" / "data"
    return here


def load_test_curves(limit: int | None = None) -> dict[str, Any]:
    """Stable test materials of phonondb-thermo: ids, n_atoms [N], T [M], curves {cv,s,u,f: [N, M]}."""
    base = data_root() / "phonondb-thermo"
    grid = np.asarray(json.loads((base / "meta.json").read_text())["temperatures_K"], dtype=np.float64)
    split = json.loads((base / "split.json").read_text())
    keep = (grid >= T_RANGE[0]) & (grid <= T_RANGE[1])
    ids, n, curves = [], [], {k: [] for k in ("cv", "s", "u", "f")}
    with gzip.open(base / "materials.jsonl.gz", "rt") as fh:
        for line in fh:
            row = json.loads(line)
            if split.get(row["id"]) != "test" or not row["stable"]:
                continue
            ids.append(row["id"])
            n.append(float(row["n_atoms"]))
            for k in curves:
                curves[k].append(np.asarray(row[k], dtype=np.float64)[keep])
    order = np.argsort(ids)  # deterministic order
    if limit is not None:
        order = order[:limit]
    return {
        "ids": [ids[i] for i in order],
        "n_atoms": np.asarray(n)[order],
        "T": grid[keep],
        "curves": {k: np.stack(v)[order] for k, v in curves.items()},
    }


# -- fitting ----------------------------------------------------------------------------------
def _t64(x: Any) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def _cv(head: Any, latents: dict[str, torch.Tensor], T: torch.Tensor, n: torch.Tensor) -> torch.Tensor:
    return head(latents=latents, temperature=T, n_atoms=n, observables=("cv",))["cv"]


def _loss(residual: torch.Tensor, objective: str) -> torch.Tensor:
    """Per-material fit objective over the last (temperature) axis: mean |r| (l1) or mean r² (l2)."""
    return residual.abs().mean(-1) if objective == "l1" else residual.square().mean(-1)


def fit_scalar(name: str, latent: str, data: dict[str, Any], objective: str = "l1", points: int = 300, chunk: int = 64) -> dict[str, np.ndarray]:
    """One scalar latent θ: global log-grid search of the per-material Cv MAE, then a local grid."""
    head = cloudphys.load_head(name, observables=["cv"])
    spec = head.latent(latent)
    lo, hi = max(spec.lower, 5.0), spec.upper
    T, n, y = _t64(data["T"]), _t64(data["n_atoms"]), _t64(data["curves"]["cv"])
    N, M = y.shape
    grid = torch.logspace(math.log10(lo), math.log10(hi), points, dtype=torch.float64)
    step = (math.log(hi) - math.log(lo)) / (points - 1)
    best = torch.empty(N, dtype=torch.float64)
    for s in range(0, N, chunk):
        e = slice(s, min(N, s + chunk))
        b = y[e].shape[0]
        th = grid.repeat(b)  # [b * points]
        cv = _cv(head, {latent: th}, T.expand(b * points, M), n[e].repeat_interleave(points))
        loss = _loss(cv.view(b, points, M) - y[e, None], objective)
        best[e] = grid[loss.argmin(-1)]
    # Local refinement: 41 points within ±1 grid step.
    local = torch.linspace(-step, step, 41, dtype=torch.float64)
    th = (best.log()[:, None] + local).exp().clamp(spec.lower, spec.upper)  # [N, 41]
    cv = _cv(head, {latent: th.reshape(-1)}, T.expand(N * 41, M), n.repeat_interleave(41))
    loss = _loss(cv.view(N, 41, M) - y[:, None], objective)
    return {latent: th[torch.arange(N), loss.argmin(-1)].numpy()}


def fit_debye_einstein(data: dict[str, Any], objective: str = "l1", points: int = 90, chunk: int = 32) -> dict[str, np.ndarray]:
    """(θ_D, θ_E): global log grid (acoustic and optical parts tabulated separately), local grid."""
    head = cloudphys.load_head("debye-einstein", observables=["cv"])
    lo, hi = 5.0, 5000.0
    T, n, y = _t64(data["T"]), _t64(data["n_atoms"]), _t64(data["curves"]["cv"])
    N, M = y.shape
    grid = torch.logspace(math.log10(lo), math.log10(hi), points, dtype=torch.float64)
    step = (math.log(hi) - math.log(lo)) / (points - 1)
    debye = cloudphys.load_head("debye", observables=["cv"])
    acoustic = _cv(debye, {"theta_D": grid}, T.expand(points, M), torch.ones(points, dtype=torch.float64))  # [P, M]
    optical = oscillator_thermo(grid[:, None], T, ("cv",))["cv"]  # per mode, [P, M]
    best_d = torch.empty(N, dtype=torch.float64)
    best_e = torch.empty(N, dtype=torch.float64)
    for s in range(0, N, chunk):
        e = slice(s, min(N, s + chunk))
        modes = 3.0 * (n[e] - 1.0)  # [b]
        cv = acoustic[None, :, None, :] + modes[:, None, None, None] * optical[None, None, :, :]  # [b, P, P, M]
        loss = _loss(cv - y[e, None, None, :], objective).flatten(1)
        idx = loss.argmin(-1)
        best_d[e], best_e[e] = grid[idx // points], grid[idx % points]
    k = 21
    local = torch.linspace(-step, step, k, dtype=torch.float64)
    td = (best_d.log()[:, None, None] + local[None, :, None]).exp().expand(N, k, k).clamp(1.0, 5000.0)
    te = (best_e.log()[:, None, None] + local[None, None, :]).exp().expand(N, k, k).clamp(1.0, 5000.0)
    cv = _cv(head, {"theta_D": td.reshape(-1), "theta_E": te.reshape(-1)}, T.expand(N * k * k, M), n.repeat_interleave(k * k))
    loss = _loss(cv.view(N, k * k, M) - y[:, None], objective)
    idx = loss.argmin(-1)
    rows = torch.arange(N)
    return {"theta_D": td.reshape(N, -1)[rows, idx].numpy(), "theta_E": te.reshape(N, -1)[rows, idx].numpy()}


def _lp_fit(A: np.ndarray, y: np.ndarray, total: float) -> tuple[float, np.ndarray]:
    """min Σ|A g − y| s.t. g ≥ 0, Σ g = total (HiGHS); returns (mean abs error, g).

    Solved in units of ``total`` modes (y/total ≤ R) with design entries below 1e-12·R set to 0,
    which keeps HiGHS well conditioned; a θ_max at which no method converges scores +inf.
    """
    from scipy.optimize import linprog

    M, K = A.shape
    A = np.where(A < 1e-12 * 8.314462618, 0.0, A)
    yn = y / total
    # variables [g (K), e (M)]; A g − e ≤ y; −A g − e ≤ −y
    c = np.concatenate([np.zeros(K), np.ones(M)])
    A_ub = np.block([[A, -np.eye(M)], [-A, -np.eye(M)]])
    b_ub = np.concatenate([yn, -yn])
    A_eq = np.concatenate([np.ones(K), np.zeros(M)])[None]
    for method in ("highs", "highs-ipm", "highs-ds"):
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=[1.0], bounds=(0, None), method=method)
        if res.status == 0:
            g = np.clip(res.x[:K], 0.0, None) * total
            return float(np.abs(A @ g - y).mean()), g
    return math.inf, np.full(K, total / K)


def _ls_fit(A: np.ndarray, y: np.ndarray, total: float) -> tuple[float, np.ndarray]:
    """min Σ(A g − y)² s.t. g ≥ 0, Σ g = total (NNLS with a heavily weighted sum row);
    returns (mean squared error, g)."""
    from scipy.optimize import nnls

    K = A.shape[1]
    A = np.where(A < 1e-12 * 8.314462618, 0.0, A)
    lam = 1e4
    g, _ = nnls(np.vstack([A, lam * np.ones((1, K))]), np.concatenate([y / total, [lam]]), maxiter=50 * K)
    g = g * total / g.sum() if g.sum() > 0 else np.full(K, total / K)
    return float(np.square(A @ g - y).mean()), g


def fit_dos(data: dict[str, Any], bins: int = 16, objective: str = "l1", coarse: int = 30, golden: int = 14) -> dict[str, np.ndarray]:
    """Per material: LP (l1) or NNLS (l2) for the mode counts at fixed θ_max, θ_max by grid +
    golden section."""
    from cloudphys_phonon_dos.head import THETA_MAX_BOUNDS

    T, n, y = data["T"], data["n_atoms"], data["curves"]["cv"]
    N = y.shape[0]
    centres = (np.arange(bins) + 0.5) / bins
    lo, hi = math.log(30.0), math.log(THETA_MAX_BOUNDS[1])
    grid = np.linspace(lo, hi, coarse)

    def design(log_tmax: float) -> np.ndarray:
        theta = torch.as_tensor(math.exp(log_tmax) * centres, dtype=torch.float64)
        return oscillator_thermo(theta[None, :], torch.as_tensor(T, dtype=torch.float64)[:, None], ("cv",))["cv"].numpy()

    designs = [design(v) for v in grid]
    solve = _lp_fit if objective == "l1" else _ls_fit
    weights = np.zeros((N, bins))
    tmax = np.zeros(N)
    gr = (math.sqrt(5) - 1) / 2
    for i in range(N):
        total = 3.0 * n[i]
        errs = [solve(A, y[i], total)[0] for A in designs]
        j = int(np.argmin(errs))
        a, b = grid[max(j - 1, 0)], grid[min(j + 1, coarse - 1)]
        best = (errs[j], grid[j])
        c, d = b - gr * (b - a), a + gr * (b - a)
        fc, fd = solve(design(c), y[i], total)[0], solve(design(d), y[i], total)[0]
        for _ in range(golden):
            if fc < fd:
                b, d, fd = d, c, fc
                c = b - gr * (b - a)
                fc = solve(design(c), y[i], total)[0]
            else:
                a, c, fc = c, d, fd
                d = a + gr * (b - a)
                fd = solve(design(d), y[i], total)[0]
        for f, v in ((fc, c), (fd, d)):
            if f < best[0]:
                best = (f, v)
        _, g = solve(design(best[1]), y[i], total)
        weights[i] = g
        tmax[i] = math.exp(best[1])
    return {"dos": weights, "theta_max": tmax}


def evaluate(name: str, latents: dict[str, np.ndarray], data: dict[str, Any], params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cv MAE per atom of ``latents`` through the head (float64); per-material values too."""
    head = cloudphys.load_head(name, observables=["cv"], **(params or {}))
    T, n, y = _t64(data["T"]), _t64(data["n_atoms"]), _t64(data["curves"]["cv"])
    lat = {k: _t64(v) for k, v in latents.items()}
    cv = _cv(head, lat, T.expand(len(n), -1), n)
    per_atom = ((cv - y).abs() / n[:, None]).mean(-1)
    return {"mae": float(per_atom.mean()), "per_material": per_atom.numpy(), "cv": cv.numpy()}


FLOOR_HEADS: list[tuple[str, str, dict[str, Any]]] = [
    ("debye", "Debye (θ_D)", {}),
    ("einstein", "Einstein (θ_E)", {}),
    ("debye-einstein", "Debye + Einstein (θ_D, θ_E)", {}),
    ("phonon-dos", "phonon DOS, 16 bins (+ θ_max)", {"bins": 16}),
    ("phonon-dos", "phonon DOS, 8 bins (+ θ_max)", {"bins": 8}),
]


def run_floors(args: argparse.Namespace) -> dict[str, Any]:
    torch.set_num_threads(args.threads) if args.threads else None
    t0 = time.perf_counter()
    data = load_test_curves(args.limit)
    print(f"phonondb-thermo test, stable: {len(data['ids'])} materials, {len(data['T'])} temperatures "
          f"{data['T'][0]:g}-{data['T'][-1]:g} K", file=sys.stderr)
    results = []
    for name, label, params in FLOOR_HEADS:
        t = time.perf_counter()
        if name in ("debye", "einstein"):
            lat = fit_scalar(name, "theta_D" if name == "debye" else "theta_E", data, args.objective)
        elif name == "debye-einstein":
            lat = fit_debye_einstein(data, args.objective)
        else:
            lat = fit_dos(data, bins=params["bins"], objective=args.objective)
        ev = evaluate(name, lat, data, params)
        pm = ev["per_material"]
        results.append({
            "head": name, "label": label, "params": params, "mae": ev["mae"],
            "median": float(np.median(pm)), "p90": float(np.quantile(pm, 0.9)), "max": float(pm.max()),
            "seconds": time.perf_counter() - t,
            "latents": {k: np.asarray(v).tolist() for k, v in lat.items()},
            "per_material": pm.tolist(),
        })
        print(f"  {label}: MAE {ev['mae']:.4f} J/(K mol-atom) ({time.perf_counter() - t:.0f} s)", file=sys.stderr)
    out = {"ids": data["ids"], "n_atoms": data["n_atoms"].tolist(), "T": data["T"].tolist(), "floors": results,
           "objective": args.objective,
           "seconds": time.perf_counter() - t0}
    fit = "least absolute error" if args.objective == "l1" else "least squares"
    print(f"| head ({fit} fit) | Cv MAE per atom, J/(K·mol-atom) | median | 90th percentile | max |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['label']} | {r['mae']:.4f} | {r['median']:.4f} | {r['p90']:.4f} | {r['max']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out))
    if args.plot:
        plot_floors(out, data, args.plot)
    return out


def plot_floors(out: dict[str, Any], data: dict[str, Any], path: str, trained: list[dict[str, Any]] | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    floors = out["floors"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    labels = [r["label"] for r in floors]
    ax.barh(range(len(floors)), [r["mae"] for r in floors], color="tab:blue", label="floor (latents fitted per material)")
    if trained:
        by = {(t["head"], t.get("bins")): t for t in trained}
        xs = [by.get((r["head"], r["params"].get("bins"))) for r in floors]
        ax.scatter([x["cv"] if x else np.nan for x in xs], range(len(floors)), color="tab:red", marker="D", zorder=3,
                   label="trained model (test set)")
    ax.set_yticks(range(len(floors)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("Cv MAE per atom, J/(K·mol-atom), 20–1000 K")
    ax.set_title(f"phonondb-thermo test (stable, {len(out['ids'])} materials)")
    ax.legend(loc="lower right", fontsize=8)
    # Example curves: the material at the median Debye floor.
    debye = np.asarray(floors[0]["per_material"])
    i = int(np.argsort(debye)[len(debye) // 2])
    ax = axes[1]
    T, n = np.asarray(out["T"]), out["n_atoms"][i]
    ax.plot(T, data["curves"]["cv"][i] / n, "k.", label="phonopy (true)")
    for r in floors[:4]:
        lat = {k: np.asarray(v)[i : i + 1] for k, v in r["latents"].items()}
        ev = evaluate(r["head"], lat, {"T": T, "n_atoms": np.asarray([n]), "curves": {"cv": data["curves"]["cv"][i : i + 1]}}, r["params"])
        ax.plot(T, ev["cv"][0] / n, label=r["label"])
    ax.set_xscale("log")
    ax.set_xlabel("T (K)")
    ax.set_ylabel("Cv per atom, J/(K·mol-atom)")
    ax.set_title(f"{out['ids'][i]} (median Debye floor)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def run_trained(args: argparse.Namespace) -> list[dict[str, Any]]:
    from cloudphys.modeling.model import resolve_model_dir
    from cloudphys.training.evaluation import evaluate as evaluate_run

    floors = json.loads(Path(args.floors).read_text()) if args.floors else None
    floor_of = {(r["head"], r["params"].get("bins")): r["mae"] for r in (floors or {}).get("floors", [])}
    rows = []
    for run in args.runs:
        m = evaluate_run(run, "test", device=args.device)
        obs = m["observables"]
        head_cfg = json.loads((resolve_model_dir(run) / "head.json").read_text()).get("config", {})
        bins = head_cfg.get("bins") if m["head"] == "phonon-dos" else None
        rows.append({
            "run": str(run), "head": m["head"], "bins": bins, "n": m["n"],
            "temperatures": [m["temperatures"][0], m["temperatures"][-1], len(m["temperatures"])],
            **{k: (obs[k]["mae_per_atom"] if k in obs else None) for k in ("cv", "s", "u", "f")},
            "floor_cv": floor_of.get((m["head"], bins)),
        })
        print(f"  {run}: {rows[-1]}", file=sys.stderr)
    print("| head | test materials | cv MAE per atom, J/(K·mol-atom) | s MAE per atom, J/(K·mol-atom) | u MAE per atom, J/mol-atom | cv floor |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        fmt = lambda v, d=3: "–" if v is None else f"{v:.{d}f}"  # noqa: E731
        label = r["head"] + (f" ({r['bins']} bins)" if r["bins"] else "")
        print(f"| {label} | {r['n']} | {fmt(r['cv'])} | {fmt(r['s'])} | {fmt(r['u'], 1)} | {fmt(r['floor_cv'], 4)} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.plot:
        if floors is None:
            raise SystemExit("--plot needs --floors (the JSON written by the floors command)")
        plot_floors(floors, load_test_curves(), args.plot, trained=rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("floors", help="fit latents per material to the true Cv curves")
    p.add_argument("--limit", type=int, default=None, help="first N materials only (quick runs)")
    p.add_argument("--json", default=None, help="write results (with fitted latents) here")
    p.add_argument("--plot", default=None, help="write the figure here (PNG)")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--objective", choices=("l1", "l2"), default="l1",
                   help="fit by least absolute error (l1, the MAE floor; default) or least squares (l2)")
    p.set_defaults(func=run_floors)
    p = sub.add_parser("trained", help="test-set errors of trained runs (cloudphys train) next to the floors")
    p.add_argument("runs", nargs="+", help="run directories written by `cloudphys train`")
    p.add_argument("--floors", default=None, help="JSON written by the floors command")
    p.add_argument("--json", default=None, help="write the rows here")
    p.add_argument("--plot", default=None, help="write the figure (floors + trained) here (PNG)")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=run_trained)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
