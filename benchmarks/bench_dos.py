"""Issue 20: whole-curve and phonon-DOS accuracy of phonon-DOS models on the stable phonondb-thermo test (or val) split.

For each model (a registered name such as ``phonondb-dos``, a model/ensemble directory or a run
directory) on the stable ``test`` materials of phonondb-thermo (``split.json``), per atom:

* cv MAE over the 24 grid temperatures 20-1000 K and over 20-150 K; s and u MAE (20-1000 K) and their
  signed mean errors (a constant offset would show there); a per-temperature table;
* the DOS: the exact Wasserstein-1 distance per mode (THz) between the model's histogram DOS and
  phonopy's 128-bin DOS of the same run (:func:`cloudphys.training.losses.dos_w1`), the mean
  frequency ω̄ error, and the data set's own floor (its 128-bin labels summed into the model's bins);
* the metrics published phonon-DOS predictors report, computed on our data: both DOSes as densities
  on 51 equal points 0-1000 cm⁻¹ (cell averages of width 20 cm⁻¹ from the exact cumulative DOS),
  max-normalised: MSE, MAE and R² (E3NN, Chen et al. Adv. Sci. 2021; Mat2Spec, Kong et al. Nat.
  Commun. 2022, "MaxNorm"); sum-normalised on that grid: the Wasserstein distance in cm⁻¹
  ("SumNorm", "WD"); Cv at 300 K MAE and ω̄ MAE (cm⁻¹) calculated from the spectra;
* where the error sits by formula (:func:`formula_breakdown`): the split groups polymorphs by formula,
  and one formula can carry many of them (66 ZnS polytypes are 10 % of the test materials), so besides
  the MAE over materials it prints the MAE with every formula weighted once ("formula-balanced") and
  the formulas that carry the largest shares of each MAE. The MAE over materials stays the metric.

    pip install ./plugins/cloudphys-phonon-dos
    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_dos.py phonondb-dos runs/w1 --json dos.json

``--split val`` scores the stable ``val`` materials instead. A model that reads geometric features
(``encoder.geometric_features``) is given the structures of the materials (their features come with
the split: :func:`cloudphys.modeling.encoding.load_split`).
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

THZ_PER_CM = 1.0 / 33.35640951981521  # 1 cm⁻¹ in THz
GRID51_CM = np.linspace(0.0, 1000.0, 51)  # the 51-point grid, cm⁻¹
LOW_T = (20.0, 150.0)
R_GAS = 8.314462618


def _model_path(name: str) -> str:
    p = Path(name)
    if p.exists():
        return str(p)
    from cloudphys.models.registry import SHIPPED_DIR  # a shipped model

    return str(Path(SHIPPED_DIR) / name)


def _cell_density(mass: torch.Tensor, edges: torch.Tensor, atom: torch.Tensor | None,
                  centres_thz: np.ndarray) -> np.ndarray:
    """Modes per THz averaged over cells of the grid's spacing around each centre (clipped at 0)."""
    from cloudphys.physics.spectrum import histogram_cdf

    step = float(centres_thz[1] - centres_thz[0])
    lo = torch.tensor(np.clip(centres_thz - step / 2, 0.0, None), dtype=torch.float64)
    hi = torch.tensor(centres_thz + step / 2, dtype=torch.float64)
    B = mass.shape[0]
    lo, hi = lo.expand(B, -1).contiguous(), hi.expand(B, -1).contiguous()
    n_hi = histogram_cdf(hi, mass, edges, atom)
    n_lo = histogram_cdf(lo, mass, edges, None)  # the atom at 0 falls in the first cell
    return ((n_hi - n_lo) / (hi - lo)).numpy()


def formula_breakdown(formulas: list[str], per_material: dict[str, np.ndarray], top: int = 3) -> dict[str, Any]:
    """Where an MAE over materials comes from, by formula.

    :param formulas: one reduced formula per material.
    :param per_material: measure -> each material's own mean absolute error (same order).
    :returns: ``formulas`` (distinct count), ``balanced`` (measure -> the mean over formulas of each
        formula's mean error: every formula weighted once) and ``largest`` (measure -> the ``top``
        formulas by their share of the MAE: ``[formula, materials, share]``, largest first).
    """
    keys = np.asarray(formulas)
    names, inv, counts = np.unique(keys, return_inverse=True, return_counts=True)
    out: dict[str, Any] = {"formulas": int(len(names)), "balanced": {}, "largest": {}}
    for measure, err in per_material.items():
        err = np.asarray(err, dtype=np.float64)
        if err.shape != keys.shape:
            raise ValueError(f"{measure}: {err.shape[0] if err.ndim else 0} errors for {len(keys)} formulas")
        sums = np.bincount(inv, weights=err, minlength=len(names))
        out["balanced"][measure] = float((sums / counts).mean())
        order = np.argsort(-sums, kind="stable")[:top]
        total = float(sums.sum())
        out["largest"][measure] = [[str(names[j]), int(counts[j]), float(sums[j] / total) if total > 0 else 0.0]
                                   for j in order]
    return out


