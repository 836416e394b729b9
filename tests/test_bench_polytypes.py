"""``benchmarks/bench_polytypes.py``: the floor a polytype family's inconsistent labels put under an MAE."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    from _training_helpers import load_benchmark

    return load_benchmark("bench_polytypes")


def test_floor_is_the_least_error_of_one_shared_curve(bench) -> None:
    rng = np.random.default_rng(0)
    curves = rng.normal(size=(7, 5))
    best = bench.floor(curves)
    # no other shared curve does better (the per-temperature median minimises the summed |error|)
    for _ in range(200):
        other = np.median(curves, axis=0) + rng.normal(scale=0.3, size=5)
        assert np.abs(curves - other).mean(axis=1).sum() >= best - 1e-12
    # consistent labels: no floor; two groups of 3 and 1 at distance d: the minority pays d
    assert bench.floor(np.ones((4, 3))) == 0.0
    two = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [2.0, 2.0]])
    assert bench.floor(two) == pytest.approx(2.0)


def test_families_keep_polytypes_and_leave_other_polymorphs_out(bench) -> None:
    from pymatgen.core import Lattice, Structure

    def row(a: float, i: int) -> dict:
        st = Structure(Lattice.cubic(a), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        return {"formula": "NaCl", "structure": st.as_dict(), "id": f"m{i}"}

    rows = [row(4.0, i) for i in range(5)] + [row(4.3, 9)]  # one polymorph 24 % less dense
    fams = bench.families(rows, min_members=5, tol=0.01)
    assert len(fams) == 1 and [r["id"] for r in fams[0]] == [f"m{i}" for i in range(5)]
    assert bench.families(rows, min_members=6, tol=0.01) == []
