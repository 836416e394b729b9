"""The README's main job as a newcomer runs it, held against the numbers the docs state.

The main job (README.md): MLM-pretrain the encoder (``configs/cloud-pretrain.yaml``), fine-tune an
8-member Debye ensemble on CLOUD's Cv at 300 K (``configs/cloud-cv-debye-ensemble.yaml``), evaluate
on the test split. Training on the CPU is deterministic for a given code, torch version, CPU kind
and thread count; both configs pin their thread counts, so the result does not depend on the
machine's core count. ``tests/data/main_job.json`` records the documented result and a
*fingerprint*: a few steps of the same two trainings, hashed bit for bit, which changes whenever a
code change alters the numbers (``tests/test_main_job_numbers.py`` checks it in seconds)::

    python benchmarks/bench_main_job.py                 # the whole job (~10 min on 2 cores); exit 1 on drift
    python benchmarks/bench_main_job.py --fingerprint   # the fingerprint only (about a minute)
    python benchmarks/bench_main_job.py --record        # the whole job, then rewrite tests/data/main_job.json
    python benchmarks/bench_main_job.py --record --from-eval RUNS/eval-test.json --wall-s S
        # record a job already run with the README's own commands (their `evaluate -o` output)

After a change that moves the numbers on purpose: ``--record``, then put the printed MAE and MAE/MAD
into docs/benchmarks.md and README-facing docs (the test compares them with the record).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RECORD = REPO / "tests" / "data" / "main_job.json"
PRETRAIN = REPO / "configs" / "cloud-pretrain.yaml"
FINETUNE = REPO / "configs" / "cloud-cv-debye-ensemble.yaml"
#: How far the whole job's test metrics may be from the record (they print to 4 significant digits).
MAE_TOL, RATIO_TOL = 5e-4, 5e-5


def machine() -> dict[str, str]:
    """What the bit-for-bit numbers depend on besides the code: torch version and CPU kind."""
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"torch": torch.__version__.split("+")[0], "cpu": cpu, "arch": platform.machine()}


def _state_sha(model: Any) -> str:
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def finetune_fingerprint(pretrained: Path | None = None, *, steps: int = 8, limit: int = 128) -> dict[str, Any]:
    """A few steps of one member's fine-tuning as the main job's config runs it (its thread count,
    seed, optimiser, data; from ``pretrained`` or, without it, a fresh encoder), hashed bit for bit."""
    from cloudphys.training import fit

    res = fit(FINETUNE, None, overrides=[
        f"encoder.pretrained={pretrained if pretrained is not None else 'null'}", "train.ensemble=1",
        "train.parallel_members=1", "train.epochs=1", f"train.max_steps={steps}", f"train.limit={limit}",
        "train.progress=false",
    ])
    return {"steps": steps, "limit": limit, "val_mae": res.history[-1]["val_mae"],
            "weights_sha256": _state_sha(res.model)}


def fingerprint(workdir: Path, *, pretrain_steps: int = 4) -> dict[str, Any]:
    """The fine-tuning fingerprint from a fresh encoder (``finetune``; seconds) and from a few steps of
    the main job's pretraining (``pretrained``; the corpus and the MLM too, about a minute)."""
    from cloudphys.training.pretrain import pretrain

    pre = workdir / "pretrained"
    pretrain(PRETRAIN, pre, overwrite=True,
             overrides=[f"pretrain.max_steps={pretrain_steps}", "pretrain.epochs=1", "pretrain.progress=false"])
    return {"finetune": finetune_fingerprint(), "pretrained": {"pretrain_steps": pretrain_steps,
                                                               **finetune_fingerprint(pre)}}


def run_job(workdir: Path) -> dict[str, Any]:
    """The README's three commands in ``workdir`` (its ``runs/``); the test metrics and the wall time."""
    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # a newcomer's shell: the configs pin the threads
        env.pop(var, None)
    cli = [sys.executable, "-m", "cloudphys"]
    start = time.perf_counter()
    for args in (["pretrain", str(PRETRAIN), "--out", "runs/pretrained-cloud", "--overwrite"],
                 ["train", str(FINETUNE), "--out", "runs/cloud-cv-debye-ensemble", "--overwrite"],
                 ["evaluate", "runs/cloud-cv-debye-ensemble", "--split", "test", "-o", "runs/eval-test.json"]):
        subprocess.run(cli + args, cwd=workdir, env=env, check=True, stdout=subprocess.DEVNULL)
    metrics = json.loads((workdir / "runs" / "eval-test.json").read_text())
    return {"mae": metrics["mae"], "mae_over_mad": metrics["mae_over_mad"],
            "mae_per_atom": metrics["mae_per_atom"], "wall_s": round(time.perf_counter() - start)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--fingerprint", action="store_true", help="only the fingerprint (about a minute)")
    p.add_argument("--record", action="store_true", help=f"run the job and rewrite {RECORD.relative_to(REPO)}")
    p.add_argument("--workdir", type=Path, help="where runs/ goes (default: a temporary directory)")
    p.add_argument("--from-eval", type=Path, help="the `cloudphys evaluate -o` JSON of a main job already run "
                   "with the README's commands (instead of running it again)")
    p.add_argument("--wall-s", type=float, help="with --from-eval: that job's wall time (s)")
    args = p.parse_args(argv)
    record = json.loads(RECORD.read_text()) if RECORD.is_file() else {}
    with tempfile.TemporaryDirectory(prefix="cloudphys-main-job-") as tmp:
        work = args.workdir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        out: dict[str, Any] = {"machine": machine(), "fingerprint": fingerprint(work / "fp")}
        if args.from_eval is not None:
            metrics = json.loads(args.from_eval.read_text())
            out["result"] = {"mae": metrics["mae"], "mae_over_mad": metrics["mae_over_mad"],
                             "mae_per_atom": metrics["mae_per_atom"], "wall_s": args.wall_s}
        elif not args.fingerprint:
            out["result"] = run_job(work)
    print(json.dumps(out, indent=2))
    if args.record:  # --fingerprint keeps the recorded result (the fingerprint of the same code)
        RECORD.parent.mkdir(parents=True, exist_ok=True)
        RECORD.write_text(json.dumps({**record, **out}, indent=2) + "\n")
        return 0
    problems = []
    if record.get("machine") == out["machine"] and record.get("fingerprint") != out["fingerprint"]:
        problems.append("the fingerprint differs from the record: the code now trains to other numbers")
    if "result" in out and "result" in record:
        got, want = out["result"], record["result"]
        if abs(got["mae"] - want["mae"]) > MAE_TOL or abs(got["mae_over_mad"] - want["mae_over_mad"]) > RATIO_TOL:
            problems.append(f"test MAE {got['mae']:.4f} / MAE/MAD {got['mae_over_mad']:.5f}, documented "
                            f"{want['mae']:.4f} / {want['mae_over_mad']:.5f}")
        if got["mae_over_mad"] > 0.06:
            problems.append(f"MAE/MAD {got['mae_over_mad']:.5f} is above the goal 0.06")
    for msg in problems:
        print(f"DRIFT: {msg}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
