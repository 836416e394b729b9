"""``contract_tests``: the battery as pytest test items, one per (head, check)."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["contract_tests"]


def _label(head: Any) -> str:
    name = getattr(head, "name", None)
    return name if isinstance(name, str) and name else str(head)


def contract_tests(*heads: Any, checks: tuple[str, ...] | None = None, **options: Any) -> Callable[..., None]:
    """A pytest test function running :func:`~cloudphys.testing.check_head` per head and check.

    One line in a test module::

        test_contract = contract_tests("einstein", "debye-einstein")

    :param heads: registered names (resolved when the test runs), head classes or built heads.
    :param checks: subset of :data:`~cloudphys.testing.CHECKS` (default: all).
    :param options: further keyword arguments of ``check_head`` (e.g. ``classical_limit=False``).
        ``--cloudphys-samples`` / ``--cloudphys-seed`` on the pytest command line override
        ``samples`` / ``seed`` when the pytest plugin is active.
    """
    import pytest

    from .checks import CHECKS

    if not heads:
        raise ValueError("contract_tests needs at least one head")
    chosen = tuple(CHECKS if checks is None else checks)
    params = [pytest.param(h, c, id=f"{_label(h)}-{c}") for h in heads for c in chosen]

    @pytest.mark.parametrize(("head", "check"), params)
    def test_head_contract(head: Any, check: str, request: Any) -> None:
        from .checks import check_head

        kwargs = dict(options)
        for opt, key in (("--cloudphys-samples", "samples"), ("--cloudphys-seed", "seed")):
            try:
                value = request.config.getoption(opt)
            except ValueError:  # the pytest plugin is not active
                value = None
            if value is not None:
                kwargs[key] = value
        check_head(head, checks=[check], **kwargs)

    return test_head_contract