@functools.lru_cache(maxsize=1)
def _formula_map() -> dict[str, str]:
    """id -> reduced formula of every phonondb-thermo material (its ``materials.jsonl.gz``, read once a process)."""
    from cloudphys.data.download import fetch
    from cloudphys.data.phonondb import PHONONDB_FILES
    from cloudphys.data.thermo_jsonl import iter_jsonl

    path = fetch(PHONONDB_FILES["phonondb-thermo/materials.jsonl.gz"], dataset="phonondb-thermo")
    return {str(row.get("id")): str(row.get("formula")) for _, row in iter_jsonl(path)}


def _formulas(ids: list[str]) -> list[str]:
    """The reduced formula of each phonondb-thermo id."""
    found = _formula_map()
    missing = [i for i in ids if i not in found]
    if missing:
        raise SystemExit(f"{len(missing)} ids not in phonondb-thermo's materials.jsonl.gz, e.g. {missing[0]}")
    return [found[i] for i in ids]


def evaluate_dos_model(name: str, *, device: str = "cpu", split: str = "test") -> dict[str, Any]:
    from cloudphys.config import load_config
    from cloudphys.modeling.core import load_core, predict_encoded
    from cloudphys.modeling.encoding import encode, load_split
    from cloudphys.physics.spectrum import equal_edges, wasserstein1
    from cloudphys.training.losses import dos_w1

    t0 = time.perf_counter()
    model = load_core(_model_path(name))
    config = load_config(model.meta["config"], overrides=["data.temperature_range=[20, 1000]",
                                                          "data.observables=[cv, s, u]", "data.stable=true"])
    ex = load_split(config, split)  # with the structures' geometric features for a model that reads them
    if ex.dos is None:
        raise SystemExit(f"the {split} split carries no DOS labels: update phonondb-thermo (materials.jsonl.gz with dos)")
    obs = ["cv", "s", "u"]
    enc = encode(ex, model, obs)
    preds, lat = predict_encoded(model, enc, device=device, observables=obs)
    n = np.asarray(ex.n_atoms, dtype=np.float64)
    T = np.asarray(ex.temperatures)
    low = (T >= LOW_T[0]) & (T <= LOW_T[1])
    err = {o: (preds[o] - ex.targets[o]) / n[:, None] for o in obs}
    out: dict[str, Any] = {
        "model": name, "split": split, "head": model.head.name, "bins": getattr(model.head, "bins", None), "materials": len(ex),
        "cv_mae": float(np.abs(err["cv"]).mean()), "cv_mae_20_150": float(np.abs(err["cv"][:, low]).mean()),
        "s_mae": float(np.abs(err["s"]).mean()), "u_mae": float(np.abs(err["u"]).mean()),
        "s_signed": float(err["s"].mean()), "u_signed": float(err["u"].mean()),
        "per_temperature": {f"{t:g}": {o: float(np.abs(err[o][:, j]).mean()) for o in obs} for j, t in enumerate(T)},
    }
    out["by_formula"] = formula_breakdown(_formulas(list(ex.ids)), {
        "cv": np.abs(err["cv"]).mean(1), "cv_20_150": np.abs(err["cv"][:, low]).mean(1),
        "s": np.abs(err["s"]).mean(1), "u": np.abs(err["u"]).mean(1)})
    # -- the DOS --
    latt = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in lat.items()}
    nt = torch.as_tensor(n)
    labels = {"mass": torch.as_tensor(ex.dos), "fmax_thz": torch.as_tensor(ex.dos_fmax_thz),
              "atom": torch.as_tensor(ex.dos_atom)}
    w1 = dos_w1(model.head, latt, nt, labels, reduce=False).numpy()
    out["dos_w1_thz"] = float(np.nanmean(w1))
    out["dos_w1_thz_median"] = float(np.nanmedian(w1))
    edges, g = model.head.dos_histogram(latt, nt)
    K = g.shape[-1]
    lab_edges = equal_edges(labels["fmax_thz"], ex.dos.shape[1])
    # the data's floor at this resolution: the label summed into K bins on its own range (K | 128)
    if ex.dos.shape[1] % K == 0:
        coarse = labels["mass"].reshape(len(ex), K, -1).sum(-1)
        floor = wasserstein1(coarse, equal_edges(labels["fmax_thz"], K), labels["mass"], lab_edges,
                             per=labels["mass"].sum(-1) + labels["atom"], atom_b=labels["atom"])
        out["dos_w1_floor_thz"] = float(floor.mean())
    mid_p = 0.5 * (edges[:, 1:] + edges[:, :-1])
    mid_l = 0.5 * (lab_edges[:, 1:] + lab_edges[:, :-1])
    wbar_p = (g * mid_p).sum(-1) / g.sum(-1)
    wbar_l = (labels["mass"] * mid_l).sum(-1) / (labels["mass"].sum(-1) + labels["atom"])
    out["mean_freq_mae_thz"] = float((wbar_p - wbar_l).abs().mean())
    out["mean_freq_signed_thz"] = float((wbar_p - wbar_l).mean())
    # -- published metrics, on the 51-point grid 0-1000 cm⁻¹ --
    centres = GRID51_CM * THZ_PER_CM
    dp = _cell_density(g.double(), edges.double(), None, centres)
    dl = _cell_density(labels["mass"], lab_edges, labels["atom"], centres)
    mp = dp / np.maximum(dp.max(1, keepdims=True), 1e-300)
    ml = dl / np.maximum(dl.max(1, keepdims=True), 1e-300)
    out["maxnorm_mse"] = float(((mp - ml) ** 2).mean())
    out["maxnorm_mae"] = float(np.abs(mp - ml).mean())
    out["maxnorm_r2"] = float(1 - ((mp - ml) ** 2).sum() / ((ml - ml.mean()) ** 2).sum())
    sp = dp / np.maximum(dp.sum(1, keepdims=True), 1e-300)
    sl = dl / np.maximum(dl.sum(1, keepdims=True), 1e-300)
    step_cm = float(GRID51_CM[1] - GRID51_CM[0])
    out["sumnorm_wd_cm"] = float((np.abs(np.cumsum(sp - sl, 1)).sum(1) * step_cm).mean())
    out["dos_w1_cm"] = out["dos_w1_thz"] / THZ_PER_CM
    out["mean_freq_mae_cm"] = out["mean_freq_mae_thz"] / THZ_PER_CM
    out["beyond_1000cm"] = int((ex.dos_fmax_thz > 1000 * THZ_PER_CM).sum())
    j300 = int(np.argmin(np.abs(T - 300.0)))
    out["cv300_mae_per_atom"] = float(np.abs(err["cv"][:, j300]).mean())
    out["cv300_mae_per_cell"] = float(np.abs(preds["cv"][:, j300] - ex.targets["cv"][:, j300]).mean())
    out["seconds"] = time.perf_counter() - t0
    return out


