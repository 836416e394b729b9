"""The block writer of ``Prediction.write_csv`` (issue 22 §5) against the cell-by-cell writer it
replaced: byte-identical text on random tables -- NaN, inf, signed zeros, tiny/huge values, ids with
commas, quotes, newlines, surrogates and formula prefixes, failed inputs, symmetry warnings -- and
:func:`cloudphys.numtext.g8_strings` equal to Python's ``f"{x:.8g}"`` for every float."""

from __future__ import annotations

import csv
import io
import math
import struct
from dataclasses import replace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import cloudphys.inference.result as result
from cloudphys.inference.result import ItemInfo, Prediction, _cell, quantities_from_head
from cloudphys.numtext import g8_strings
from cloudphys.outputs import text_cell


def _reference_write_table(p: Prediction, fh: Any, obs: list[str], spreadsheet_safe: bool) -> None:
    """The writer before the block writer (commit 886803c) reduced to its cell-by-cell path (its
    %-format fast path gives the same text): the simplest statement of the format, as the reference."""
    g8 = "{:.8g}".format
    cols = p.columns(obs)
    w = csv.writer(fh)
    w.writerow(cols)
    per_t, per_item = p._numbers(obs)
    T = p.temperatures
    n_commas = len(cols) - 5
    buf = io.StringIO()
    quote = csv.writer(buf)
    stack = np.stack(per_t, axis=-1) if per_t else np.zeros((len(p.items), len(T), 0))
    items_lat = np.stack(per_item, axis=-1) if per_item else np.zeros((len(p.items), 0))
    for i, it in enumerate(p.items):
        buf.seek(0)
        buf.truncate()
        quote.writerow([text_cell(it.name, spreadsheet_safe), text_cell(it.source, spreadsheet_safe),
                        text_cell(it.scope, spreadsheet_safe), _cell(it.n_atoms)])
        prefix = buf.getvalue()[:-2]
        if it.error is not None:
            buf.seek(0)
            buf.truncate()
            quote.writerow([text_cell(it.error, spreadsheet_safe), text_cell(it.symmetry_warning, spreadsheet_safe)])
            fh.write(prefix + "," * n_commas + buf.getvalue())
            continue
        warn = ""
        if it.symmetry_warning:
            buf.seek(0)
            buf.truncate()
            quote.writerow([text_cell(it.symmetry_warning, spreadsheet_safe)])
            warn = buf.getvalue()[:-2]
        tail = "".join("," + ("" if math.isnan(v) else g8(v)) for v in items_lat[i].tolist()) + ",," + warn + "\r\n"
        block = np.concatenate([T[:, None], stack[i]], axis=1)
        fh.write("".join(prefix + "".join("," + ("" if math.isnan(v) else g8(v)) for v in row) + tail
                         for row in block.tolist()))


_EDGE = [0.0, -0.0, math.inf, -math.inf, math.nan, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
         1e-300, 1e300, 1e-290, 1e290, 1e8, 99999999.5, 99999998.5, 9999999.5, 0.5, 1.5, 2.5, 1e-4, 1e-5,
         9.9999999e-5, 9.99999995e-5, 0.00099999999, 123456785.0, 0.1, 0.3, 1e100, 1e-100, 1.25e-99, 1200000.0,
         12345678.0, 123456789.0, 1e7, 999.99999949999, 1234.5678500000001, -273.15]


def test_g8_strings_edges_and_random_bits() -> None:
    rng = np.random.default_rng(7)
    bits = np.frombuffer(rng.bytes(8 * 20_000), dtype=np.float64)
    scaled = rng.normal(size=20_000) * 10.0 ** rng.integers(-15, 15, 20_000)
    ties = rng.integers(1, 10**6, 20_000) / 2.0 ** rng.integers(1, 8, 20_000)  # exact binary ties
    x = np.concatenate([np.array(_EDGE), -np.array(_EDGE), bits, scaled, ties, 10.0 ** np.arange(-320, 309)])
    want = ["" if math.isnan(v) else f"{v:.8g}" for v in x.tolist()]
    assert g8_strings(x) == want


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True) | st.integers(0, 2**64 - 1).map(
    lambda b: struct.unpack("<d", struct.pack("<Q", b))[0]), min_size=1, max_size=50))
