"""Per-item limits of the input path: how big and how slow one input may be.

Every input (one file, one CSV row, one JSON line, one frame of a trajectory) is held to these
bounds, so one hostile or broken item ends as an error row naming the limit instead of taking the
batch's memory or time. The defaults are far above any crystal in the shipped data sets (the
largest phonondb cell has 80 atoms, the largest CLOUD cell 444); raise them with
``Limits(max_atoms=...)`` or ``cloudphys scope --max-atoms N --max-item-bytes N --max-symops N
--item-timeout S``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from ..errors import ConfigError, StructureError

__all__ = ["DEFAULT_LIMITS", "InputLimitError", "Limits", "as_limits", "file_total_error"]


class InputLimitError(StructureError):
    """An input exceeds a per-item limit of :class:`Limits` (the message names it and the flag)."""


@dataclass(frozen=True)
class Limits:
    """Bounds on one input item.

    :param max_bytes: characters of one item's text after decompression (a structure file, a CSV
        row, a JSON line; bytes for binary ``.traj`` files). Default 32 MiB.
    :param max_atoms: atoms in one structure (after a CIF's symmetry expansion), and the largest
        ``n_atoms`` a row may declare. Default 5000.
    :param max_symops: symmetry operations listed in one CIF block (a space group has at most 192).
        Default 1000.
    :param max_file_atoms: atoms of all the items of one file together (frames of a trajectory, rows
        of an ASE database, frames of an extxyz file): a file whose index repeats its data (an ASE JSON
        listing one row id a million times, a ``.traj`` whose frame offsets all point at one frame)
        cannot expand a small file into millions of atoms. Default 1,000,000; the items past it are
        one error row naming them.
    :param max_seconds: wall-clock seconds to read and convert one structure; ``None`` (default):
        no watchdog -- the size limits above bound the work. When set, conversion runs in worker
        processes and an item still running after ``max_seconds`` is stopped and reported.
    """

    max_bytes: int = 32 * 1024 * 1024
    max_atoms: int = 5000
    max_symops: int = 1000
    max_file_atoms: int = 1_000_000
    max_seconds: float | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name == "max_seconds":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ConfigError(f"{_FLAGS[f.name]} / Limits.{f.name} must be a positive number, got {v!r}")
            if f.name != "max_seconds" and v != int(v):
                raise ConfigError(f"{_FLAGS[f.name]} / Limits.{f.name} must be a whole number, got {v!r}")

    def with_(self, **changes: Any) -> Limits:
        """A copy with ``changes`` applied (``None`` values are ignored)."""
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    def too_big(self, what: str, size: int, limit_name: str) -> InputLimitError:
        """The error for ``what`` of ``size`` over the limit ``limit_name``."""
        flag = _FLAGS[limit_name]
        return InputLimitError(
            f"{what} is {size:,} but the limit is {getattr(self, limit_name):,} ({limit_name}; raise it with "
            f"{flag} or Limits({limit_name}=...))"
        )


def file_total_error(limits: Limits, rest: str, total: int) -> InputLimitError:
    """The one error item for the items ``rest`` of a file (e.g. ``"frames 7-99 of 100"``) that are not
    read because the file's atoms would reach ``total``, over ``limits.max_file_atoms``."""
    return InputLimitError(f"{rest} are not read: the file's atoms would be {total:,} but the limit is "
                           f"{limits.max_file_atoms:,} for one file (max_file_atoms; raise it with --max-file-atoms "
                           "or Limits(max_file_atoms=...))")


_FLAGS = {"max_bytes": "--max-item-bytes", "max_atoms": "--max-atoms", "max_symops": "--max-symops",
          "max_file_atoms": "--max-file-atoms", "max_seconds": "--item-timeout"}

DEFAULT_LIMITS = Limits()


def as_limits(limits: Limits | dict[str, Any] | None) -> Limits:
    """``None`` → the defaults; a mapping → :class:`Limits` with those fields overridden."""
    if limits is None:
        return DEFAULT_LIMITS
    if isinstance(limits, Limits):
        return limits
    if isinstance(limits, dict):
        unknown = set(limits) - {f.name for f in fields(Limits)}
        if unknown:
            raise ConfigError(f"unknown limit(s) {', '.join(sorted(unknown))}; known: "
                             f"{', '.join(f.name for f in fields(Limits))}")
        return DEFAULT_LIMITS.with_(**limits)
    raise ConfigError(f"limits must be a Limits, a dict or None, got {type(limits).__name__}")


def add_limit_options(parser: Any) -> None:
    """Add ``--max-atoms``, ``--max-item-bytes``, ``--max-symops``, ``--max-file-atoms`` and ``--item-timeout`` to an
    ``argparse`` parser (the same flags on every command that reads inputs)."""
    d = DEFAULT_LIMITS
    parser.add_argument("--max-atoms", type=int, default=None, metavar="N",
                        help=f"atoms one structure may have (default {d.max_atoms}); larger ones are error rows")
    parser.add_argument("--max-item-bytes", type=int, default=None, metavar="N",
                        help="characters one item (file, CSV row, JSON line) may have after decompression "
                             f"(default {d.max_bytes})")
    parser.add_argument("--max-symops", type=int, default=None, metavar="N",
                        help=f"symmetry operations one CIF block may list (default {d.max_symops})")
    parser.add_argument("--max-file-atoms", type=int, default=None, metavar="N",
                        help=f"atoms all the frames/rows of one file may have together (default {d.max_file_atoms})")
    parser.add_argument("--item-timeout", type=float, default=None, metavar="SECONDS",
                        help="stop converting an item after SECONDS (conversion then runs in worker processes; "
                             "default: no timeout, the size limits bound the work)")


def limits_from_options(args: Any) -> Limits:
    """The :class:`Limits` of parsed :func:`add_limit_options` flags (defaults where not given)."""
    return DEFAULT_LIMITS.with_(max_atoms=getattr(args, "max_atoms", None),
                                max_bytes=getattr(args, "max_item_bytes", None),
                                max_symops=getattr(args, "max_symops", None),
                                max_file_atoms=getattr(args, "max_file_atoms", None),
                                max_seconds=getattr(args, "item_timeout", None))
