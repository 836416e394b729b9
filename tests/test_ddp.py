"""Two CPU processes (gloo) through torch.distributed.run must end with identical models."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def test_two_process_gloo_ranks_agree(tmp_path: Path, data_root: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CLOUDPHYS_DATA": str(data_root)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "ddp_worker.py"), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0 = json.loads((tmp_path / "rank0.json").read_text())
    r1 = json.loads((tmp_path / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2
    assert r0["weights"] == r1["weights"]
    assert r0["val_loss"] == r1["val_loss"] and len(r0["val_loss"]) == 3
    assert r0["train_loss"] != r1["train_loss"]  # each rank saw its own half of every batch
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    assert len((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()) == 3  # rank 0 writes once
