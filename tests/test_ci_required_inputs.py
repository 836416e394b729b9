"""Tests that need ../shared/data skip locally but FAIL under CI (tests/conftest.py: data_root, missing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

PROBE = '''
from conftest import missing

def test_uses_the_data_fixture(data_root):
    pass

def test_uses_missing():
    missing("some/file.csv not found")
'''


@pytest.mark.parametrize("ci, outcome", [("", "2 skipped"), ("true", "1 failed, 1 error")])
def test_missing_data_skips_locally_and_fails_under_ci(tmp_path: Path, ci: str, outcome: str) -> None:
    probe = tmp_path / "test_probe.py"
    probe.write_text(PROBE)
    (tmp_path / "conftest.py").write_text((TESTS / "conftest.py").read_text())
    env = {**os.environ, "CI": ci, "CLOUDPHYS_DATA": str(tmp_path / "no-such-dir")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist", str(probe)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert outcome in proc.stdout, proc.stdout + proc.stderr
    if ci:
        assert "required under CI" in proc.stdout and proc.returncode == 1
    else:
        assert proc.returncode == 0
