"""Benchmark (issue 24 §2): the token corpus on disk and pretraining streamed from it, against corpus size.

For each size N (default 10^4, 10^5, 10^6, 6.3*10^6) of synthetic SCOPE strings drawn from the grammar
(:mod:`cloudphys.testing.synthetic_scope`: real space groups, their real Wyckoff sets, random
compositions of real elements), each step in its own subprocess (so that its peak RSS,
``resource.getrusage(...).ru_maxrss``, is its own):

* ``build``  -- N strings written to a text file, then ``build_token_corpus`` (the code behind
  ``cloudphys data build-corpus FILE --out DIR --workers W``): parse, canonicalise, de-duplicate,
  tokenize, write shards. Wall time, disk size, peak RSS (this process + its workers).
* ``direct`` -- the same kind of corpus written straight from generated token ids (no parsing; the
  key of a string is a 64-bit hash of its token ids, not of its canonical string, and nothing is
  de-duplicated): how the larger sizes are made when the full build does not fit the time budget.
* ``train``  -- ``cloudphys pretrain`` with ``pretrain.corpus`` on that corpus for a fixed number of
  steps (same model, batch and seed at every size): tokens/s of the steps (non-padding tokens over
  the seconds spent in the steps: reading the batch from the memory maps, masking, forward,
  backward, update) and the peak RSS of the whole process.

Results are appended to a JSON-lines file (one row per step and size), so a partial run keeps what
finished; ``--report`` prints the markdown table of docs/benchmarks.md from it.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/bench_corpus.py --work /tmp/bench-corpus \
        --build-sizes 10000 100000 1000000 --sizes 10000 100000 1000000 6300000
    python benchmarks/bench_corpus.py --report
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "corpus.jsonl"


def _rss_mb(children: bool = False) -> float:
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if children:
        return me + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return me


def _du_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _id_keys(tokens: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each string's token ids (vectorised)."""
    n = len(offsets) - 1
    row = np.repeat(np.arange(n), np.diff(offsets))
    pos = np.arange(len(tokens)) - offsets[row]
    salt = _mix(np.arange(1, 257, dtype=np.uint64))
    with np.errstate(over="ignore"):
        v = _mix(tokens.astype(np.uint64) + salt[pos])
    h = np.zeros(n, dtype=np.uint64)
    np.add.at(h, row, v)  # wrapping sum
    return _mix(h)


def child_direct(n: int, out: Path, shard: int = 500_000) -> dict:
    from cloudphys.data import shards as S
    from cloudphys.outputs import write_json
    from cloudphys.testing.synthetic_scope import SyntheticScope

    t0 = time.perf_counter()
    gen = SyntheticScope()
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    longest = tokens_total = done = 0
    while done < n:
        m = min(shard, n - done)
        tok, off = gen.ids(m, rng)
        name = f"shard-{len(entries):05d}"
        S._save_npy(out / f"{name}.tokens.npy", tok)
        S._save_npy(out / f"{name}.offsets.npy", off)
        S._save_npy(out / f"{name}.keys.npy", _id_keys(tok, off))
        longest = max(longest, int(np.diff(off).max()))
        tokens_total += len(tok)
        entries.append({"name": name, "tokens": f"{name}.tokens.npy", "offsets": f"{name}.offsets.npy",
                        "keys": f"{name}.keys.npy", "failures_file": None, "start": done, "stop": done + m,
                        "items": m, "strings": m, "tokens_count": len(tok), "longest": int(np.diff(off).max()),
                        "duplicates": 0, "excluded": 0, "failures": 0})
        done += m
    write_json(out / "manifest.json", {
        "format": S.FORMAT, "version": S.VERSION, "vocab_sha256": S.vocab_sha256(), "vocab_size": len(S._vocab()),
        "token_dtype": "uint16", "key": "bench: 64-bit hash of the token ids (written directly, not de-duplicated)",
        "settings": {"dialect": "default", "max_length": 256, "shard_size": shard, "inputs": [], "exclude": []},
        "complete": True, "shards": entries,
        "counts": {"items": n, "strings": n, "tokens": tokens_total, "longest": longest, "duplicates": 0,
                   "excluded": 0, "failures": 0}})
    return {"step": "direct", "n": n, "seconds": time.perf_counter() - t0, "disk_mb": _du_mb(out),
            "tokens": tokens_total, "peak_rss_mb": _rss_mb()}


def child_build(n: int, out: Path, workers: int) -> dict:
    from cloudphys.data.shards import build_token_corpus
    from cloudphys.testing.synthetic_scope import SyntheticScope

    gen = SyntheticScope()
    rng = np.random.default_rng(0)
    txt = out.with_suffix(".txt")
    t0 = time.perf_counter()
    with open(txt, "w") as fh:
        done = 0
        while done < n:
            m = min(200_000, n - done)
            fh.write("\n".join(gen.texts(*gen.ids(m, rng))) + "\n")
            done += m
    t_gen = time.perf_counter() - t0
    t0 = time.perf_counter()
    rep = build_token_corpus([str(txt)], out, workers=workers, shard_size=100_000, overwrite=True)
    sec = time.perf_counter() - t0
    size_txt = txt.stat().st_size / 1e6
    txt.unlink()
    return {"step": "build", "n": n, "workers": workers, "seconds": sec, "generate_seconds": t_gen,
            "disk_mb": _du_mb(out), "text_mb": size_txt, "strings": rep.strings, "duplicates": rep.duplicates,
            "failures": rep.failures, "tokens": rep.tokens, "peak_rss_mb": _rss_mb(children=True)}


