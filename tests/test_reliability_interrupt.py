"""Reliability guarantee 3: an interrupted training run loses nothing.

``cloudphys train`` runs on the CPU in a subprocess and is killed with SIGKILL -- from outside once a
checkpoint exists, and from inside at the worst moments (after a metrics row but before its
checkpoint, between moving the old checkpoint aside and the new one in, while the new one is being
written, in the middle of a metrics line). After every kill the latest checkpoint is complete (or,
inside the swap, the previous one is set aside complete); ``cloudphys train --resume`` then finishes
the run, and its final weights, optimizer state and metrics equal those of an uninterrupted run with
the same seed. A corrupt checkpoint gives a clear CheckpointError. See docs/reliability.md.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from cloudphys.cli import main

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

EPOCHS = 8
TIMING_KEYS = ("time_s", "samples_per_s")


@pytest.fixture(scope="module")
def config(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run: 32 training + 8 validation rows of CLOUD's Cv data, a 1-layer 16-wide encoder."""
    folder = tmp_path_factory.mktemp("interrupt")
    with open(data_root / "cloud" / "cloud_cv_train_and_val.csv", newline="") as fh:
        rows = [r for _, r in zip(range(40), csv.DictReader(fh))]
    with open(folder / "tiny.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "cloud", "cv", "n_atoms", "split"])
        for k, r in enumerate(rows):
            w.writerow([f"row{k}", r["cloud"], r["cv"], r["n_atoms"], "train" if k < 32 else "val"])
    cfg = {
        "encoder": {
            "name": "scope-bert",
            "hidden_size": 16,
            "num_layers": 1,
            "num_heads": 2,
            "dropout": 0.1,
            "composition_features": True,
        },
        "head": {"name": "debye", "observables": ["cv"]},
        "data": {
            "name": "csv",
            "path": str(folder / "tiny.csv"),
            "column": "cloud",
            "targets": {"cv": "cv"},
            "temperature": 300,
        },
        "train": {
            "epochs": EPOCHS,
            "batch_size": 8,
            "lr": 3.0e-3,
            "warmup": 0.1,
            "patience": 0,
            "seed": 7,
            "device": "cpu",
            "precision": "fp32",
            "progress": "false",
            "num_threads": 1,
        },
    }
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def straight(config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The uninterrupted run (same seed), in a subprocess like the interrupted one."""
    out = tmp_path_factory.mktemp("straight") / "run"
    proc = _train(config, out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    return out


# Hooks run inside the training subprocess: each SIGKILLs the process at one moment of epoch KILL_AT.
HOOKS = {
    "external": "",
    "after-metrics-row": """
        orig = checkpoint.append_metrics
        def hook(out_dir, row):
            orig(out_dir, row)
            if row["epoch"] == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)
        checkpoint.append_metrics = hook
    """,
    "inside-checkpoint-swap": """
        orig = os.replace
        def hook(src, dst):
            if os.path.basename(str(src)).startswith(".last.tmp") and trainer_epoch() == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)  # the old 'last' is already moved aside
            return orig(src, dst)
        checkpoint.os.replace = hook
    """,
    "writing-checkpoint": """
        orig = checkpoint.optimizer_to_files
        def hook(optimizer, path):
            if trainer_epoch() == KILL_AT:
                os.kill(os.getpid(), signal.SIGKILL)  # model files are in the temporary dir, the rest not
            return orig(optimizer, path)
        checkpoint.optimizer_to_files = hook
    """,
    "torn-metrics-line": """
        orig = checkpoint.append_metrics
        def hook(out_dir, row):
            if row["epoch"] == KILL_AT:
                with open(out_dir / "metrics.jsonl", "a") as fh:
                    fh.write(json.dumps(row)[:25])
                    fh.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            orig(out_dir, row)
        checkpoint.append_metrics = hook
    """,
}

RUNNER = """
import json, os, signal, sys
from pathlib import Path
from cloudphys.training import checkpoint
KILL_AT = {kill_at}
OUT = Path({out!r})
def trainer_epoch():
    # the epoch being finished = rows already in metrics.jsonl
    p = OUT / "metrics.jsonl"
    return sum(1 for line in p.read_text().splitlines() if line.strip()) if p.exists() else 0
{hook}
from cloudphys.cli import main
sys.exit(main({argv!r}))
"""


def _train(config: Path, out: Path, resume: bool = False, hook: str = "", kill_at: int = 0) -> subprocess.Popen:
    argv = ["train", str(config), "--out", str(out)] + (["--resume"] if resume else [])
    code = RUNNER.format(kill_at=kill_at, out=str(out), hook=textwrap.dedent(hook), argv=argv)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def _kill_after_first_checkpoint(proc: subprocess.Popen, out: Path) -> int:
    """SIGKILL ``proc`` from outside as soon as ``out/last`` holds a complete checkpoint."""
    state = out / "last" / "trainer_state.json"
    deadline = time.monotonic() + 240
    while not state.exists():
        assert proc.poll() is None, (
            f"training ended before its first checkpoint: {proc.stderr.read() if proc.stderr else ''}"
        )
        assert time.monotonic() < deadline, "no checkpoint after 240 s"
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed (make the run longer)"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return int(json.loads(state.read_text())["epoch"])


def _assert_latest_checkpoint_complete(out: Path, swap: bool = False) -> int:
    """The latest checkpoint loads completely; inside the swap it is the set-aside previous one."""
    from cloudphys.training import ScopePhysicsModel
    from cloudphys.training.checkpoint import load_training_state

    if swap:
        assert not (out / "last").exists()
        (last,) = out.glob(".last.old-*")
    else:
        last = out / "last"
    state, _ = load_training_state(last)
    ScopePhysicsModel.from_pretrained(last)
    for name in ("model.safetensors", "optimizer.safetensors", "rng.safetensors"):
        load_file(str(last / name))
    return int(state["epoch"])


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def _same_tensors(a: Path, b: Path) -> None:
    ta, tb = _tensors(a), _tensors(b)
    assert ta.keys() == tb.keys()
    for k in ta:
        assert torch.equal(ta[k], tb[k]), f"{a.name}: {k} differs"


def _metrics(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


@pytest.mark.slow  # ~80 s: kill-and-resume of a real training run
def test_sigkill_then_resume_equals_an_uninterrupted_run(config: Path, straight: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    # 1. killed from outside once the first checkpoint exists
    killed_at = _kill_after_first_checkpoint(_train(config, out), out)
    assert 1 <= killed_at < EPOCHS
    assert _assert_latest_checkpoint_complete(out) == killed_at
    # 2-5. resumed, then killed from inside at the worst moments of later epochs
    epoch = killed_at
    for name in ("after-metrics-row", "inside-checkpoint-swap", "writing-checkpoint", "torn-metrics-line"):
        kill_at = epoch + 1
        assert kill_at < EPOCHS, f"the run is too short to kill it at every moment (first kill after epoch {killed_at})"
        proc = _train(config, out, resume=True, hook=HOOKS[name], kill_at=kill_at)
        assert proc.wait(timeout=300) == -signal.SIGKILL, (name, proc.stderr.read() if proc.stderr else "")
        done = _assert_latest_checkpoint_complete(out, swap=name == "inside-checkpoint-swap")
        # the checkpoint of the killed epoch was not (fully) written: the latest is the one before
        assert done == kill_at - 1, name
        epoch = done
    # 6. resumed to the end
    proc = _train(config, out, resume=True)
    assert proc.wait(timeout=300) == 0, proc.stderr.read() if proc.stderr else ""
    assert json.loads(proc.stdout.read())["epochs_run"] == EPOCHS

    assert _metrics(out) == _metrics(straight)  # one row per epoch, same numbers
    for sub in ("last", "model"):
        _same_tensors(out / sub / "model.safetensors", straight / sub / "model.safetensors")
    _same_tensors(out / "last" / "optimizer.safetensors", straight / "last" / "optimizer.safetensors")
    _same_tensors(out / "last" / "rng.safetensors", straight / "last" / "rng.safetensors")
    assert json.loads((out / "last" / "trainer_state.json").read_text()) == json.loads(
        (straight / "last" / "trainer_state.json").read_text()
    )
    with open(out / "metrics.csv", newline="") as fa, open(straight / "metrics.csv", newline="") as fb:
        ra, rb = list(csv.DictReader(fa)), list(csv.DictReader(fb))
    assert [r["epoch"] for r in ra] == [r["epoch"] for r in rb] == [str(e) for e in range(1, EPOCHS + 1)]
    assert [r["val_loss"] for r in ra] == [r["val_loss"] for r in rb]
    assert not [p for p in out.glob(".*") if p.name != ".lock"], "temporary checkpoint directories left behind"


def test_checkpoints_are_written_to_a_temporary_name_and_renamed(tmp_path: Path) -> None:
    from cloudphys.training.checkpoint import save_atomic

    final = tmp_path / "ckpt"
    during: list[tuple[str, bool]] = []

    def write(tmp: Path) -> None:
        during.append((tmp.name, final.exists()))
        assert tmp.parent == tmp_path and tmp != final
        (tmp / "a.json").write_text(json.dumps({"n": len(during)}))

    save_atomic(final, write)
    save_atomic(final, write)
    assert [name.startswith(".ckpt.tmp-") for name, _ in during] == [True, True]
    assert [existed for _, existed in during] == [False, True]  # the previous one stays while the next is written
    assert json.loads((final / "a.json").read_text()) == {"n": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]

    def fail(tmp: Path) -> None:
        (tmp / "a.json").write_text("{")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save_atomic(final, fail)
    assert json.loads((final / "a.json").read_text()) == {"n": 2}  # a failed write never replaces the latest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


@pytest.mark.parametrize(
    ("damage", "needle"),
    [
        ("truncate model.safetensors", "cannot load the model.*SafetensorError"),
        ("truncate optimizer.safetensors", "optimizer state .* is missing or corrupt"),
        ("garble trainer_state.json", "training state .* missing or corrupt"),
        ("truncate rng.safetensors", "training state .* missing or corrupt"),
        ("delete head.json", "no model found in .*last"),
    ],
)
def test_corrupt_checkpoint_gives_a_clear_error(
    config: Path, straight: Path, tmp_path: Path, damage: str, needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    out = tmp_path / "run"
    shutil.copytree(straight, out)
    verb, name = damage.split()
    target = out / "last" / name
    if verb == "truncate":
        target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])
    elif verb == "garble":
        target.write_text('{"epoch": ')
    else:
        target.unlink()
    # one more epoch than the run had: a config change --resume refuses unless accepted
    rc = main(
        [
            "train",
            str(config),
            "--out",
            str(out),
            "--resume",
            "--accept-config-changes",
            "-s",
            f"train.epochs={EPOCHS + 1}",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith("error: ")
    assert __import__("re").search(needle, err), err
    assert "Traceback" not in err
