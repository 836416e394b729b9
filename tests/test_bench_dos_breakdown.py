"""``benchmarks/bench_dos.py``'s breakdown of an MAE by formula (issue 20: where the test error sits)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench():
    from _training_helpers import load_benchmark

    return load_benchmark("bench_dos")


def test_every_formula_weighs_once_and_the_shares_sum_the_mae(bench) -> None:
    formulas = ["ZnS", "ZnS", "ZnS", "MgO", "NaCl"]
    err = np.array([2.0, 2.0, 2.0, 1.0, 0.0])
    out = bench.formula_breakdown(formulas, {"s": err}, top=5)
    assert out["formulas"] == 3
    # over materials the MAE is 7/5 = 1.4; with each formula once (2 + 1 + 0) / 3 = 1
    assert out["balanced"]["s"] == pytest.approx(1.0)
    largest = out["largest"]["s"]
    assert [row[0] for row in largest] == ["ZnS", "MgO", "NaCl"]
    assert [row[1] for row in largest] == [3, 1, 1]
    assert [row[2] for row in largest] == pytest.approx([6 / 7, 1 / 7, 0.0])
    assert sum(row[2] for row in largest) == pytest.approx(1.0)


def test_one_material_per_formula_gives_the_plain_mae(bench) -> None:
    rng = np.random.default_rng(0)
    err = rng.random(40)
    out = bench.formula_breakdown([f"X{i}" for i in range(40)], {"cv": err, "u": 10 * err}, top=3)
    assert out["balanced"]["cv"] == pytest.approx(err.mean())
    assert out["balanced"]["u"] == pytest.approx(10 * err.mean())
    assert len(out["largest"]["cv"]) == 3
    assert out["largest"]["cv"][0][2] == pytest.approx(err.max() / err.sum())


def test_mismatched_lengths_are_refused_with_the_measure_named(bench) -> None:
    with pytest.raises(ValueError, match="cv: 2 errors for 3 formulas"):
        bench.formula_breakdown(["A", "B", "C"], {"cv": np.zeros(2)})
