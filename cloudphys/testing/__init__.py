"""Tools for physics-head authors: a contract battery, hypothesis strategies, a pytest plugin.

::

    from cloudphys.testing import check_head
    check_head(MyHead())                   # raises HeadCheckError listing every failure

    # one line in a test module: one test item per (head, check), by name or class
    from cloudphys.testing import contract_tests
    test_contract = contract_tests("my-head", MyOtherHead)

    # property tests with hypothesis
    from cloudphys.testing import strategies as cst
    @given(cst.head_inputs(MyHead()))
    def test_props(inputs): check_head_inputs(MyHead(), *inputs)

The pytest plugin (entry point ``pytest11``: ``cloudphys``) adds the fixtures ``check_head`` and
``head_strategies`` and the options ``--cloudphys-samples`` / ``--cloudphys-seed``. Importing
this package is cheap: torch and hypothesis load on first use of what needs them.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "CHECKS",
    "POINT_CHECKS",
    "DEFAULT_TEMPERATURES",
    "ENERGY_FLOOR_K",
    "HeadCheckError",
    "HeadCheckReport",
    "TOLERANCES",
    "check_head",
    "check_head_inputs",
    "contract_tests",
    "latent_grid",
    "resolve_head",
    "strategies",
    "tolerance",
]

_LAZY = {
    "CHECKS": "checks",
    "POINT_CHECKS": "checks",
    "DEFAULT_TEMPERATURES": "checks",
    "HeadCheckError": "checks",
    "HeadCheckReport": "checks",
    "check_head": "checks",
    "check_head_inputs": "checks",
    "latent_grid": "checks",
    "resolve_head": "checks",
    "contract_tests": "suite",
    "TOLERANCES": "tolerances",
    "ENERGY_FLOOR_K": "tolerances",
    "tolerance": "tolerances",
}


def __getattr__(name: str) -> Any:
    if name == "strategies":
        return importlib.import_module(".strategies", __name__)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted(__all__)