def markdown(results: list[dict[str, Any]]) -> str:
    lines = ["| model | bins | cv 20-1000 K | cv 20-150 K | s | u | s signed | u signed | DOS W1 (THz) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['bins']} | {r['cv_mae']:.3f} | {r['cv_mae_20_150']:.3f} | {r['s_mae']:.3f} | "
                     f"{r['u_mae']:.1f} | {r['s_signed']:+.3f} | {r['u_signed']:+.1f} | {r['dos_w1_thz']:.3f} |")
    lines += ["", f"Published metrics on our {results[0].get('split', 'test')} split (51 points 0-1000 cm⁻¹):", "",
              "| model | MaxNorm MSE | MaxNorm MAE | MaxNorm R² | SumNorm WD (cm⁻¹) | exact W1 (cm⁻¹) | "
              "Cv(300 K) MAE (J/(K·mol-atom)) | Cv(300 K) MAE (J/(K·mol-cell)) | ω̄ MAE (cm⁻¹) |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['maxnorm_mse']:.4f} | {r['maxnorm_mae']:.4f} | {r['maxnorm_r2']:.3f} | "
                     f"{r['sumnorm_wd_cm']:.1f} | {r['dos_w1_cm']:.1f} | {r['cv300_mae_per_atom']:.3f} | "
                     f"{r['cv300_mae_per_cell']:.2f} | {r['mean_freq_mae_cm']:.1f} |")
    lines += ["", "By formula (the split groups polymorphs by formula): the MAE with every formula weighted once, "
              "and the formulas with the largest shares of the MAE over materials:", "",
              "| model | formulas | cv | cv 20-150 K | s | u | largest shares: cv 20-150 K | s |",
              "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in results:
        b = r["by_formula"]

        def shares(measure: str, b: dict[str, Any] = b) -> str:
            return ", ".join(f"{f} ×{n} {100 * share:.0f} %" for f, n, share in b["largest"][measure])

        lines.append(f"| {r['model']} | {b['formulas']} | {b['balanced']['cv']:.3f} | {b['balanced']['cv_20_150']:.3f} | "
                     f"{b['balanced']['s']:.3f} | {b['balanced']['u']:.1f} | {shares('cv_20_150')} | {shares('s')} |")
    temps = list(results[0]["per_temperature"])
    lines += ["", "cv / s / u MAE per atom by temperature:", "",
              "| T (K) | " + " | ".join(f"{r['model']} cv | s | u" for r in results) + " |",
              "|---:|" + "---:|---:|---:|" * len(results)]
    for t in temps:
        cells = " | ".join(f"{r['per_temperature'][t]['cv']:.3f} | {r['per_temperature'][t]['s']:.3f} | "
                           f"{r['per_temperature'][t]['u']:.1f}" for r in results)
        lines.append(f"| {t} | {cells} |")
    return "\n".join(lines)


CARD_START, CARD_END = "<!-- metrics:start -->", "<!-- metrics:end -->"
CARD_TEMPERATURES = ("20", "50", "100", "150", "300", "1000")


def card_metrics(r: dict[str, Any]) -> str:
    """The metrics block of a model card (between :data:`CARD_START` and :data:`CARD_END`), from one
    :func:`evaluate_dos_model` result: what ``--card`` prints and ``tests/test_model_card_numbers.py``
    recomputes for the shipped ``phonondb-dos``."""
    pt = r["per_temperature"]
    lines = [
        CARD_START,
        f"On the {r['materials']} stable `{r.get('split', 'test')}` materials, 20–1000 K ({len(pt)} temperatures), per atom:",
        "",
        "| observable | MAE per atom |",
        "|---|---|",
        f"| cv, 20–1000 K | {r['cv_mae']:.3f} J/(K·mol-atom) |",
        f"| cv, 20–150 K | {r['cv_mae_20_150']:.3f} J/(K·mol-atom) |",
        f"| s | {r['s_mae']:.3f} J/(K·mol-atom) (signed mean {r['s_signed']:+.3f}) |",
        f"| u | {r['u_mae']:.1f} J/mol-atom (signed mean {r['u_signed']:+.1f}) |",
        f"| DOS, Wasserstein-1 to phonopy's DOS | {r['dos_w1_thz']:.3f} THz per mode (median {r['dos_w1_thz_median']:.3f}) |",
        f"| mean frequency ω̄ | {r['mean_freq_mae_thz']:.3f} THz |",
        "",
        "cv MAE per atom by temperature: " + ", ".join(f"{pt[t]['cv']:.3f} ({t} K)" for t in CARD_TEMPERATURES
                                                       if t in pt) + ".",
        f"u at 20 K (almost all zero-point energy): {pt['20']['u']:.1f} J/mol-atom." if "20" in pt else "",
        "In the metrics of published DOS predictors (51 points 0–1000 cm⁻¹): "
        f"MaxNorm MSE {r['maxnorm_mse']:.4f}, MAE {r['maxnorm_mae']:.4f}, R² {r['maxnorm_r2']:.3f}; "
        f"SumNorm WD {r['sumnorm_wd_cm']:.1f} cm⁻¹; Cv(300 K) MAE {r['cv300_mae_per_atom']:.3f} J/(K·mol-atom); "
        f"ω̄ MAE {r['mean_freq_mae_cm']:.1f} cm⁻¹.",
        CARD_END,
    ]
    return "\n".join(line for line in lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+", help="registered names, model/ensemble or run directories")
    ap.add_argument("--split", default="test", choices=("test", "val"),
                    help="the stable materials of this phonondb-thermo split (default test; val: where decisions are made)")
    ap.add_argument("--json", help="also write the numbers here (atomically)")
    ap.add_argument("--card", action="store_true",
                    help="also print each model's model-card metrics block (what the shipped card carries)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results = [evaluate_dos_model(m, split=args.split) for m in args.models]
    print(f"phonondb-thermo {args.split} split (stable materials)\n")
    if args.card:
        for r in results:
            print(f"model card block of {r['model']}:\n{card_metrics(r)}\n")
    print(markdown(results))
    for r in results:
        extra = {k: r[k] for k in ("dos_w1_thz_median", "dos_w1_floor_thz", "mean_freq_mae_thz",
                                   "mean_freq_signed_thz", "beyond_1000cm", "materials", "seconds") if k in r}
        print(f"{r['model']}: {extra}")
    if args.json:
        from cloudphys.outputs import write_json

        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
