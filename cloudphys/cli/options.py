"""Bounds of the numeric command-line options, checked before any command starts work.

argparse only converts ``--workers x`` to an ``int``; whether the number makes sense is decided here,
by the same :class:`~cloudphys.bounds.Bound` table as config values (:mod:`cloudphys.bounds`).
:func:`check_options` runs in :func:`cloudphys.cli.main` after parsing and before the command, so
``--level 1.5``, ``--workers 0`` or ``--symprec nan`` is one ``error: ...`` line, never a traceback
after the work. Every ``int``/``float`` option of a core command has an entry
(``tests/test_reliability_values.py`` checks it).
"""

from __future__ import annotations

import argparse
from typing import Annotated, Any

from ..bounds import Bound, Fraction, Level, Seed, Tolerance, Workers
from ..config.coerce import coerce

__all__ = ["OPTION_BOUNDS", "check_options"]

#: argparse destination -> (how the user wrote it, bounded type). The same name means the same thing
#: in every command (``workers`` is always a process count).
OPTION_BOUNDS: dict[str, tuple[str, Any]] = {
    "workers": ("--workers", Workers),
    "threads": ("--threads", Workers),
    "plot_max": ("--plot-max", Annotated[int, Bound(ge=1, le=10_000, remedy="materials drawn, e.g. 20")]),
    "symprec": ("--symprec", Tolerance),
    "angle_tolerance": ("--angle-tolerance", Annotated[
        float, Bound(ge=0, le=180, remedy="spglib's angle tolerance in degrees, e.g. 5")]),
    "mesh": ("--mesh", Annotated[float, Bound(gt=0, le=1000, remedy="the mesh length in Å, e.g. 40")]),
    "n_atoms": ("--n-atoms", Annotated[int, Bound(ge=1, le=1_000_000, remedy="the atoms of the DOS's cell")]),
    "holdout": ("--holdout", Fraction),
    "seed": ("--seed", Seed),
    "level": ("--level", Level),
    "max_atoms": ("--max-atoms", Annotated[int, Bound(ge=1, le=10_000_000)]),
    "max_item_bytes": ("--max-item-bytes", Annotated[int, Bound(ge=1, le=2**40)]),
    "max_symops": ("--max-symops", Annotated[int, Bound(ge=1, le=1_000_000)]),
    "max_file_atoms": ("--max-file-atoms", Annotated[int, Bound(ge=1, le=10**9)]),
    "item_timeout": ("--item-timeout", Annotated[
        float, Bound(gt=0, le=86_400, remedy="seconds per item, e.g. 60")]),
    "shard_size": ("--shard-size", Annotated[
        int, Bound(ge=1, le=100_000_000, remedy="input items per shard, e.g. 100000")]),
    "max_length": ("--max-length", Annotated[int, Bound(ge=3, le=65_536, remedy="tokens per string, e.g. 256")]),
}


def check_options(args: argparse.Namespace) -> None:
    """Check every option of ``args`` named in :data:`OPTION_BOUNDS` (``None``: not given, passes).

    :raises ConfigError: ``--level must be a finite number > 0 and < 1, got 1.5; ...``.
    """
    for dest, (flag, hint) in OPTION_BOUNDS.items():
        value = getattr(args, dest, None)
        if value is not None and not isinstance(value, (str, bool)):
            coerce(flag, value, hint)
