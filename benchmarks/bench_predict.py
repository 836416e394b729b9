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
   (Debye head values, 2,000,000 rows x 42 columns) written with ``to_csv``; against the cell-by-cell
   writer it replaced (one Python ``format`` per number, kept here as the reference; the output is
   byte-identical, checked) and pandas' ``to_csv`` of the same table.
5. **Stages** (``--stages``, issue 21 §2): per structure, in one process, the CIF reading with
   pymatgen's ``CifParser`` against the direct reader of plain P1 CIFs, the whole conversion
   (read + spglib + SCOPE) with each reader, a re-run served by the SCOPE cache, and the model.

``--check-cif`` reads every CIF of the shared data (phonondb-thermo's structures written by pymatgen
and the ``structures/*.csv.gz`` CIFs) with the direct reader and with pymatgen and counts the
structures that differ in any bit (lattice, site order, coordinates, species, labels).

Run: ``CLOUDPHYS_DATA=../shared/data OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_predict.py
[--n 400] [--threads 1] [--big 10000] [--stages] [--check-cif]`` (``--big 0`` skips table 4;
``--only-big`` / ``--only-stages`` / ``--only-check-cif`` run one part; ``--only-load`` times the
imports and ``load_model`` in a fresh process).
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


def _cpu_timed(fn: Any) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of ``fn()`` -- CPU time is what an idle core would
    take, near enough, whatever the load of a shared machine."""
    t, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - t, time.process_time() - c


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
    ap.add_argument("--only-big", action="store_true", help="only table 4 (writing at scale)")
    ap.add_argument("--no-pandas-reference", action="store_true", help="table 4 without pandas' to_csv")
    ap.add_argument("--no-cell-writer", action="store_true", help="table 4 without the cell-by-cell writer")
    ap.add_argument("--stages", action="store_true", help="table 5: per-structure cost of each stage")
    ap.add_argument("--only-stages", action="store_true", help="only table 5")
    ap.add_argument("--check-cif", action="store_true", help="compare the direct CIF reader with pymatgen's")
    ap.add_argument("--only-check-cif", action="store_true", help="only the CIF reader comparison")
    ap.add_argument("--check-cif-step", type=int, default=1, help="check every K-th CIF of each source (default 1)")
    ap.add_argument("--only-load", action="store_true", help="only: where loading the model goes (a fresh process)")
    ap.add_argument("--versus", metavar="MODEL",
                    help="only: predict the same --n structure files with MODEL and with --model, alternating "
                         "rounds in this process (issue 20 §4: the new shipped model is not slower than the old)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of --versus (default 3)")
    ap.add_argument("--cold", action="store_true",
                    help="--versus: first time each model once from an empty SCOPE cache of its own (one worker)")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    if args.only_load:
        _load_costs(args.model)
        return
    if args.versus:
        _versus(args.versus, args.model, n=args.n, rounds=args.rounds, threads=args.threads, fmt=args.format,
                cold=args.cold)
        return
    if args.only_check_cif:
        _check_cif(args.check_cif_step)
        return
    if args.only_stages:
        _stages(args.n, args.model, root=Path(tempfile.mkdtemp(prefix="bench-predict-")), fmt=args.format)
        return
    if args.only_big:
        _big(args.big, root=Path(tempfile.mkdtemp(prefix="bench-predict-")), reference=not args.no_pandas_reference,
             cells=not args.no_cell_writer)
        return
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
    t1 = time.perf_counter()  # the same files again: every string from the SCOPE cache
    pred = model.predict(paths, T, workers=2)
    t_pred = time.perf_counter() - t1
    t_csv, _ = _timed(lambda p=pred: p.to_csv(root / "out.csv"))
    print(f"| {len(paths)} {args.format.upper()}, re-run (SCOPE cache) | 2 | {len(paths) / (t_pred + t_csv):.0f} | "
          f"cached | {t_pred:.2f} | {t_csv:.2f} | {t_pred + t_csv:.2f} |")
    print(f"\n({_load()}; 'model s' = predict minus a separate read+convert run of the same files; in the "
          "re-run row, predict's whole time)\n")

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

    if args.stages:
        _stages(args.n, args.model, root=root, fmt=args.format, model=model)
    if args.big:
        _big(args.big, root=root, reference=not args.no_pandas_reference, cells=not args.no_cell_writer)
    if args.check_cif:
        _check_cif(args.check_cif_step)


def _cell_writer(p: Any, fh: Any, obs: list[str], spreadsheet_safe: bool = True) -> None:
    """The CSV writer before the block writer (commit 886803c): one Python ``format`` per number."""
    import csv
    import io
    import math

    from cloudphys.inference.result import _cell
    from cloudphys.outputs import text_cell

    g8 = "{:.8g}".format
    cols = p.columns(obs)
    csv.writer(fh).writerow(cols)
    per_t, per_item = p._numbers(obs)
    T = p.temperatures
    n_commas = len(cols) - 5
    buf = io.StringIO()
    quote = csv.writer(buf)
    stack = np.stack(per_t, axis=-1) if per_t else np.zeros((len(p.items), len(T), 0))
    items_lat = np.stack(per_item, axis=-1) if per_item else np.zeros((len(p.items), 0))
    for i, it in enumerate(p.items):
        buf.seek(0)
        buf.truncate()
        quote.writerow([text_cell(it.name, spreadsheet_safe), text_cell(it.source, spreadsheet_safe),
                        text_cell(it.scope, spreadsheet_safe), _cell(it.n_atoms)])
        prefix = buf.getvalue()[:-2]
        if it.error is not None:
            buf.seek(0)
            buf.truncate()
            quote.writerow([text_cell(it.error, spreadsheet_safe), text_cell(it.symmetry_warning, spreadsheet_safe)])
            fh.write(prefix + "," * n_commas + buf.getvalue())
            continue
        warn = ""
        if it.symmetry_warning:
            buf.seek(0)
            buf.truncate()
            quote.writerow([text_cell(it.symmetry_warning, spreadsheet_safe)])
            warn = buf.getvalue()[:-2]
        tail = "".join("," + ("" if math.isnan(v) else g8(v)) for v in items_lat[i].tolist()) + ",," + warn + "\r\n"
        block = np.concatenate([T[:, None], stack[i]], axis=1)
        nan_cols = np.isnan(block).all(axis=0)
        if np.isnan(block[:, ~nan_cols]).any():
            lines = [prefix + "".join("," + ("" if math.isnan(v) else g8(v)) for v in row) + tail
                     for row in block.tolist()]
        else:
            fmt = (prefix.replace("%", "%%") + "".join("," if bad else ",%.8g" for bad in nan_cols.tolist())
                   + tail.replace("%", "%%"))
            lines = [fmt % tuple(row) for row in block[:, ~nan_cols].tolist()]
        fh.write("".join(lines))


def _big(n: int, *, root: Path, reference: bool = True, cells: bool = True) -> None:
    """Table 4: ``n`` synthetic inputs x 200 temperatures written with ``to_csv`` (and the cell writer,
    and pandas')."""
    import filecmp

    import cloudphys.inference.result as result

    big = _synthetic(n, 200)
    t_big, c_big = _cpu_timed(lambda: big.to_csv(root / "big.csv"))
    size = (root / "big.csv").stat().st_size
    rows = sum(len(big.temperatures) if it.error is None else 1 for it in big.items)
    print(f"| writing {n:,} inputs x 200 temperatures ({rows:,} rows x {len(big.columns())} columns, "
          f"{size / 1e6:.0f} MB) | seconds | CPU seconds | rows/s |\n|---|---|---|---|")
    print(f"| Prediction.to_csv (block writer, now) | {t_big:.1f} | {c_big:.1f} | {rows / t_big:,.0f} |")
    if cells:
        real = result._write_table
        result._write_table = _cell_writer
        try:
            t_old, c_old = _cpu_timed(lambda: big.to_csv(root / "big-cells.csv"))
        finally:
            result._write_table = real
        same = filecmp.cmp(root / "big.csv", root / "big-cells.csv", shallow=False)
        (root / "big-cells.csv").unlink()
        print(f"| Prediction.to_csv, cell-by-cell writer (before) | {t_old:.1f} | {c_old:.1f} | {rows / t_old:,.0f} |")
        print(f"| ratio | {t_old / t_big:.2f} x faster | {c_old / c_big:.2f} x less CPU | "
              f"byte-identical: {'yes' if same else 'NO'} |")
    t_bpd, bdf = _timed(lambda: big.to_pandas())
    print(f"| Prediction.to_pandas | {t_bpd:.1f} | | {len(bdf) / t_bpd:,.0f} |")
    if reference:
        t_bref, c_bref = _cpu_timed(lambda: bdf.to_csv(root / "big-ref.csv", index=False, float_format="%.8g"))
        print(f"| reference: pandas DataFrame.to_csv of the same table | {t_bref:.1f} | {c_bref:.1f} | "
              f"{len(bdf) / t_bref:,.0f} |")
        (root / "big-ref.csv").unlink()
    (root / "big.csv").unlink()
    print(f"({_load()})")


def _stages(n: int, model_name: str, *, root: Path, fmt: str = "cif", model: Any = None) -> None:
    """Table 5: per structure, the cost of each stage of the end-to-end path, one worker."""
    import cloudphys.inputs.formats as formats
    from cloudphys.inference.predict import read_items
    from cloudphys.inputs import to_records

    folder = root / "stages"
    folder.mkdir(exist_ok=True)
    paths = _write_structures(n, folder, fmt)
    texts = [Path(p).read_text() for p in paths]
    from cloudphys.inputs.limits import Limits

    lim = Limits()

    def read_all(fast: bool) -> None:
        formats.FAST_CIF = fast
        try:
            for t in texts:
                formats.parse_cif_block(t, lim)
        finally:
            formats.FAST_CIF = True

    def convert(fast: bool, cache: str) -> None:
        os.environ["CLOUDPHYS_CACHE"] = str(root / cache)
        formats.FAST_CIF = fast
        try:
            items = read_items(paths)
            to_records(items, dialect="default", workers=1)
            assert all(it.error is None for it in items), [it.error for it in items if it.error][:3]
        finally:
            formats.FAST_CIF = True

    read_all(True)  # imports
    t_read_pmg = _cpu_timed(lambda: read_all(False))
    t_read_fast = _cpu_timed(lambda: read_all(True))
    t_conv_pmg = _cpu_timed(lambda: convert(False, "cache-stages-pmg"))
    t_conv_fast = _cpu_timed(lambda: convert(True, "cache-stages-fast"))
    t_rerun = _cpu_timed(lambda: convert(True, "cache-stages-fast"))
    if model is None:
        from cloudphys.models import load_model

        model = load_model(model_name)
    T = np.linspace(20.0, 1000.0, 24)
    items = read_items(paths)
    to_records(items, dialect="default", workers=1)
    scopes = [{"id": it.id, "scope": it.scope, "n_atoms": it.n_atoms} for it in items]
    model.predict(scopes[:8], T)  # first-call costs
    t_model = _cpu_timed(lambda: model.predict(scopes, T))
    ms = 1000.0 / len(paths)
    print(f"| stage ({len(paths)} {fmt.upper()} files, one process) | ms per structure | CPU ms per structure | "
          "structures/s |\n|---|---|---|---|")
    for name, (t, c) in [("CIF read, pymatgen CifParser (before)", t_read_pmg),
                         ("CIF read, direct P1 reader (now)", t_read_fast),
                         ("read + convert (spglib, SCOPE), pymatgen reader (before)", t_conv_pmg),
                         ("read + convert, direct reader (now)", t_conv_fast),
                         ("re-run of the same files (SCOPE cache, now also for one-structure files)", t_rerun),
                         (f"model only: {model.members}-member ensemble, 24 T", t_model)]:
        print(f"| {name} | {t * ms:.1f} | {c * ms:.1f} | {len(paths) / t:,.0f} |")
    print(f"({_load()}; CPU time: reading {t_read_pmg[1] / t_read_fast[1]:.2f} x less, conversion "
          f"{t_conv_pmg[1] / t_conv_fast[1]:.2f} x, re-run {t_conv_fast[1] / t_rerun[1]:.1f} x less than converting)\n")


def _versus(old: str, new: str, *, n: int, rounds: int, threads: int, fmt: str, cold: bool = False) -> None:
    """Table 6: the same structure files predicted by two models (e.g. the previously shipped model,
    taken from git, and the shipped one), end to end with the files already converted (SCOPE cache
    warm, so the conversion -- the same for both -- does not hide the models' difference) and from
    SCOPE strings; rounds alternate between the models; the median is reported."""
    import torch

    torch.set_num_threads(threads)  # a benchmark script: the thread count is part of what it measures
    from cloudphys.models import load_model

    root = Path(tempfile.mkdtemp(prefix="bench-predict-versus-"))
    os.environ["CLOUDPHYS_CACHE"] = str(root / "cache")
    paths = _write_structures(n, root, fmt)
    T = np.linspace(20.0, 1000.0, 24)
    models = {name: load_model(name) for name in (old, new)}
    if cold:  # files never seen before: conversion (and a geometric model's geometry) included
        for name, model in models.items():
            os.environ["CLOUDPHYS_CACHE"] = str(root / f"cold-{name}")
            t, res = _timed(lambda m=model: m.predict(paths, T, workers=1))
            assert not res.errors and len(res) == len(paths)
            print(f"{name}: {len(paths)} {fmt.upper()} files -> Prediction from an empty SCOPE cache, one worker: "
                  f"{t:.2f} s ({len(paths) / t:,.0f} structures/s; {_load()})")
        print()
        os.environ["CLOUDPHYS_CACHE"] = str(root / "cache")
    first = models[new].predict(paths, T, workers=1)  # converts every file once (cache now warm)
    assert not first.errors, list(first.errors.items())[:3]
    scopes = [{"id": s.name, "scope": s.scope, "n_atoms": s.n_atoms} for s in first]
    times: dict[str, dict[str, list[float]]] = {name: {"files": [], "scopes": []} for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            t, res = _timed(lambda m=model: m.predict(paths, T, workers=1))
            assert not res.errors and len(res) == len(paths)
            times[name]["files"].append(t)
            t, res = _timed(lambda m=model: m.predict(scopes, T))
            if res.errors and all("geometric" in str(e) for e in res.errors.values()):
                t = float("nan")  # a model that reads the structure's geometry takes no bare strings
            else:
                assert not res.errors and len(res) == len(scopes)
            times[name]["scopes"].append(t)
    print(f"| {len(paths)} {fmt.upper()} files, 24 T, one process, torch threads {threads} | members | head bins | "
          "files -> Prediction s (SCOPE cache warm) | structures/s | SCOPE strings -> Prediction s | structures/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    med = {}
    for name, model in models.items():
        f, sc = float(np.median(times[name]["files"])), float(np.median(times[name]["scopes"]))
        med[name] = (f, sc)
        bins = getattr(getattr(model, "head", None), "bins", "")
        strings = "structures only | –" if np.isnan(sc) else f"{sc:.2f} | {len(paths) / sc:,.0f}"
        print(f"| {name} | {model.members} | {bins} | {f:.2f} | {len(paths) / f:,.0f} | {strings} |")
    print(f"(median of {rounds} alternating rounds; {new} / {old} time: files {med[new][0] / med[old][0]:.2f}, "
          f"strings {med[new][1] / med[old][1]:.2f}; {_load()})\n")


def _load_costs(model_name: str) -> None:
    """Where ``load_model`` goes in a fresh process: the imports, then reading and checking the members."""
    rows = []
    t, c = _cpu_timed(lambda: __import__("torch"))
    rows.append(("import torch", t, c))
    t, c = _cpu_timed(lambda: __import__("transformers.models.bert.modeling_bert"))
    rows.append(("import transformers' BERT", t, c))
    t, c = _cpu_timed(lambda: (__import__("cloudphys.encoders.bert"), __import__("cloudphys.modeling.core")))
    rows.append(("import cloudphys' model modules", t, c))
    from cloudphys.models import load_model

    t, c = _cpu_timed(lambda: load_model(model_name))
    rows.append((f"load_model({model_name!r}): read, validate, build the members", t, c))
    print("| loading the model (fresh process) | seconds | CPU seconds |\n|---|---|---|")
    for name, t, c in rows:
        print(f"| {name} | {t:.1f} | {c:.1f} |")
    print(f"({_load()})\n")


def _check_cif(step: int = 1) -> None:
    """Every (``step``-th) CIF of the shared data read with the direct reader and with pymatgen: count
    differences."""
    import csv
    import sys

    from pymatgen.core import Structure
    from pymatgen.io.cif import CifFile, CifWriter

    import cloudphys.inputs.formats as formats
    from cloudphys.inputs.limits import Limits

    data = Path(os.environ.get("CLOUDPHYS_DATA", "../shared/data"))
    csv.field_size_limit(1 << 30)

    def texts() -> Any:
        with gzip.open(data / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
            for k, line in enumerate(fh):
                if k % step == 0:
                    yield "phonondb-thermo", str(CifWriter(Structure.from_dict(json.loads(line)["structure"])))
        for path in sorted((data / "structures").glob("*.csv.gz")):
            with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
                for k, row in enumerate(csv.DictReader(fh)):
                    if k % step == 0:
                        yield path.name, row["cif"]

    lim = Limits()

    def read(text: str, fast: bool) -> Any:
        formats.FAST_CIF = fast
        try:
            return formats.parse_cif_block(text, lim)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        finally:
            formats.FAST_CIF = True

    counts: dict[str, list[int]] = {}
    for source, text in texts():
        c = counts.setdefault(source, [0, 0, 0])
        blocks = list(CifFile.from_str(text).data.values())
        c[0] += 1
        c[1] += len(blocks) == 1 and formats._plain_p1_structure(blocks[0].data) is not None
        a, b = read(text, True), read(text, False)
        same = type(a) is type(b) and (a == b if isinstance(a, str) else (
            np.array_equal(a.lattice.matrix, b.lattice.matrix) and [s.species for s in a] == [s.species for s in b]
            and np.array_equal(a.frac_coords, b.frac_coords) and a.labels == b.labels))
        c[2] += not same
        if not same:
            print(f"DIFFERENT: {source}: {text[:60]!r}", file=sys.stderr)
        if c[0] % 500 == 0:
            print(f"{source}: {c[0]:,} read, {c[1]:,} direct, {c[2]} differ ({_load()})", file=sys.stderr, flush=True)
    print(f"| CIFs of the shared data{f' (every {step}th)' if step > 1 else ''} | CIFs | direct reader | "
          "differ from pymatgen |\n|---|---|---|---|")
    for source, (n, fast, bad) in counts.items():
        print(f"| {source} | {n:,} | {fast:,} | {bad} |")
    print(f"({_load()})")


if __name__ == "__main__":
    main()
