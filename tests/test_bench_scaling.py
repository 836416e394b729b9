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
    rows = [_row(10000, 128, mlm_val_loss=2.0), _row(0, 64)]
    lines = b.table(rows)
    assert len(lines) == 2 + len(rows)
    assert lines[2].startswith("| 0 | 64 | none |  |")        # sorted by hidden, then N; no MLM loss
    assert "| 10,000 | 128 | 300 (1.9) | 2.000 |" in lines[3]


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
        for line in b.table([r for r in rows if b._grid(r) == grid])[2:]:
            assert line in section, f"docs/benchmarks.md lacks the row {line!r}; run bench_scaling.py report"
    assert np.isfinite([r["cv_test_mae"] for r in rows]).all()
