"""parse_temperatures: the one parser of temperature specs (300, 5:1000:5, 10,20,30, lists)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cloudphys.config import MAX_TEMPERATURES, parse_temperatures
from cloudphys.errors import ConfigError


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("300", [300.0]),
        (300, [300.0]),
        (12.5, [12.5]),
        ("10,20,30", [10.0, 20.0, 30.0]),
        (" 10 , 20 ", [10.0, 20.0]),
        ("0:20:5", [0.0, 5.0, 10.0, 15.0, 20.0]),  # stop included
        ("0:21:5", [0.0, 5.0, 10.0, 15.0, 20.0]),  # stop off the grid: not added
        ("3:6", [3.0, 4.0, 5.0, 6.0]),  # step 1 K
        ("10,20:40:10", [10.0, 20.0, 30.0, 40.0]),
        ([1, 2.5], [1.0, 2.5]),
        ((7,), [7.0]),
        (["5:15:5", 300], [5.0, 10.0, 15.0, 300.0]),
        (np.array([4.0, 8.0]), [4.0, 8.0]),
        ("0", [0.0]),
    ],
)
def test_accepted_forms(spec: object, expected: list[float]) -> None:
    got = parse_temperatures(spec)
    assert got.dtype == np.float64 and got.tolist() == pytest.approx(expected)


def test_the_grid_of_the_predict_default_example() -> None:
    t = parse_temperatures("5:1000:5")
    assert len(t) == 200 and t[0] == 5 and t[-1] == 1000


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("5:1000:0", "step of '5:1000:0' must be > 0"),
        ("5:1000:-5", "is not a temperature"),
        ("a:b", "'a' is not a number"),
        ("1000:5:5", "runs down (start 1000 > stop 5)"),
        ("-1", "'-1' is not a temperature (finite and >= 0 K)"),
        ("-5:10", "is not a temperature"),
        ("nan", "is not a temperature"),
        ("inf", "is not a temperature"),
        ("1e400", "is not a temperature"),
        (float("nan"), "is not a temperature"),
        ([300, float("inf")], "inf is not a temperature"),
        ("", "empty"),
        ("  ", "empty"),
        (",", "empty"),
        ("10,,20", "empty"),
        ([], "empty"),
        ("1:2:3:4", "is not start:stop or start:stop:step"),
        (":5", "is not start:stop"),
        ("5:", "is not start:stop"),
        ("300K", "'300K' is not a number"),
        ([True], "True is not a temperature"),
        ([[1, 2]], "is not a temperature"),
        (None, "None is not a temperature"),
        ("0:1e12:1e-3", f"more than the limit of {MAX_TEMPERATURES:_}; use a coarser step"),
        ("0:1e308:1e-308", "above the largest temperature"),  # 1e308 K is inf in float32 (issue 22)
        ("0:1e18:1e-3", "more than the limit"),
        ("0:100000", "more than the limit"),
    ],
)
def test_malformed_specs_name_the_spec_and_the_reason(spec: object, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_temperatures(spec)
    msg = str(info.value)
    assert needle in msg and msg.startswith("temperatures ") and "\n" not in msg, msg


def test_the_limit_counts_every_piece_and_can_be_raised() -> None:
    with pytest.raises(ConfigError, match="more than the limit of 10"):
        parse_temperatures("1:6,10:15", limit=10)
    assert len(parse_temperatures("0:99999")) == MAX_TEMPERATURES
    assert len(parse_temperatures("0:200000", limit=200_001)) == 200_001
    big = list(range(MAX_TEMPERATURES + 1))
    with pytest.raises(ConfigError, match=r"temperatures \[0, 1, 2.*\.\.\..*: 100_001 points") as info:
        parse_temperatures(big)
    assert len(str(info.value)) < 300  # the spec is shortened in the message


kelvin = st.floats(0, 1e5, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(kelvin, st.floats(0, 1e4), st.floats(1e-2, 1e4))
@example(0.0, 1.0, 0.1)  # 0.1 steps: float round-off must not drop the stop
@example(5.0, 995.0, 5.0)
def test_grids_hold_start_step_and_stop(start: float, length: float, step: float) -> None:
    stop = start + length
    spec = f"{start!r}:{stop!r}:{step!r}"
    n_exact = length / step
    if n_exact + 1 > MAX_TEMPERATURES:
        with pytest.raises(ConfigError, match="more than the limit"):
            parse_temperatures(spec)
        return
    t = parse_temperatures(spec)
    assert t[0] == start and np.all(np.diff(t) > 0)
    assert np.allclose(np.diff(t), step, rtol=1e-9, atol=1e-9 * max(stop, 1.0))
    assert t[-1] <= stop * (1 + 1e-9) + 1e-9 and stop - t[-1] < step * (1 + 1e-9)
    assert len(t) in (math.floor(n_exact) + 1, math.floor(n_exact) + 2, math.floor(n_exact))


@settings(max_examples=200, deadline=None)
@given(st.lists(kelvin, min_size=1, max_size=20))
def test_comma_lists_and_python_lists_agree(values: list[float]) -> None:
    text = ",".join(repr(v) for v in values)
    assert parse_temperatures(text).tolist() == values == parse_temperatures(values).tolist()


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet="0123456789.:,-+e naif", max_size=16)
       | st.lists(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=6), max_size=4))
def test_any_spec_gives_kelvin_or_a_config_error(spec: object) -> None:
    try:
        t = parse_temperatures(spec)
    except ConfigError as exc:
        assert "\n" not in str(exc)
        return
    assert t.ndim == 1 and 0 < t.size <= MAX_TEMPERATURES
    assert np.all(np.isfinite(t)) and np.all(t >= 0)
