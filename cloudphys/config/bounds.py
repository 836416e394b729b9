"""Compatibility: the bounds moved to :mod:`cloudphys.bounds` (a bottom layer, so physics and data
can use the bounded types without importing the config package). Everything is re-exported here."""

from __future__ import annotations

from ..bounds import (
    MAX_KELVIN,
    MAX_LOSS_WEIGHT,
    Bound,
    Count,
    Fraction,
    Kelvin,
    Level,
    Seed,
    Tolerance,
    Workers,
    check_bound,
    describe,
    option,
    show,
)

__all__ = [
    "MAX_KELVIN", "MAX_LOSS_WEIGHT", "Bound", "Count", "Fraction", "Kelvin", "Level", "Seed", "Tolerance", "Workers",
    "check_bound", "describe", "option", "show",
]
