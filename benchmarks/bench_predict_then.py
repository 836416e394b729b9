"""Prediction cost against the day an issue was filed: that day's code *and* model, against today's
code and a shipped model, each in a fresh process from an empty SCOPE cache (issue 20 §4: "Predicting
1,000 structures with it is not slower than today").

``bench_predict.py --versus OLD --cold`` runs both models in today's code (today's faster conversion
then serves the old model too). This script answers what a user of that day sees against a user of
today: the old checkout (``git worktree add --detach DIR COMMIT``) with its own shipped model, and
this checkout with ``--model``, run alternately (``--rounds``), each process timing
``load_model(...).predict(files, 24 temperatures, workers=1)`` on the same CIF files (written once
from phonondb-thermo's structures, as ``bench_predict.py`` writes them); the median per side.

    git worktree add --detach /tmp/then 152779a
    CLOUDPHYS_DATA=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_predict_then.py \\
        --then /tmp/then --then-model /tmp/then/cloudphys/models/phonondb-dos --model phonondb-dos-geo
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]

#: What each process runs: load the model, predict the files from an empty SCOPE cache, print the time.
CHILD = """
import glob, json, sys, time
import numpy as np
import torch
torch.set_num_threads(1)
from cloudphys.models import load_model
model = load_model(sys.argv[1])
paths = sorted(glob.glob(sys.argv[2] + "/*.cif"))
T = np.linspace(20.0, 1000.0, 24)
t = time.perf_counter()
try:
    res = model.predict(paths, T, workers=1)
except TypeError:  # an older predict without workers
    res = model.predict(paths, T)
print(json.dumps({"seconds": time.perf_counter() - t, "n": len(paths), "errors": len(res.errors or {})}))
"""


def _run(code: Path, model: str, files: Path, cache: Path) -> dict:
    plugins = [str(p) for p in sorted((code / "plugins").glob("*")) if p.is_dir()]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(code), *plugins]), "CLOUDPHYS_CACHE": str(cache),
           "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(files)], env=env, capture_output=True,
                         text=True, check=True, cwd=str(code))
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--then", required=True, help="checkout of the code of the issue's day")
    ap.add_argument("--then-model", required=True, help="the model shipped that day (a path or a name)")
    ap.add_argument("--model", default="phonondb-dos-geo", help="today's model (default phonondb-dos-geo)")
    ap.add_argument("--n", type=int, default=1000, help="CIF files (default 1000)")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    args = ap.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import bench_predict

    root = Path(tempfile.mkdtemp(prefix="bench-predict-then-"))
    files = root / "cif"
    files.mkdir()
    bench_predict._write_structures(args.n, files, "cif")
    sides = {"then": (Path(args.then).resolve(), args.then_model), "now": (REPO, args.model)}
    times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        for name, (code, model) in sides.items():
            res = _run(code, model, files, root / f"cache-{name}-{r}")  # a fresh cache: files never seen
            if res["errors"] or res["n"] != args.n:
                raise SystemExit(f"{name}: {res}")
            times[name].append(res["seconds"])
            load = " ".join(f"{x:.2f}" for x in os.getloadavg())
            print(f"round {r}: {name} ({code.name}, {model}): {res['seconds']:.2f} s for {res['n']} CIF files "
                  f"(load {load})", flush=True)
    then, now = float(np.median(times["then"])), float(np.median(times["now"]))
    print(f"\n| {args.n} CIF files → Prediction, empty SCOPE cache, one worker | s (median of {args.rounds}) |")
    print("|---|---:|")
    print(f"| the issue's day: {Path(args.then).name} code, {args.then_model} | {then:.2f} |")
    print(f"| today: this checkout, {args.model} | {now:.2f} |")
    print(f"| today / the issue's day | **{now / then:.2f}** |")


if __name__ == "__main__":
    main()
