"""benchmarks/bench_scaling.py (issue 24 §3): the table, the fits and the docs' copy of the results.

Nothing is trained here: the rows are synthetic or read from ``benchmarks/results/scaling.jsonl``.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _bench() -> ModuleType:
    from _training_helpers import load_benchmark

    return load_benchmark("bench_scaling")


def _row(n: int, hidden: int, **extra) -> dict:
    row = {"n_label": str(n), "n": n, "hidden": hidden, "cv_test_mae": 4.5, "cv_test_mae_over_mad": 0.08,
           "finetune_seconds": 10.0, "load": "1.00 1.00 1.00", "grid": "steps=300"}
    if n:
        row.update(pretrain_steps=300, epochs_seen=300 * 64 / n, pretrain_seconds=5.0)
    row.update(extra)
    return row


def test_fits_recover_a_power_law_per_hidden_size():
    b = _bench()
    rows = [_row(n, h, mlm_val_loss=3.0 * n ** -0.2 * (h / 128) ** -0.5, pdb_cv_test_mae_per_atom=0.5)
            for h in (64, 128) for n in (1000, 3000, 10000)]
    rows += [_row(0, 64), _row(1000, 256, mlm_val_loss=2.0)]  # no-pretraining rows and too-few points: no fit
    fits = b.fits(rows)
    a, slope, lo, hi = fits[("mlm_val_loss", 128)]
    assert a == pytest.approx(3.0, rel=1e-9) and slope == pytest.approx(0.2, rel=1e-9) and (lo, hi) == (1000, 10000)
    assert fits[("mlm_val_loss", 64)][0] == pytest.approx(3.0 * 2 ** 0.5, rel=1e-9)
    assert fits[("pdb_cv_test_mae_per_atom", 128)][1] == pytest.approx(0.0, abs=1e-12)
    assert not any(h == 256 for _, h in fits)


def test_table_keeps_every_row_and_marks_missing_metrics_empty():
    b = _bench()
    rows = [_row(10000, 128, mlm_val_loss=2.0, seed=1), _row(0, 64), _row(10000, 128, mlm_val_loss=2.5)]
    lines = b.table(rows)
    assert len(lines) == 2 + len(rows)
    assert lines[2].startswith("| 0 | 64 | 0 | none |  |")        # sorted by hidden, N, seed; no MLM loss
    assert "| 10,000 | 128 | 0 | 300 (1.9) | 2.500 |" in lines[3]   # no seed field: seed 0
    assert "| 10,000 | 128 | 1 | 300 (1.9) | 2.000 |" in lines[4]


def test_aggregate_gives_mean_and_sample_sd_over_seeds():
    b = _bench()
    rows = [_row(10000, 128, cv_test_mae_over_mad=0.08, mlm_val_loss=1.0),          # no seed field: seed 0
            _row(10000, 128, cv_test_mae_over_mad=0.09, mlm_val_loss=2.0, seed=2),
            _row(10000, 128, cv_test_mae_over_mad=0.10, mlm_val_loss=4.0, seed=1),
            _row(0, 128, cv_test_mae_over_mad=0.07)]
    pts = b.aggregate(rows)
    assert [(p["n"], p["seeds"]) for p in pts] == [(0, [0]), (10000, [0, 1, 2])]
    one, three = pts
    assert three["cv_test_mae_over_mad"] == pytest.approx(0.09, rel=1e-12)
    assert three["cv_test_mae_over_mad_sd"] == pytest.approx(0.01, rel=1e-9)       # ddof = 1
    assert three["mlm_val_loss"] == pytest.approx(7 / 3, rel=1e-12)
    assert three["mlm_val_loss_sd"] == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1), rel=1e-12)
    assert one["cv_test_mae_over_mad_sd"] is None and one["mlm_val_loss"] is None  # one seed; no pretraining
    lines = b.summary_table(rows)
    assert lines[2] == "| 0 | 128 | 1 (0) |  | 4.50 | 0.070 |  |"
    assert lines[3] == "| 10,000 | 128 | 3 (0, 1, 2) | 2.333 ± 1.528 | 4.50 ± 0.00 | 0.090 ± 0.010 |  |"
    with pytest.raises(ValueError, match="hidden 128, N 0 has seed"):
        b.aggregate(rows + [_row(0, 128, seed=0)])


def test_fits_use_the_mean_over_seeds():
    b = _bench()
    rows = [_row(n, 64, mlm_val_loss=3.0 * n ** -0.2 * f, seed=s)
            for n in (1000, 3000, 10000) for s, f in ((0, 0.5), (1, 1.5))]   # means: 3 N^-0.2 exactly
    a, slope, lo, hi = b.fits(rows)[("mlm_val_loss", 64)]
    assert a == pytest.approx(3.0, rel=1e-9) and slope == pytest.approx(0.2, rel=1e-9) and (lo, hi) == (1000, 10000)


def test_spread_compares_seed_noise_with_the_differences_between_n():
    b = _bench()
    rows = [_row(1000, 128, cv_test_mae_over_mad=v, seed=s) for s, v in enumerate((0.08, 0.10))]
    rows += [_row(10000, 128, cv_test_mae_over_mad=v, seed=s) for s, v in enumerate((0.12, 0.14))]
    rows += [_row(30000, 128, cv_test_mae_over_mad=0.5)]                     # one seed: not in the spread
    sp = b.spread(rows)[("cv_test_mae_over_mad", 128)]
    sd = np.std([0.08, 0.10], ddof=1)
    assert sp["pooled_sd"] == pytest.approx(sd, rel=1e-9) and sp["k"] == 2 and sp["points"] == [1000, 10000]
    assert sp["max_diff"] == pytest.approx(0.04, rel=1e-9)
    assert sp["ratio"] == pytest.approx(0.04 / sd, rel=1e-9)                 # sd of a 2-seed difference = sd
    assert ("mlm_val_loss", 128) not in b.spread(rows)                       # no such metric in the rows
    from scipy.stats import f_oneway

    ref = f_oneway([0.08, 0.10], [0.12, 0.14])
    assert sp["F"] == pytest.approx(ref.statistic, rel=1e-9) and sp["p"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert sp["F"] == pytest.approx(8.0, rel=1e-9)    # between 2 * 2 * 0.02**2 / 1, within 4 * 0.01**2 / 2
    assert sp["p_pretrained"] is None                                         # no N = 0 point to leave out


def test_pending_skips_a_point_only_for_the_same_grid_n_hidden_and_seed():
    b = _bench()
    rows = [_row(1000, 128), _row(0, 128, seed=1), {**_row(1000, 64), "grid": "steps=3000"}]
    pts = ["0:128", "1000:128", "1000:64"]
    assert b.pending(pts, rows, 300, 0) == [("0", 128), ("1000", 64)]     # 1000:128 seed 0 (no seed field) done
    assert b.pending(pts, rows, 300, 1) == [("1000", 128), ("1000", 64)]
    assert b.pending(pts, rows, 3000, 0) == [("0", 128), ("1000", 128)]
    with pytest.raises(ValueError, match="'1000-128'"):
        b.pending(["1000-128"], rows, 300, 0)


def test_rows_without_a_grid_are_the_earlier_step_rule():
    b = _bench()
    assert b._grid({"n": 1000}) == b.OLD_GRID == b.grid_label(None)
    assert b.grid_label(300) == "steps=300"


def test_docs_state_the_recorded_rows():
    """Every row of scaling.jsonl appears in docs/benchmarks.md as ``report`` prints it."""
    b = _bench()
    rows = b._rows()
    if not rows:
        pytest.skip("no benchmarks/results/scaling.jsonl")
    text = (REPO / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    section = text[text.index("<!-- scaling:start -->"):text.index("<!-- scaling:end -->")]
    for grid in {b._grid(r) for r in rows}:
        sel = [r for r in rows if b._grid(r) == grid]
        for line in b.table(sel)[2:]:
            assert line in section, f"docs/benchmarks.md lacks the row {line!r}; run bench_scaling.py report"
        if any(len(p["seeds"]) > 1 for p in b.aggregate(sel)):
            for line in b.summary_table(sel)[2:]:
                assert line in section, f"docs/benchmarks.md lacks the mean ± sd {line!r}; run the report"
    assert np.isfinite([r["cv_test_mae"] for r in rows]).all()
