"""Shared test configuration: data directory and hypothesis profiles.

Profiles (``HYPOTHESIS_PROFILE`` env var): ``ci`` (default, fast), ``slow`` (10x examples).
Tests that need the shared data use the ``data_root`` fixture, which skips with a reason if the
data directory is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
if not os.environ.get("CLOUDPHYS_DATA"):
    default = REPO.parent / "shared" / "data"
    if default.is_dir():
        os.environ["CLOUDPHYS_DATA"] = str(default)
else:  # absolute, so that subprocesses started in a temporary directory find the same data
    os.environ["CLOUDPHYS_DATA"] = str(Path(os.environ["CLOUDPHYS_DATA"]).resolve())

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("slow", deadline=None, max_examples=1000, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data directory (``CLOUDPHYS_DATA``); skips the test if it does not exist."""
    root = Path(os.environ.get("CLOUDPHYS_DATA", ""))
    if not root.is_dir():
        pytest.skip(f"data directory {root} not found; set CLOUDPHYS_DATA to ../shared/data")
    return root
