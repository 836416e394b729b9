"""Benchmark (issue 24 §3): MLM validation loss, CLOUD Cv and phonondb-thermo Cv(T) test errors against
corpus and encoder size.

Real strings only, never a test string of a downstream task:

* ``build``: one token corpus in CLOUD's dialect (``build_token_corpus``, the code behind
  ``cloudphys data build-corpus ... --dialect cloud --out DIR``) from CLOUD's 10k pretraining strings,
  CLOUD Cv train+val, phonondb-thermo train+val (all materials) and the structures of
  ``../shared/data/structures/*.csv.gz`` (converted with 2 workers), excluding every crystal of
  CLOUD Cv's test split and of phonondb-thermo's test split (canonical strings compared).
* a fixed validation set: the corpus strings whose crystal hash lies in the lowest 2 % (never trained on);
  the rest is the training pool, permuted once (seed 0); a corpus of size N is its first N strings
  (nested subsets, ``TokenCorpus.subset``); ``all`` is the whole pool.
* ``run``: for each (N, hidden) point: MLM pretraining (``pretrain.corpus``; 2 layers, 4 heads,
  batch 64, lr 1e-3) for ``--steps S`` steps whatever N (the compute held fixed: a corpus smaller than
  S * 64 strings is cycled over epochs; without ``--steps`` the earlier rule max(150, one epoch), whose
  compute grows with N past ~10k strings), the MLM loss on the fixed validation set (fixed masks), then
  from that encoder

  - CLOUD-DEBYE fine-tuned on CLOUD's Cv split (configs/cloud-cv-debye.yaml, ``--ft-epochs`` epochs,
    patience 5, one seed): test MAE and MAE/MAD (MAD = mean |y_test - mean(y_train)|);
  - with ``--pdb-epochs E`` > 0, the Debye head fine-tuned on phonondb-thermo Cv(T) (the stable
    materials, 20-1000 K; configs/phonondb-curves-debye.yaml with cv only and ``data.dialect=cloud``,
    the corpus's dialect; E epochs, patience 5, one seed): test Cv MAE per mol-atom over the temperatures.

  ``N = 0`` is the fine-tunes without pretraining. Each row records its grid (``steps=S``; rows without
  one are the earlier rule) and its ``seed`` (``--seed S``, default 0: the MLM pretraining seed and both
  fine-tunes' ``train.seed``; the validation masks stay fixed; rows without one are seed 0; the work
  directories of a seed S != 0 end in ``-seedS``).
* ``report``: per grid, where a point has several seeds a table of mean ± sample sd over the seeds, then
  every run; power-law fits ``y = a * N**(-b)`` (least squares in log-log, on the per-point means) of each
  metric per hidden size with >= 3 pretrained points; the seed noise (pooled sd) against the largest
  difference between the means of the multi-seed points; and the plot ``docs/img/scaling.png`` (the
  300-step grid: the three metrics against N, one line per hidden size, error bars = seed sd).

Rows go to ``benchmarks/results/scaling.jsonl`` (a point already there, in the same grid and seed, is
skipped: a killed run resumes).

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scaling.py build --work /tmp/scaling
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scaling.py run --work /tmp/scaling \
        --steps 300 --ft-epochs 15 --pdb-epochs 10 \
        --points 0:128 1000:128 10000:128 all:128 0:64 1000:64 10000:64 all:64 \
                 0:256 1000:256 10000:256 all:256 3000:128 30000:128
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_scaling.py run --work /tmp/scaling \
        --steps 300 --ft-epochs 15 --pdb-epochs 10 --seed 1 --points 0:128 1000:128 10000:128 all:128
    python benchmarks/bench_scaling.py report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "scaling.jsonl"
VAL_FRACTION = 0.02
OLD_GRID = "max(150, one epoch)"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def build(work: Path, workers: int) -> None:
    from cloudphys.data.base import data_dir
    from cloudphys.data.shards import build_token_corpus

    structures = sorted(str(p) for p in (data_dir() / "structures").glob("*.csv.gz"))
    inputs = ["cloud-pretrain", "cloud-cv:train_and_val", "phonondb-thermo:train", "phonondb-thermo:val", *structures]
    t0 = time.perf_counter()
    rep = build_token_corpus(inputs, work / "corpus", exclude=["cloud-cv:test", "phonondb-thermo:test"],
                             dialect="cloud", workers=workers, shard_size=10_000, progress=sys.stderr.isatty())
    print(rep.summary())
    print(json.dumps({"build_seconds": time.perf_counter() - t0, "load": _load()}))


def _split(work: Path) -> tuple[object, np.ndarray, np.ndarray]:
    from cloudphys.data.shards import TokenCorpus
    from cloudphys.training.stream import corpus_split

    c = TokenCorpus(work / "corpus")
    train, val, _ = corpus_split(c, VAL_FRACTION)
    pool = np.random.default_rng(0).permutation(train)
    return c, pool, val


def _mlm_val_loss(run: Path, val_corpus, hidden: int) -> float:
    import torch

    from cloudphys.encoders.pretrained import load_masked_lm
    from cloudphys.modeling.model import load_tokenizer
    from cloudphys.training.stream import mlm_val_loss

    tok = load_tokenizer(256)
    model = load_masked_lm(run / "model", what="pretrained model", remedy="rerun the point")
    special = torch.tensor(sorted(set(tok.all_special_ids)), dtype=torch.long)
    pc = SimpleNamespace(mlm_probability=0.15, seed=0, precision="fp32")
    return mlm_val_loss(model, val_corpus, np.arange(len(val_corpus)), tok, special, pc, torch.device("cpu"))


def _finetune(run: Path, pretrained: Path | None, hidden: int, epochs: int, seed: int = 0) -> dict:
    """CLOUD-DEBYE on CLOUD's Cv split (cloud dialect, like the corpus): test MAE and MAE/MAD."""
    import cloudphys
    from cloudphys.modeling.core import load_core
    from cloudphys.training import train
    from cloudphys.training.evaluation import evaluate_model

    over = ["train.progress=false", "train.num_threads=1", "train.device=cpu", f"train.epochs={epochs}",
            "train.patience=5", f"train.seed={seed}"]
    over += [f"encoder.pretrained={pretrained}"] if pretrained else [f"encoder.hidden_size={hidden}"]
    t0 = time.perf_counter()
    train(REPO / "configs" / "cloud-cv-debye.yaml", run, overrides=over, overwrite=True)
    sec = time.perf_counter() - t0
    spec = cloudphys.get_registry().dataset("cloud-cv")
    tr, test = spec.load(split="train"), spec.load(split="test")
    m = evaluate_model(load_core(run), test, device="cpu")["observables"]["cv"]
    mad = float(np.mean(np.abs(test.targets["cv"].reshape(-1) - float(np.mean(tr.targets["cv"])))))
    return {"cv_test_mae": m["mae"], "cv_test_mae_over_mad": m["mae"] / mad, "finetune_seconds": sec}


