"""Parallel-member training workers (``train.parallel_members``) live and die with their run (issue 22 §7).

* SIGKILL of the main ``cloudphys train`` process ends its member workers at once (Linux:
  ``PR_SET_PDEATHSIG``; elsewhere a watchdog thread polling the parent pid), so nothing keeps writing
  a member directory once the run lock is gone;
* a worker killed from outside is one ``error:`` line naming its member (``WorkerError``), no
  traceback; ``cloudphys train --resume`` then finishes the ensemble.

Real processes, real signals (about a minute each on 2 shared cores): marked ``slow``.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]


def _config(folder: Path, data_root: Path, epochs: int) -> Path:
    with open(data_root / "cloud" / "cloud_cv_train_and_val.csv", newline="") as fh:
        rows = [r for _, r in zip(range(40), csv.DictReader(fh))]
    with open(folder / "tiny.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "cloud", "cv", "n_atoms", "split"])
        for k, r in enumerate(rows):
            w.writerow([f"row{k}", r["cloud"], r["cv"], r["n_atoms"], "train" if k < 32 else "val"])
    cfg = {
        "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
        "head": {"name": "debye", "observables": ["cv"]},
        "data": {"name": "csv", "path": str(folder / "tiny.csv"), "column": "cloud", "targets": {"cv": "cv"},
                 "temperature": 300},
        "train": {"epochs": epochs, "batch_size": 8, "lr": 3.0e-3, "patience": 0, "seed": 3, "device": "cpu",
                  "precision": "fp32", "progress": "false", "num_threads": 1, "ensemble": 2,
                  "parallel_members": 2},
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train(config: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "cloudphys", "train", str(config), "--out", str(out), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as fh:
            return not any(line.startswith("State:") and "Z" in line for line in fh)
    except FileNotFoundError:
        return False
    except OSError:  # no /proc: ask the kernel
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True


def _worker_pids(out: Path, proc: subprocess.Popen[str], names: tuple[str, ...], timeout: float = 900,
                 need_checkpoint: bool = False) -> dict[str, int]:
    """Wait until every member in ``names`` is being trained by a worker (its lock holds the worker's pid)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        pids = {}
        for name in names:
            try:
                pid = int((out / name / ".lock").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                break
            if pid == proc.pid or not _alive(pid) or (need_checkpoint and not (out / name / "last").is_dir()):
                break
            pids[name] = pid
        else:
            return pids
        time.sleep(0.2)
    raise AssertionError(f"the member workers did not start within {timeout} s")


def test_killing_the_main_process_ends_its_member_workers(data_root: Path, tmp_path: Path) -> None:
    config = _config(tmp_path, data_root, epochs=100_000)  # would run for hours
    out = tmp_path / "run"
    proc = _train(config, out)
    try:
        pids = _worker_pids(out, proc, ("member-0", "member-1"))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(p) for p in pids.values()), f"workers {pids} outlived the killed run"
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in locals().get("pids", {}).values():
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_killed_worker_names_its_member_and_resume_finishes(data_root: Path, tmp_path: Path) -> None:
    from cloudphys.modeling import load_core as load_model
    from cloudphys.modeling import read_manifest

    config = _config(tmp_path, data_root, epochs=60)
    out = tmp_path / "run"
    proc = _train(config, out)
    try:
        pids = _worker_pids(out, proc, ("member-1",), need_checkpoint=True)
        os.kill(pids["member-1"], signal.SIGKILL)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "Traceback" not in err and "BrokenProcessPool" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "member member-1" in lines[0] and "killed by signal 9" in lines[0], err
    assert "--resume" in lines[0]
    resumed = _train(config, out, "--resume")
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert read_manifest(out)["complete"] == ["member-0", "member-1"]
    assert len(load_model(out).encoder.members) == 2
