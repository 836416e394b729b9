"""Shared test configuration: data directory and hypothesis profiles.

Profiles (``HYPOTHESIS_PROFILE`` env var): ``ci`` (default, fast), ``slow`` (10x examples).
Tests that need the shared data use the ``data_root`` fixture (or :func:`missing` /
:func:`require` for a single file): locally they skip with a reason when it is absent; in CI
(environment variable ``CI`` set to anything but ``""``/``0``/``false``, as CI services and
``.ci/run`` do) they **fail**, so that a green CI run proves the data-dependent tests ran.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

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


def in_ci() -> bool:
    """True under CI (``CI`` set and not ``""``, ``0`` or ``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """Skip the calling test for ``reason`` (a required input is absent) -- or fail it in CI."""
    if in_ci():
        pytest.fail(f"{reason} (required under CI)", pytrace=False)
    pytest.skip(reason)


def require(condition: object, reason: str) -> None:
    """:func:`missing` unless ``condition`` holds."""
    if not condition:
        missing(reason)


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data directory (``CLOUDPHYS_DATA``); skips the test (fails it in CI) if it does not exist."""
    root = Path(os.environ.get("CLOUDPHYS_DATA", ""))
    require(root.is_dir(), f"data directory {root} not found; set CLOUDPHYS_DATA to ../shared/data")
    return root