PHONONDB_OVERRIDES = ("head.observables=[cv]", "data.observables=[cv]", "data.dialect=cloud")
_PDB: dict[str, object] = {}


def _phonondb(split: str):
    """phonondb-thermo ``split`` as the fine-tune's data section reads it (loaded once per process: the
    conversion of ~5k structures to CLOUD's dialect takes ~45 s even from the cache)."""
    if split not in _PDB:
        from cloudphys.config import load_config
        from cloudphys.modeling.encoding import load_split

        cfg = load_config(REPO / "configs" / "phonondb-curves-debye.yaml", overrides=list(PHONONDB_OVERRIDES))
        _PDB[split] = load_split(cfg, split)
    return _PDB[split]


def _finetune_phonondb(run: Path, pretrained: Path | None, hidden: int, epochs: int, seed: int = 0) -> dict:
    """Debye head on phonondb-thermo Cv(T) (stable materials, 20-1000 K; configs/phonondb-curves-debye.yaml
    with cv only, and the strings in CLOUD's dialect like the corpus): test Cv MAE per mol-atom."""
    from cloudphys.modeling.core import load_core
    from cloudphys.training import train
    from cloudphys.training.evaluation import evaluate_model

    over = ["train.progress=false", "train.num_threads=1", "train.device=cpu", f"train.epochs={epochs}",
            "train.patience=5", f"train.seed={seed}", *PHONONDB_OVERRIDES]
    over += [f"encoder.pretrained={pretrained}"] if pretrained else [f"encoder.hidden_size={hidden}"]
    data = {"train": _phonondb("train"), "val": _phonondb("val")}
    t0 = time.perf_counter()
    train(REPO / "configs" / "phonondb-curves-debye.yaml", run, overrides=over, overwrite=True, examples=data)
    sec = time.perf_counter() - t0
    test = _phonondb("test")
    m = evaluate_model(load_core(run), test, device="cpu")
    cv = m["observables"]["cv"]
    return {"pdb_cv_test_mae_per_atom": cv["mae_per_atom"], "pdb_cv_test_mae": cv["mae"],
            "pdb_cv_test_mae_over_mad": cv.get("mae_over_mad"), "pdb_test_materials": len(test.scope),
            "pdb_temperatures": len(m["temperatures"]), "pdb_finetune_seconds": sec}