def child_train(corpus: Path, run: Path, steps: int, batch: int, hidden: int) -> dict:
    import torch

    from cloudphys.training.pretrain import pretrain

    rss0 = _rss_mb()
    cfg = {"encoder": {"name": "scope-bert", "hidden_size": hidden, "num_layers": 2, "num_heads": 4,
                       "max_length": 64},
           "head": {"name": "debye"},
           "pretrain": {"corpus": str(corpus), "epochs": 1, "max_steps": steps, "batch_size": batch, "lr": 1e-3,
                        "device": "cpu", "progress": "false", "val_fraction": 0.01, "val_max": 256,
                        "num_threads": 1, "seed": 0}}
    t0 = time.perf_counter()
    res = pretrain(cfg, run, overwrite=True)
    wall = time.perf_counter() - t0
    return {"step": "train", "corpus": str(corpus), "steps": res["steps"], "batch": batch, "hidden": hidden,
            "tokens_seen": res["tokens_seen"], "loop_seconds": res["seconds"], "wall_seconds": wall,
            "step_seconds": res["step_seconds"],
            "tokens_per_s": res["tokens_seen"] / res["step_seconds"], "peak_rss_mb": _rss_mb(),
            "rss_after_imports_mb": rss0, "torch": torch.__version__}


def _run_child(args: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, "_child", *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _append(row: dict) -> None:
    row = {**row, "load": _load(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row), flush=True)


def report() -> None:
    import statistics

    rows = [json.loads(x) for x in RESULTS.read_text().splitlines() if x.strip()]
    print("| corpus | N strings | kept (duplicates removed) | build s | strings/s | disk MB | peak RSS of the build MB "
          "| load at build |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    builds = sorted((r for r in rows if r["step"] in ("build", "direct")), key=lambda r: (r["step"] != "build", r["n"]))
    for r in builds:
        what = f"built from text, {r['workers']} workers" if r["step"] == "build" else "written from token ids"
        kept = f"{r['strings']:,} ({r['duplicates']:,})" if "duplicates" in r else f"{r.get('strings', r['n']):,} (not de-duplicated)"
        print(f"| {what} | {r['n']:,} | {kept} | {r['seconds']:.1f} | {r['n'] / r['seconds']:,.0f} | {r['disk_mb']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['load']} |")
    train = [r for r in rows if r["step"] == "train"]
    if not train:
        return
    t = train[0]
    print(f"\npretraining, {t['steps']} steps, batch {t['batch']}, hidden {t['hidden']}, 2 layers, 1 thread; "
          "median (and range) over rounds:\n")
    print("| corpus | N strings | tokens/s | peak RSS MB | RSS / RSS at the smallest N | rounds | load (1 min) |")
    print("|---|---:|---:|---:|---:|---:|---|")
    groups: dict[tuple[str, int], list[dict]] = {}
    for r in train:
        groups.setdefault((r["kind"], r["n_corpus"]), []).append(r)
    base = {}
    for kind in {k for k, _ in groups}:
        smallest = min(n for k, n in groups if k == kind)
        base[kind] = max(x["peak_rss_mb"] for x in groups[(kind, smallest)])
    for (kind, n), g in sorted(groups.items()):
        tps = [x["tokens_per_s"] for x in g]
        rss = max(x["peak_rss_mb"] for x in g)
        loads = ", ".join(x["load"].split()[0] for x in g)
        print(f"| {kind} | {n:,} | {statistics.median(tps):.0f} ({min(tps):.0f}-{max(tps):.0f}) | {rss:.0f} | "
              f"{rss / base[kind]:.2f} | {len(g)} | {loads} |")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_child":
        kind, rest = sys.argv[2], sys.argv[3:]
        if kind == "direct":
            out = child_direct(int(rest[0]), Path(rest[1]))
        elif kind == "build":
            out = child_build(int(rest[0]), Path(rest[1]), int(rest[2]))
        else:
            out = child_train(Path(rest[0]), Path(rest[1]), int(rest[2]), int(rest[3]), int(rest[4]))
        print(json.dumps(out))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/bench-corpus", help="where corpora and runs go (large)")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000, 6_300_000],
                    help="sizes written directly from token ids and trained on")
    ap.add_argument("--build-sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000],
                    help="sizes built from text by build_token_corpus (and trained on)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3, help="training runs per corpus, interleaved over sizes")
    ap.add_argument("--keep", action="store_true", help="keep the corpora in --work")
    ap.add_argument("--report", action="store_true", help="print the markdown table of the results file")
    args = ap.parse_args()
    if args.report:
        report()
        return
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    import shutil

    corpora: list[tuple[str, int, Path]] = []
    for n in args.build_sizes:
        d = work / f"built-{n}"
        _append(_run_child(["build", str(n), str(d), str(args.workers)]))
        corpora.append(("built corpus", n, d))
    for n in args.sizes:
        d = work / f"direct-{n}"
        _append(_run_child(["direct", str(n), str(d)]))
        corpora.append(("direct corpus", n, d))
    for r in range(args.rounds):  # interleaved: the machine's load drifts, every size sees the same drift
        for kind, n, d in corpora:
            row = _run_child(["train", str(d), str(work / "run"), str(args.steps), str(args.batch), str(args.hidden)])
            _append({**row, "n_corpus": n, "kind": kind, "round": r})
    if not args.keep:
        for _, _, d in corpora:
            shutil.rmtree(d)

if __name__ == "__main__":
    main()