@example([99999999.5, 0.00012345678, -1e-5, 5e-324])
def test_g8_strings_is_python_format(values: list[float]) -> None:
    x = np.asarray(values, dtype=np.float64)
    assert g8_strings(x) == ["" if math.isnan(v) else f"{v:.8g}" for v in x.tolist()]


_TEXT = st.text(alphabet=st.sampled_from(list('ab,"\n\r\t=+-@ é\ud800\x00;')), max_size=8)
_FLOAT = st.floats(allow_nan=True, allow_infinity=True, width=64) | st.sampled_from(_EDGE)


@st.composite
def _tables(draw: Any) -> Prediction:
    from cloudphys.physics.debye import DebyeHead

    head = DebyeHead()
    n = draw(st.integers(1, 6))
    nT = draw(st.integers(0, 5))
    ensemble = draw(st.booleans())
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    special = draw(st.lists(_FLOAT, min_size=1, max_size=20))

    def arr(shape: tuple[int, ...]) -> np.ndarray:
        a = rng.normal(size=shape) * 10.0 ** rng.integers(-6, 9, size=shape)
        flat = a.reshape(-1)
        for v in special:
            if flat.size and rng.random() < 0.5:
                flat[rng.integers(flat.size)] = v
        return a

    obs = {k: arr((n, nT)) for k in ("u", "cv", "s", "f")}
    lat = {"theta_D": arr((n,))}
    items = []
    for _k in range(n):
        n_atoms = draw(st.sampled_from([None, 1.0, 3.0, 0.5, 1e-7]))
        err = draw(st.none() | _TEXT)
        warn = draw(st.none() | _TEXT)
        items.append(ItemInfo(draw(_TEXT), draw(_TEXT), draw(_TEXT), n_atoms, err, warn))
    std = {k: np.abs(arr(v.shape)) for k, v in {**obs, **lat}.items()} if ensemble else None
    return Prediction(np.sort(np.abs(arr((nT,)))), items, obs, quantities_from_head(head), lat, member_std=std,
                      scale=1.5, calibration={"scale": 1.5, "fitted_on": "val"} if ensemble else None,
                      model="m", head="debye", members=3 if ensemble else 1)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_tables(), st.booleans())
def test_block_writer_is_byte_identical_to_the_cell_writer(p: Prediction, safe: bool) -> None:
    obs = list(p.observables)
    new, old = io.StringIO(), io.StringIO()
    result._write_table(p, new, obs, safe)
    _reference_write_table(p, old, obs, safe)
    assert new.getvalue() == old.getvalue()


@pytest.mark.parametrize("block", [1, 7, 1 << 19])
def test_block_boundaries_do_not_change_the_text(monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    """Blocks of one item, of a few, and the default give the same file (items never split)."""
    from cloudphys.physics.debye import DebyeHead

    head = DebyeHead()
    n, T = 23, np.linspace(0.0, 1000.0, 13)
    theta = np.linspace(100.0, 900.0, n)
    import torch

    with torch.no_grad():
        obs = {k: v.numpy() for k, v in head(latents={"theta_D": torch.tensor(theta)},
                                             temperature=torch.tensor(T).expand(n, -1),
                                             n_atoms=torch.ones(n, dtype=torch.float64)).items()}
    items = [ItemInfo(f"=m{k}", f"m{k}.cif", "P 1 | 1a | Si 1", 2.0) for k in range(n)]
    items[4] = replace(items[4], error="cannot read, \"m4\"")
    p = Prediction(T, items, obs, quantities_from_head(head), {"theta_D": theta}, model="m", head="debye")
    ref = io.StringIO()
    _reference_write_table(p, ref, list(p.observables), True)
    monkeypatch.setattr(result, "_BLOCK_CELLS", block)
    out = io.StringIO()
    p.write_csv(out)
    assert out.getvalue() == ref.getvalue()
    assert out.getvalue().count("\r\n") == 1 + (n - 1) * len(T) + 1