def run_point(work: Path, n_label: str, hidden: int, ft_epochs: int, steps: int | None = None,
              pdb_epochs: int = 0, seed: int = 0) -> dict:
    """One grid point. ``steps``: MLM steps for every N (a corpus smaller than ``steps * 64`` strings is
    cycled over epochs); ``None``: the earlier rule max(150, one epoch). ``pdb_epochs`` > 0 adds the
    phonondb-thermo Cv(T) fine-tune. ``seed`` seeds the MLM pretraining and both fine-tunes (the
    validation masks stay fixed); work directories of a seed other than 0 get a ``-seed{S}`` suffix."""
    from cloudphys.training.pretrain import pretrain

    c, pool, val = _split(work)
    val_corpus = c.subset(val, work / "val")
    n = len(pool) if n_label == "all" else int(n_label)
    row: dict = {"n_label": n_label, "n": n, "hidden": hidden, "val_strings": len(val), "pool": len(pool)}
    row["grid"] = grid_label(steps)
    row["seed"] = seed
    tag = f"{n_label}-{hidden}" if steps is None else f"{n_label}-{hidden}-s{steps}"
    tag += f"-seed{seed}" if seed else ""
    pretrained = None
    if n > 0:
        sub = c.subset(pool[:n], work / f"sub-{n_label}")
        n_steps = max(150, -(-n // 64)) if steps is None else steps
        cfg = {"encoder": {"name": "scope-bert", "hidden_size": hidden, "num_layers": 2, "num_heads": 4,
                           "element_init": True},
               "head": {"name": "debye"},
               "pretrain": {"corpus": str(sub.path), "epochs": 10_000, "max_steps": n_steps, "batch_size": 64,
                            "lr": 1e-3, "val_fraction": 0.0, "device": "cpu", "progress": "false",
                            "num_threads": 1, "seed": seed}}
        pretrained = work / f"pre-{tag}"
        res = pretrain(cfg, pretrained, overwrite=True)
        row.update(pretrain_steps=res["steps"], pretrain_seconds=res["seconds"],
                   epochs_seen=res["steps"] * 64 / n, tokens_per_s=res["tokens_seen"] / res["step_seconds"],
                   mlm_val_loss=_mlm_val_loss(pretrained, val_corpus, hidden))
    row.update(_finetune(work / f"ft-{tag}", pretrained, hidden, ft_epochs, seed))
    if pdb_epochs > 0:
        row.update(_finetune_phonondb(work / f"pdb-{tag}", pretrained, hidden, pdb_epochs, seed),
                   pdb_epochs=pdb_epochs)
    return row


def pending(points: list[str], rows: list[dict], steps: int | None, seed: int) -> list[tuple[str, int]]:
    """The ``N:HIDDEN`` points still to run: those without a row of the same grid, N, hidden size and
    seed (rows without a seed are seed 0) — a killed run resumes, another seed adds its own rows."""
    done = {(_grid(r), r["n_label"], r["hidden"], _seed(r)) for r in rows}
    out = []
    for p in points:
        n_label, sep, hidden = p.partition(":")
        if not sep or not hidden.isdigit() or not (n_label == "all" or n_label.isdigit()):
            raise ValueError(f"point {p!r}: expected N:HIDDEN (N an integer or 'all', HIDDEN an integer)")
        if (grid_label(steps), n_label, int(hidden), seed) not in done:
            out.append((n_label, int(hidden)))
    return out


def grid_label(steps: int | None) -> str:
    """The grid a row belongs to: ``steps=S`` (the same S MLM steps for every N) or the earlier rule."""
    return OLD_GRID if steps is None else f"steps={steps}"


def _rows(path: Path = RESULTS) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.is_file() else []


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``y = a * x**(-b)``: (a, b) by least squares on logs."""
    slope, icpt = np.polyfit(np.log(x), np.log(y), 1)
    return float(np.exp(icpt)), float(-slope)


def _grid(r: dict) -> str:
    return r.get("grid", OLD_GRID)


def _seed(r: dict) -> int:
    """The row's seed (MLM pretraining and both fine-tunes); rows without one are seed 0."""
    return int(r.get("seed", 0))


def _fmt(v, spec: str) -> str:
    return "" if v is None else format(v, spec)


def _pdb(r: dict) -> str:
    if r.get("pdb_cv_test_mae_per_atom") is None:
        return ""
    ratio = r.get("pdb_cv_test_mae_over_mad")
    return f"{r['pdb_cv_test_mae_per_atom']:.3f}" + (f" ({ratio:.3f})" if ratio is not None else "")


def table(rows: list[dict]) -> list[str]:
    """Markdown table of ``rows`` (one grid), one line per run, sorted by hidden size, N, then seed."""
    out = ["| corpus N | hidden | seed | MLM steps (epochs) | MLM val loss | CLOUD Cv test MAE J/(K·mol) | "
           "MAE/MAD | phonondb Cv(T) test MAE J/(K·mol-atom) (MAE/MAD) | seconds (pretrain + fine-tunes) | load |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["hidden"], r["n"], _seed(r))):
        pre = f"{r['pretrain_steps']} ({r['epochs_seen']:.1f})" if "pretrain_steps" in r else "none"
        sec = r.get("pretrain_seconds", 0) + r["finetune_seconds"] + r.get("pdb_finetune_seconds", 0)
        out.append(f"| {r['n']:,} | {r['hidden']} | {_seed(r)} | {pre} | {_fmt(r.get('mlm_val_loss'), '.3f')} | "
                   f"{r['cv_test_mae']:.2f} | {r['cv_test_mae_over_mad']:.3f} | "
                   f"{_pdb(r)} | {sec:.0f} | {r['load']} |")
    return out


METRICS = (("mlm_val_loss", "MLM validation loss (fixed held-out set)"),
           ("cv_test_mae_over_mad", "CLOUD Cv test MAE/MAD"),
           ("pdb_cv_test_mae_per_atom", "phonondb Cv(T) test MAE, J/(K·mol-atom)"))
#: Marker and colour of each hidden size in the plot.
STYLES = {64: ("s", "C0"), 128: ("o", "C1"), 256: ("^", "C2")}
SUMMARY = (("mlm_val_loss", ".3f"), ("cv_test_mae", ".2f"), ("cv_test_mae_over_mad", ".3f"),
           ("pdb_cv_test_mae_per_atom", ".3f"))


def aggregate(rows: list[dict]) -> list[dict]:
    """One point per (hidden, N) of ``rows`` (one grid): ``seeds`` (sorted), and per metric of
    ``SUMMARY`` its mean over the seeds (``key``) and sample standard deviation (``key + "_sd"``,
    ddof = 1; ``None`` with one seed), its count (``key + "_k"``) and the values themselves (``key + "_values"``).
    A metric missing in some seed's row is averaged over the others."""
    groups: dict[tuple[int, int], list[dict]] = {}
    for r in rows:
        groups.setdefault((r["hidden"], r["n"]), []).append(r)
    out = []
    for (hidden, n), rs in sorted(groups.items()):
        seeds = sorted(_seed(r) for r in rs)
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"scaling rows: hidden {hidden}, N {n} has seed(s) recorded twice: {seeds}")
        pt: dict = {"hidden": hidden, "n": n, "seeds": seeds}
        for key, _ in SUMMARY:
            v = np.array([r[key] for r in rs if r.get(key) is not None], float)
            pt[key + "_values"] = v
            pt[key] = float(v.mean()) if len(v) else None
            pt[key + "_sd"] = float(v.std(ddof=1)) if len(v) > 1 else None
            pt[key + "_k"] = len(v)
        out.append(pt)
    return out


def _pm(pt: dict, key: str, spec: str) -> str:
    if pt[key] is None:
        return ""
    return format(pt[key], spec) + ("" if pt[key + "_sd"] is None else f" ± {format(pt[key + '_sd'], spec)}")


def summary_table(rows: list[dict]) -> list[str]:
    """Markdown table of ``rows`` (one grid), one line per (hidden, N): mean ± sd over the seeds."""
    out = ["| corpus N | hidden | seeds | MLM val loss | CLOUD Cv test MAE J/(K·mol) | MAE/MAD | "
           "phonondb Cv(T) test MAE J/(K·mol-atom) |", "|---|---|---|---|---|---|---|"]
    for pt in aggregate(rows):
        seeds = f"{len(pt['seeds'])} ({', '.join(map(str, pt['seeds']))})"
        out.append(f"| {pt['n']:,} | {pt['hidden']} | {seeds} | "
                   + " | ".join(_pm(pt, key, spec) for key, spec in SUMMARY) + " |")
    return out


def anova(groups: list[list[float]]) -> tuple[float, float | None]:
    """One-way ANOVA of ``groups`` (each >= 2 values): (F, p) — p from scipy's F distribution, ``None``
    where scipy is not installed; F = between-group mean square / within-group mean square."""
    allv = np.concatenate([np.asarray(g, float) for g in groups])
    g, n = len(groups), len(allv)
    ssb = sum(len(x) * (np.mean(x) - allv.mean()) ** 2 for x in groups)
    ssw = sum(((np.asarray(x, float) - np.mean(x)) ** 2).sum() for x in groups)
    f = float((ssb / (g - 1)) / (ssw / (n - g))) if ssw > 0 else float("inf")
    try:
        from scipy.stats import f as fdist
    except ImportError:
        return f, None
    return f, float(fdist.sf(f, g - 1, n - g))


def spread(rows: list[dict]) -> dict[tuple[str, int], dict]:
    """Seed noise against the differences between N, per (metric, hidden) with >= 2 points of >= 2
    seeds each: ``pooled_sd`` (root mean of the per-point variances of those points), ``k`` (their
    smallest seed count), ``se_diff`` (the sd of a difference of two k-seed means, pooled_sd * sqrt(2/k)),
    ``max_diff`` (the largest difference between the means of those points, N = 0 included),
    ``ratio`` = max_diff / se_diff, ``F``/``p``: one-way ANOVA of the seeds' values over those points
    (``p_pretrained``: over the pretrained ones only, where >= 2; else ``None``); ``points``: their N."""
    out = {}
    pts = aggregate(rows)
    for hidden in sorted({p["hidden"] for p in pts}):
        for key, _ in METRICS:
            sel = [p for p in pts if p["hidden"] == hidden and p[key] is not None and p[key + "_k"] >= 2]
            if len(sel) < 2:
                continue
            pooled = float(np.sqrt(np.mean([p[key + "_sd"] ** 2 for p in sel])))
            k = min(p[key + "_k"] for p in sel)
            means = [p[key] for p in sel]
            se = pooled * float(np.sqrt(2.0 / k))
            diff = max(means) - min(means)
            f, pval = anova([p[key + "_values"] for p in sel])
            pre = [p for p in sel if p["n"] > 0]
            p_pre = (anova([p[key + "_values"] for p in pre])[1]
                     if 2 <= len(pre) < len(sel) else None)
            out[(key, hidden)] = {"pooled_sd": pooled, "k": k, "se_diff": se, "max_diff": diff,
                                  "ratio": diff / se if se > 0 else float("inf"), "points": [p["n"] for p in sel],
                                  "F": f, "p": pval, "p_pretrained": p_pre}
    return out


def fits(rows: list[dict]) -> dict[tuple[str, int], tuple[float, float, int, int]]:
    """Power-law fits ``y = a * N**(-b)`` over the pretrained points (N > 0) of each hidden size with
    at least three of them, on the mean over the seeds of each point: ``(metric, hidden) -> (a, b,
    N_min, N_max)``."""
    out = {}
    pts_all = aggregate(rows)
    for hidden in sorted({r["hidden"] for r in pts_all}):
        for key, _ in METRICS:
            pts = [r for r in pts_all if r["hidden"] == hidden and r["n"] > 0 and r.get(key) is not None]
            if len({r["n"] for r in pts}) >= 3:
                n = np.array([r["n"] for r in pts], float)
                a, b = _fit(n, np.array([r[key] for r in pts], float))
                out[(key, hidden)] = (a, b, int(n[0]), int(n[-1]))
    return out


def report(plot: bool = True, results: Path = RESULTS) -> None:
    rows = _rows(results)
    grids = sorted({_grid(r) for r in rows}, key=lambda g: (g == OLD_GRID, int(g.split("=")[1]) if g != OLD_GRID else 0))
    for g in grids:
        sel = [r for r in rows if _grid(r) == g]
        label = f"MLM steps = {g.split('=')[1]} for every N" if g != OLD_GRID else f"earlier grid, steps = {g}"
        print(f"\n### {label}\n")
        if any(len(p["seeds"]) > 1 for p in aggregate(sel)):
            print("Mean ± sample sd over the seeds (one value: one seed):\n")
            print("\n".join(summary_table(sel)))
            print("\nEvery run:\n")
        print("\n".join(table(sel)))
        print()
        for (key, hidden), (a, b, lo, hi) in fits(sel).items():
            print(f"- fit ({label}), hidden {hidden}: {key} = {a:.3g} * N^({-b:+.3g})  (N = {lo}..{hi})")
        for (key, hidden), sp in spread(sel).items():
            print(f"- seed noise ({label}), hidden {hidden}: {key}: pooled seed sd {sp['pooled_sd']:.3g} "
                  f"(>= {sp['k']} seeds at N = {', '.join(f'{n:,}' for n in sp['points'])}); largest "
                  f"difference between those means {sp['max_diff']:.3g} = {sp['ratio']:.2f} x the sd of a "
                  f"difference of two means ({sp['se_diff']:.3g}); one-way ANOVA over those N: F = {sp['F']:.2f}"
                  + ("" if sp["p"] is None else f", p = {sp['p']:.2g}")
                  + ("" if sp["p_pretrained"] is None else f" (pretrained N only: p = {sp['p_pretrained']:.2g})"))
    new = [g for g in grids if g != OLD_GRID]
    if not plot or not new:
        return
    g = "steps=300" if "steps=300" in new else new[0]
    sel = [r for r in rows if _grid(r) == g]
    fit = fits(sel)
    agg = aggregate(sel)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 3, figsize=(15, 4.2))
    for hidden, (mark, colour) in STYLES.items():
        for i, (key, name) in enumerate(METRICS):
            pts = [r for r in agg if r["hidden"] == hidden and r["n"] > 0 and r.get(key) is not None]
            if pts:
                ax[i].errorbar([r["n"] for r in pts], [r[key] for r in pts],
                               yerr=[r[key + "_sd"] or 0.0 for r in pts], fmt=mark + "-", color=colour,
                               capsize=3, label=f"hidden {hidden}")
            if (key, hidden) in fit:
                a, b, lo, hi = fit[(key, hidden)]
                xs = np.geomspace(lo, hi, 50)
                ax[i].plot(xs, a * xs ** (-b), "--", color=colour, lw=0.8, label=f"fit N^({-b:+.3f})")
            base = [r for r in agg if r["hidden"] == hidden and r["n"] == 0 and r.get(key) is not None]
            if base:
                ax[i].axhline(base[0][key], ls=":", color=colour, lw=1,
                              label=f"no pretraining, hidden {hidden}")
                if base[0][key + "_sd"]:
                    ax[i].axhspan(base[0][key] - base[0][key + "_sd"], base[0][key] + base[0][key + "_sd"],
                                  color=colour, alpha=0.12, lw=0)
            ax[i].set_xscale("log")
            ax[i].set_xlabel("pretraining corpus size N (distinct real crystals)")
            ax[i].set_ylabel(name)
    for g2 in (x for x in new if x != g):      # other fixed-step grids: open markers, no fit
        agg2 = [p for p in aggregate([r for r in rows if _grid(r) == g2]) if p["n"] > 0]
        for hidden in sorted({p["hidden"] for p in agg2}):
            mark, colour = STYLES.get(hidden, ("d", "C3"))
            for i, (key, _) in enumerate(METRICS):
                pts = [p for p in agg2 if p["hidden"] == hidden and p.get(key) is not None]
                if pts:
                    ax[i].errorbar([p["n"] for p in pts], [p[key] for p in pts],
                                   yerr=[p[key + "_sd"] or 0.0 for p in pts], fmt=mark + "-.", color=colour,
                                   mfc="none", capsize=3, label=f"hidden {hidden}, {g2.split('=')[1]} MLM steps")
    for i in range(3):
        if i == 0:  # between the hidden-128 and hidden-256 lines, clear of the points
            ax[i].legend(fontsize=6, ncol=2, loc="center", bbox_to_anchor=(0.5, 0.47))
        else:
            ax[i].legend(fontsize=6)
    multi = sorted({len(p["seeds"]) for p in agg})
    seeds = "one seed per point" if multi == [1] else \
        f"mean ± sd over {'/'.join(map(str, multi))} seeds per point (bars and bands)"
    others = "".join(f"; open markers: {x.split('=')[1]} MLM steps" for x in new if x != g)
    fig.suptitle(f"issue 24 §3: {g.split('=')[1]} MLM steps for every N, {seeds}{others}", fontsize=9)
    fig.tight_layout()
    out = REPO / "docs" / "img" / "scaling.png"
    from cloudphys.outputs import atomic_path

    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    print(f"\nplot: {out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=("build", "run", "report"))
    ap.add_argument("--work", default="/tmp/scaling")
    ap.add_argument("--results", default=str(RESULTS), help="the jsonl the rows are read from and appended to")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--points", nargs="*", default=["0:128", "1000:128", "3000:128", "10000:128", "30000:128",
                                                    "all:128", "0:64", "10000:64", "0:256", "10000:256"],
                    help="N:HIDDEN (N = 0: no pretraining; all: the whole pool)")
    ap.add_argument("--ft-epochs", type=int, default=20, help="CLOUD Cv fine-tune epochs")
    ap.add_argument("--steps", type=int, default=None,
                    help="MLM steps for every N (compute held fixed; small corpora are cycled over epochs); "
                         "default: the earlier rule max(150, one epoch)")
    ap.add_argument("--pdb-epochs", type=int, default=0,
                    help="phonondb-thermo Cv(T) fine-tune epochs (0: not run)")
    ap.add_argument("--seed", type=int, default=0,
                    help="seed of the MLM pretraining and of both fine-tunes (default 0; another seed "
                         "writes its own rows and work directories, suffix -seedS)")
    args = ap.parse_args()
    work, results = Path(args.work), Path(args.results)
    if args.what == "build":
        build(work, args.workers)
    elif args.what == "report":
        report(plot=results == RESULTS, results=results)
    else:
        if args.steps is not None and args.steps < 1:
            ap.error(f"--steps must be >= 1, got {args.steps}")
        if not 0 <= args.seed <= 2**32 - 1:
            ap.error(f"--seed must be an integer from 0 to 2**32 - 1, got {args.seed}")
        try:
            todo = pending(args.points, _rows(results), args.steps, args.seed)
        except ValueError as e:
            ap.error(str(e))
        for n_label, hidden in todo:
            row = run_point(work, n_label, hidden, args.ft_epochs, args.steps, args.pdb_epochs, args.seed)
            row.update(ft_epochs=args.ft_epochs, load=_load(), time=time.strftime("%H:%M:%SZ", time.gmtime()))
            results.parent.mkdir(parents=True, exist_ok=True)
            with open(results, "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
