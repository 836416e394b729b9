"""Temperature specs → arrays of kelvin: ``300``, ``5:1000:5``, ``10,20,30``, lists.

:func:`parse_temperatures` is the one parser used by ``cloudphys predict -T``, the Python API and
anything else that takes a temperature grid from a user. A grid is bounded
(:data:`MAX_TEMPERATURES` points) so that a typo such as ``0:1e12:1e-3`` is refused at once
instead of allocating gigabytes.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from typing import Any

import numpy as np

from ..bounds import MAX_KELVIN
from ..errors import ConfigError

__all__ = ["MAX_TEMPERATURES", "parse_temperatures"]

#: The most temperatures one request may hold (a 1 K grid from 0 to 100 000 K).
MAX_TEMPERATURES = 100_000

_FORMS = "a number (300), start:stop[:step] in K (5:1000:5, stop included) or a comma list (10,20,30)"


def _show(spec: Any) -> str:
    """``repr(spec)``, shortened to about 60 characters (a list of a million items stays one line)."""
    text = repr(spec.tolist() if isinstance(spec, np.ndarray) else spec)
    return text if len(text) <= 60 else f"{text[:45]}...{text[-10:]}"


def _kelvin(spec: Any, item: Any) -> float:
    """One temperature (K): a real number or a string that reads as one, finite and >= 0."""
    if isinstance(item, bool) or not isinstance(item, (numbers.Real, str)):
        raise ConfigError(f"temperatures {_show(spec)}: {_show(item)} is not a temperature; give {_FORMS}")
    try:
        t = float(item.strip() if isinstance(item, str) else item)
    except (ValueError, OverflowError):
        raise ConfigError(f"temperatures {_show(spec)}: {_show(item)} is not a number; give {_FORMS}") from None
    if not math.isfinite(t) or t < 0:
        raise ConfigError(f"temperatures {_show(spec)}: {_show(item)} is not a temperature (finite and >= 0 K)")
    if t > MAX_KELVIN:  # finite here, but inf in the float32 the models compute in
        raise ConfigError(f"temperatures {_show(spec)}: {_show(item)} is above the largest temperature models "
                          f"accept ({MAX_KELVIN:.4g} K, the float32 limit of the physics heads)")
    return t


def _grid(spec: Any, text: str, limit: int) -> np.ndarray:
    parts = text.split(":")
    if len(parts) not in (2, 3) or not all(p.strip() for p in parts):
        raise ConfigError(f"temperatures {_show(spec)}: {text!r} is not start:stop or start:stop:step")
    start, stop = _kelvin(spec, parts[0]), _kelvin(spec, parts[1])
    step = _kelvin(spec, parts[2]) if len(parts) == 3 else 1.0
    if step <= 0:
        raise ConfigError(f"temperatures {_show(spec)}: the step of {text!r} must be > 0 K")
    if stop < start:
        raise ConfigError(
            f"temperatures {_show(spec)}: {text!r} runs down (start {start:g} > stop {stop:g}); write start:stop:step"
        )
    span = (stop - start) / step
    if not span < limit:  # also catches inf (1e308 / 1e-308)
        raise ConfigError(
            f"temperatures {_show(spec)}: {text!r} has {_count(span)} points, more than the limit of {limit:_}; "
            "use a coarser step or a shorter range"
        )
    n = math.floor(span * (1 + 1e-12) + 1e-9) + 1  # stop included when it lies on the grid
    grid = start + step * np.arange(n, dtype=np.float64)
    grid[-1] = min(grid[-1], stop)  # round-off never steps past stop
    return grid


def _count(span: float) -> str:
    return f"{int(span) + 1:_}" if math.isfinite(span) and span < 1e18 else f"about {span:.3g}"


def parse_temperatures(spec: Any, *, limit: int = MAX_TEMPERATURES) -> np.ndarray:
    """Temperatures in K (float64, in the order given) from a user's spec.

    :param spec: ``300`` or ``"300"``; ``"start:stop[:step]"`` (stop included when on the grid,
        step 1 K by default); ``"10,20,30"`` (items may be ranges: ``"10,20:100:10"``); a list,
        tuple or array of numbers.
    :param limit: the most temperatures accepted (default :data:`MAX_TEMPERATURES`).
    :raises ConfigError: an empty, malformed, negative, NaN/inf or oversized spec; the message
        names the spec and says what to write.
    """
    if isinstance(spec, np.ndarray):
        spec_items: Iterable[Any] = spec.reshape(-1).tolist() if spec.ndim <= 1 else [spec]
        out = [np.asarray([_kelvin(spec, t) for t in spec_items])]
    elif isinstance(spec, str):
        pieces = [p.strip() for p in spec.split(",")]
        if not spec.strip() or (len(pieces) > 1 and not all(pieces)):
            raise ConfigError(f"temperatures {_show(spec)}: empty; give {_FORMS}")
        out = [_grid(spec, p, limit) if ":" in p else np.asarray([_kelvin(spec, p)]) for p in pieces]
    elif isinstance(spec, (list, tuple)):
        # items are numbers or specs of their own ("5:100:5"), each counted against the limit
        out = [parse_temperatures(t, limit=limit) if isinstance(t, str) else np.asarray([_kelvin(spec, t)])
               for t in spec]
    else:
        out = [np.asarray([_kelvin(spec, spec)])]
    arr = np.concatenate(out).astype(np.float64) if out else np.zeros(0)
    if arr.size == 0:
        raise ConfigError(f"temperatures {_show(spec)}: empty; give {_FORMS}")
    if arr.size > limit:
        raise ConfigError(f"temperatures {_show(spec)}: {arr.size:_} points, more than the limit of {limit:_}; "
                          "use a coarser step or a shorter range")
    return arr + 0.0  # -0.0 -> 0.0
