"""docs/plugins.md cannot rot: build exactly the tutorial's plugin, install it (offline, into a
temporary directory), find it in `cloudphys plugins`, train from the tutorial's config, run the
tutorial's Python snippet and its test files (the contract kit through the pytest plugin)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import missing  # skips locally, fails under CI (tests/conftest.py)

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "plugins.md"
MARKED = re.compile(r"<!-- (file|output): (.+?) -->\n```[a-z]*\n(.*?)```", re.S)


def marked_blocks() -> tuple[dict[str, str], dict[str, str]]:
    files: dict[str, str] = {}
    outputs: dict[str, str] = {}
    for kind, name, body in MARKED.findall(DOC.read_text(encoding="utf-8")):
        (files if kind == "file" else outputs)[name.strip()] = body
    return files, outputs


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    proc = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


def test_doc_marks_the_two_plugin_files():
    files, outputs = marked_blocks()
    plugin_files = sorted(f for f in files if f.startswith("cloudphys-two-einstein/") and "/tests/" not in f)
    assert plugin_files == ["cloudphys-two-einstein/cloudphys_two_einstein.py", "cloudphys-two-einstein/pyproject.toml"]
    assert "cloudphys plugins" in outputs and "two-einstein.yaml" in files


def test_tutorial_plugin_builds_installs_lists_trains_and_passes_the_kit(tmp_path):
    pytest.importorskip("setuptools", reason="building the tutorial's plugin offline needs setuptools (test extra)")
    files, outputs = marked_blocks()
    for name, body in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")

    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if k not in ("CLOUDPHYS_LOAD_PLUGINS", "CLOUDPHYS_DISABLE_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(site)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    py = sys.executable

    # Install: exactly the two files, no network, into a private directory on PYTHONPATH.
    run(
        [
            py,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(site),
            str(tmp_path / "cloudphys-two-einstein"),
        ],
        tmp_path,
        env,
    )
    assert (site / "cloudphys_two_einstein.py").is_file()

    # `cloudphys plugins` shows it as the tutorial says.
    listing = run([py, "-m", "cloudphys", "plugins"], tmp_path, env).stdout
    for line in outputs["cloudphys plugins"].strip().splitlines():
        assert line in listing.splitlines(), f"{line!r} not in:\n{listing}"
    data = json.loads(run([py, "-m", "cloudphys", "plugins", "--json"], tmp_path, env).stdout)
    assert not [e for e in data["errors"] if e["plugin"] == "two-einstein"], data["errors"]

    # The Python snippet runs.
    out = run([py, "use_two_einstein.py"], tmp_path, env).stdout
    assert "tensor(" in out

    # The tutorial's tests: the contract battery by name + the fixture + hypothesis strategies.
    res = run(
        [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", "cloudphys-two-einstein/tests"],
        tmp_path,
        env,
    )
    from cloudphys.testing import CHECKS

    expected = len(CHECKS) + 2  # one item per contract check + the 2 tests of the tutorial
    assert re.search(rf"\b{expected} passed\b", res.stdout), res.stdout

    # The tutorial's config trains (a few steps) with the head found by name.
    data_dir = Path(env.get("CLOUDPHYS_DATA", ""))
    if not (data_dir / "cloud").is_dir():
        missing(f"CLOUDPHYS_DATA={data_dir} has no cloud/ data: training step not run")
    run(
        [
            py,
            "-m",
            "cloudphys",
            "train",
            "two-einstein.yaml",
            "--out",
            "run",
            "-s",
            "train.epochs=1",
            "train.max_steps=2",
            "train.limit=32",
            "train.progress=false",
            "train.num_threads=1",
        ],
        tmp_path,
        env,
    )
    head = json.loads(next((tmp_path / "run").rglob("head.json")).read_text())
    assert head["name"] == "two-einstein"
    assert [s["name"] for s in head["describe"]["latents"]] == ["theta_low", "theta_high", "frac"]
