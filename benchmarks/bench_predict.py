"""Prediction throughput end to end and the cost of writing results (issue 21 §2, issue 22 §5).

Prints markdown tables (paste them into ``docs/benchmarks.md`` with ``uptime``'s load average):

1. **End to end**: N real crystals of phonondb-thermo (``materials.jsonl.gz``), written to a temporary
   folder as CIF files (``--format poscar`` for POSCARs), → ``Model.predict`` (24 temperatures, the
   shipped 5-member ensemble ``phonondb-dos``) → ``to_csv``, with 1 and 2 conversion workers;
   structures per second, and where the time goes (read + convert, model, CSV).
2. **Model only**: the same crystals given as SCOPE strings (converted beforehand), so the rate is
   tokenizing + the 5 encoders + the head + arranging the result; against the same prediction with
   each member's encoder run twice (the ensemble's forward, then each member again: what
   ``Model.predict`` did before issue 21), in the same process.
3. **Outputs** of that prediction: ``to_csv`` (with its JSON sidecar), ``to_pandas``, ``plot``
   (PNG, the first 20), against pandas writing the same table (``DataFrame.to_csv``, 8 digits).
4. **Writing at scale** (issue 22 §5): a synthetic 10,000-input x 200-temperature ensemble prediction
   (Debye head values, 2,000,000 rows x 42 columns) written with ``to_csv``; pandas' ``to_csv`` of
   the same table as the reference.

Run: ``CLOUDPHYS_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_predict.py
[--n 400] [--threads 1] [--big 10000]`` (``--big 0`` skips table 4).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np


def _load() -> str:
    return "load average " + ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _write_structures(n: int, folder: Path, fmt: str) -> list[str]:
    from pymatgen.core import Structure

    data = Path(os.environ.get("CLOUDPHYS_DATA", "../shared/data")) / "phonondb-thermo" / "materials.jsonl.gz"
    paths = []
    with gzip.open(data, "rt", encoding="utf-8") as fh:
        for line in fh:
            if len(paths) >= n:
                break
            row = json.loads(line)
            s = Structure.from_dict(row["structure"])
            path = folder / (f"{row['id']}.cif" if fmt == "cif" else f"{row['id']}.vasp")
            s.to(filename=str(path), fmt="cif" if fmt == "cif" else "poscar")
            paths.append(str(path))
    return paths


def _timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _old_two_pass(model: Any, sources: list[Any], T: np.ndarray) -> float:
    """The ensemble prediction as before issue 21: the ensemble's forward (every member's encoder,
    averaged), then every member alone again for the spread."""
    from cloudphys.inference.predict import predict_with_members, read_items

    def run() -> None:
        items = read_items(sources)
        for it in items:
            if it.n_atoms is None:
                it.n_atoms = 1.0
        predict_with_members(model.core, (), items, T)
        for m in model._members:
            predict_with_members(m, (), items, T)

    return _timed(run)[0]


def _synthetic(n: int, n_t: int) -> Any:
    """An ensemble-shaped prediction of ``n`` inputs at ``n_t`` temperatures from the Debye head."""
    import torch

    from cloudphys.inference.result import ItemInfo, Prediction, quantities_from_head
    from cloudphys.physics.debye import DebyeHead

    head = DebyeHead()
    theta = torch.linspace(150.0, 900.0, n, dtype=torch.float64)
    n_atoms = torch.randint(1, 20, (n,), generator=torch.Generator().manual_seed(0)).double()
    T = torch.linspace(0.0, 1000.0, n_t, dtype=torch.float64)
    with torch.no_grad():
        obs = {k: v.numpy() for k, v in head(latents={"theta_D": theta}, temperature=T.expand(n, -1),
                                             n_atoms=n_atoms).items()}
    lat = {"theta_D": theta.numpy()}
    std = {k: 0.03 * np.abs(v) + 0.01 for k, v in {**obs, **lat}.items()}
    items = [ItemInfo(f"mp-{k}", f"/data/mp-{k}.cif", "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5", float(n_atoms[k]))
             for k in range(n)]
    return Prediction(T.numpy(), items, obs, quantities_from_head(head), lat, member_std=std, scale=1.3,
                      calibration={"scale": 1.3, "fitted_on": "val"}, model="synthetic", head="debye", members=5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=400, help="structures (default 400)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the model (default 1)")
    ap.add_argument("--format", choices=("cif", "poscar"), default="cif")
    ap.add_argument("--big", type=int, default=10_000, help="inputs of the writing benchmark (0: skip)")
    ap.add_argument("--model", default="phonondb-dos")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import torch

    torch.set_num_threads(args.threads)  # a benchmark script: the thread count is part of what it measures
    from cloudphys.models import load_model

    root = Path(tempfile.mkdtemp(prefix="bench-predict-"))
    os.environ["CLOUDPHYS_CACHE"] = str(root / "cache")  # cold: nothing converted before
    paths = _write_structures(args.n, root, args.format)
    dt_load, model = _timed(lambda: load_model(args.model))
    T = np.linspace(20.0, 1000.0, 24)
    print(f"model {args.model}: {model.members} members, loaded in {dt_load:.1f} s; {len(paths)} {args.format.upper()} "
          f"files; 24 temperatures; torch threads {args.threads}; {os.cpu_count()} cores; {_load()}\n")

    print("| end to end (files -> CSV) | workers | structures/s | read+convert s | model s | to_csv s | total s |")
    print("|---|---|---|---|---|---|---|")
    pred = None
    for workers in (1, 2):
        os.environ["CLOUDPHYS_CACHE"] = str(root / f"cache-{workers}")
        from cloudphys.inference.predict import read_items
        from cloudphys.inputs import to_records

        t0 = time.perf_counter()
        items = read_items(paths)
        to_records(items, dialect="default", workers=workers, cache=False)
        t_conv = time.perf_counter() - t0
        os.environ["CLOUDPHYS_CACHE"] = str(root / f"cache-full-{workers}")
        t1 = time.perf_counter()
        pred = model.predict(paths, T, workers=workers)
        t_pred = time.perf_counter() - t1
        t_csv, _ = _timed(lambda p=pred: p.to_csv(root / "out.csv"))
        total = t_pred + t_csv
        print(f"| {len(paths)} {args.format.upper()} | {workers} | {len(paths) / total:.0f} | {t_conv:.2f} | "
              f"{max(t_pred - t_conv, 0.0):.2f} | {t_csv:.2f} | {total:.2f} |")
    assert pred is not None and not pred.errors, list(pred.errors.items())[:3]
    print(f"\n({_load()}; 'model s' = predict minus a separate read+convert run of the same files)\n")

    scopes = [{"id": s.name, "scope": s.scope, "n_atoms": s.n_atoms} for s in pred]
    t_new, res = _timed(lambda: model.predict(scopes, T))
    assert not res.errors, list(res.errors.items())[:3]
    t_old = _old_two_pass(model, scopes, T)
    print("| model only (SCOPE strings -> Prediction) | structures/s | seconds |\n|---|---|---|")
    print(f"| each member's encoder once per batch (now) | {len(scopes) / t_new:.0f} | {t_new:.2f} |")
    print(f"| encoders twice (before issue 21) | {len(scopes) / t_old:.0f} | {t_old:.2f} |")
    print(f"| ratio | {t_old / t_new:.2f} x faster | |\n({_load()})\n")

    import pandas as pd

    t_csv, _ = _timed(lambda: pred.to_csv(root / "out.csv"))
    t_pd, df = _timed(lambda: pred.to_pandas())
    t_ref, _ = _timed(lambda: df.to_csv(root / "ref.csv", index=False, float_format="%.8g"))
    t_plot, _ = _timed(lambda: pred.plot(root / "out.png"))
    rows = len(df)
    print(f"| output of {len(pred)} structures x 24 T ({rows} rows x {df.shape[1]} columns) | seconds | rows/s |")
    print("|---|---|---|")
    print(f"| to_csv (+ JSON sidecar) | {t_csv:.3f} | {rows / t_csv:,.0f} |")
    print(f"| to_pandas | {t_pd:.3f} | {rows / t_pd:,.0f} |")
    print(f"| plot (PNG, first 20) | {t_plot:.2f} | |")
    print(f"| reference: pandas DataFrame.to_csv of the same table | {t_ref:.3f} | {rows / t_ref:,.0f} |")
    print(f"({_load()})\n")
    del pd

    if args.big:
        big = _synthetic(args.big, 200)
        t_big, _ = _timed(lambda: big.to_csv(root / "big.csv"))
        size = (root / "big.csv").stat().st_size
        t_bpd, bdf = _timed(lambda: big.to_pandas())
        t_bref, _ = _timed(lambda: bdf.to_csv(root / "big-ref.csv", index=False, float_format="%.8g"))
        print(f"| writing {args.big:,} inputs x 200 temperatures ({len(bdf):,} rows x {bdf.shape[1]} columns, "
              f"{size / 1e6:.0f} MB) | seconds |\n|---|---|")
        print(f"| Prediction.to_csv | {t_big:.1f} |")
        print(f"| Prediction.to_pandas | {t_bpd:.1f} |")
        print(f"| reference: pandas DataFrame.to_csv of the same table | {t_bref:.1f} |")
        print(f"({_load()})")


if __name__ == "__main__":
    main()
