"""pytest plugin (entry point ``pytest11``: ``cloudphys``): the head contract kit as fixtures.

* fixture ``check_head`` -- :func:`cloudphys.testing.check_head` with the command-line options
  applied: ``def test_contract(check_head): check_head(MyHead())``;
* fixture ``head_strategies`` -- the :mod:`cloudphys.testing.strategies` module;
* options ``--cloudphys-samples N`` (random latent rows per head) and ``--cloudphys-seed S``,
  also honoured by :func:`cloudphys.testing.contract_tests`.

Loaded by every pytest run where cloudphys is installed, so it imports nothing heavy up front.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cloudphys", "cloudphys physics-head contract kit")
    group.addoption(
        "--cloudphys-samples", type=int, default=None,
        help="random latent rows per head in the cloudphys contract battery (default 6)",
    )
    group.addoption(
        "--cloudphys-seed", type=int, default=None, help="seed of the cloudphys contract battery's random rows",
    )


@pytest.fixture
def check_head(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """``check_head(head, **options)`` with ``--cloudphys-samples`` / ``--cloudphys-seed`` applied."""
    from .checks import check_head as _check_head

    defaults: dict[str, Any] = {}
    samples = request.config.getoption("--cloudphys-samples")
    seed = request.config.getoption("--cloudphys-seed")
    if samples is not None:
        defaults["samples"] = samples
    if seed is not None:
        defaults["seed"] = seed
    return functools.partial(_check_head, **defaults)


@pytest.fixture
def head_strategies() -> Any:
    """The hypothesis strategies module :mod:`cloudphys.testing.strategies`."""
    from . import strategies

    return strategies
