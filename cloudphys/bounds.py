"""Bounds of config values and plugin parameters, declared next to each field and checked by one function.

A :class:`Bound` sits in a dataclass field's metadata (``field(metadata={"bound": Bound(...)})``,
see :func:`option`) or in a plugin parameter's annotation (``Annotated[int, Bound(ge=1)]``), so
the table of what is allowed is the schema itself. :func:`check_bound` turns a violation into a
one-line :class:`~cloudphys.errors.ConfigError` naming the key, the value and the remedy.

A bottom-layer module (it imports only :mod:`cloudphys.errors`): physics heads and data sets
annotate their parameters with the bounded types below without importing the config package.
:mod:`cloudphys.config.bounds` re-exports everything here.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from .errors import ConfigError

__all__ = [
    "ANGLE_TOLERANCE", "MAX_KELVIN", "MAX_LOSS_WEIGHT", "SYMPREC", "Bound", "Count", "Fraction", "Kelvin", "Level",
    "Seed", "Tolerance", "Workers", "check_bound", "describe", "option", "show",
]

#: The largest temperature (K) anything accepts: 2**63, the largest temperature physics heads accept
#: in float32 (:func:`cloudphys.physics.contract.temperature_limit`), where models compute. A finite
#: float64 such as ``1e300`` would become ``inf`` in float32 and fail after the work.
MAX_KELVIN = 2.0**63

#: The largest weight of one term of a training loss (``train.loss_weights``, ``train.dos_smoothness``):
#: weight x loss must stay finite in float32 (3.4e38), so with this bound a loss term up to 3e32 is safe.
MAX_LOSS_WEIGHT = 1e6


@dataclass(frozen=True)
class Bound:
    """What a number or string may be. ``None`` (a field left at ``null``) always passes.

    :param ge, gt, le, lt: inclusive / exclusive limits of a number (NaN and ±inf never pass).
    :param pattern: a regular expression a string must match in full.
    :param divides: name of a sibling key whose value this value must divide
        (``num_heads`` divides ``hidden_size``).
    :param remedy: what to write instead (appended to the message).
    """

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    pattern: str | None = None
    divides: str | None = None
    remedy: str = ""

    def text(self) -> str:
        """The allowed range in words, e.g. ``>= 1 and <= 1_000``."""
        parts = []
        for op, x in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt)):
            if x is not None:
                parts.append(f"{op} {_num(x)}")
        if self.pattern:
            parts.append(f"matching {self.pattern}")
        if self.divides:
            parts.append(f"dividing {self.divides}")
        return " and ".join(parts)


def show(value: Any, width: int = 60) -> str:
    """``repr(value)`` shortened to about ``width`` characters (messages stay one readable line)."""
    text = repr(value)
    return text if len(text) <= width else f"{text[: width - 15]}...{text[-10:]}"


def _num(x: float) -> str:
    if abs(x) >= 1e15:  # MAX_KELVIN = 2**63: 9.22e+18, not nineteen digits
        return f"{x:.3g}"
    return f"{int(x):_}" if float(x).is_integer() and abs(x) >= 1e4 else f"{x:g}"


def option(default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING, **bound: Any) -> Any:
    """A dataclass field with a default (or ``factory``) and a :class:`Bound` in its metadata."""
    meta = {"bound": Bound(**bound)} if bound else {}
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def check_bound(what: str, value: Any, bound: Bound | None, siblings: Mapping[str, Any] | None = None) -> None:
    """Raise :class:`ConfigError` if ``value`` (of key ``what``) violates ``bound``.

    :param siblings: the other values of the same section (for ``divides``).
    """
    if bound is None or value is None:
        return
    if isinstance(value, Mapping):  # a mapping's values each obey the bound (``train.loss_weights``)
        for key, item in value.items():
            check_bound(f"{what}[{key!r}]", item, bound, siblings)
        return
    tail = f"; {bound.remedy}" if bound.remedy else ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        noun = "an integer" if isinstance(value, int) else "a finite number"
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{what} must be {noun} {bound.text()}, got {show(value)}{tail}")
        ok = (
            (bound.ge is None or value >= bound.ge)
            and (bound.gt is None or value > bound.gt)
            and (bound.le is None or value <= bound.le)
            and (bound.lt is None or value < bound.lt)
        )
        if not ok:
            raise ConfigError(f"{what} must be {noun} {bound.text()}, got {show(value)}{tail}")
        if bound.divides and siblings is not None:
            other = siblings.get(bound.divides)
            if isinstance(other, int) and not isinstance(other, bool) and value > 0 and other % value:
                section, _, name = what.rpartition(".")
                prefix = f"{section}." if section else ""
                fits = [d for d in range(1, min(other, 64) + 1) if other % d == 0]
                raise ConfigError(
                    f"{prefix}{bound.divides}={other} is not a multiple of {what}={value}; choose {name} dividing "
                    f"{bound.divides} (e.g. {', '.join(map(str, fits[-3:]))}) or another {bound.divides}"
                )
    if isinstance(value, str) and bound.pattern and not re.fullmatch(bound.pattern, value):
        raise ConfigError(f"{what}: unknown value {show(value)}{tail or f'; must match {bound.pattern}'}")


def describe(bound: Bound | None) -> str:
    """The bound in words (for docs and listings; empty for none)."""
    return bound.text() if bound else ""


# -- bounded types for plugin signatures (``seed: Seed = 0``) -------------------------------------
#: A random seed (numpy and torch accept 0 .. 2**32 - 1).
Seed = Annotated[int, Bound(ge=0, le=2**32 - 1, remedy="seeds are integers from 0 to 2**32 - 1")]
#: A fraction of the data, e.g. a validation share.
Fraction = Annotated[float, Bound(ge=0, lt=1, remedy="a fraction such as 0.1")]
#: A temperature in K.
Kelvin = Annotated[float, Bound(ge=0, le=MAX_KELVIN, remedy="temperatures are in K, >= 0 and finite in float32")]
#: A probability level of a central interval, e.g. 0.9 (``models calibrate --level``).
Level = Annotated[float, Bound(gt=0, lt=1, remedy="a coverage level such as 0.9")]
#: A number of worker processes.
Workers = Annotated[int, Bound(ge=1, le=4096, remedy="give a positive number of processes")]
#: A positive count (of items, materials, ...).
Count = Annotated[int, Bound(ge=1, remedy="give a positive number or null for all")]
#: A distance tolerance in Å (spglib's symprec).
Tolerance = Annotated[float, Bound(gt=0, le=1, remedy="a distance tolerance in Å, e.g. 0.01")]

#: spglib's distance tolerance of a conversion: a number of Å, or ``"auto"`` (the published 0.01 Å for
#: exact structures, looser for noisy ones; :mod:`cloudphys.scope.symmetry`).
SYMPREC = Bound(gt=0, le=1, pattern="auto",
                remedy='give a distance tolerance in Å, e.g. 0.01 (the published converter), or "auto"')
#: spglib's angle tolerance in degrees.
ANGLE_TOLERANCE = Bound(gt=0, le=30, remedy="give an angle tolerance in degrees, e.g. 5 (pymatgen's default)")
