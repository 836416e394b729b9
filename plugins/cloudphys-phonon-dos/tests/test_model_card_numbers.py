"""Issue 20 §5: the shipped phonondb-dos model card's numbers are what the command it names prints."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_model_card_numbers_come_from_bench_dos():
    from cloudphys.data.base import data_dir
    from cloudphys.models.registry import SHIPPED_DIR

    if not (data_dir() / "phonondb-thermo" / "materials.jsonl.gz").is_file():
        pytest.skip("phonondb-thermo is not in the data directory")
    card = (Path(SHIPPED_DIR) / "phonondb-dos" / "model_card.md").read_text(encoding="utf-8")
    assert "python benchmarks/bench_dos.py phonondb-dos" in card
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from bench_dos import evaluate_dos_model
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    r = evaluate_dos_model("phonondb-dos")

    def card_value(label: str) -> float:
        m = re.search(re.escape(label) + r" \| ([0-9.]+)", card)
        assert m, label
        return float(m.group(1))

    assert card_value("| cv, 20–1000 K") == pytest.approx(r["cv_mae"], abs=5e-4)
    assert card_value("| cv, 20–150 K") == pytest.approx(r["cv_mae_20_150"], abs=5e-4)
    assert card_value("| s") == pytest.approx(r["s_mae"], abs=5e-4)
    assert card_value("| u") == pytest.approx(r["u_mae"], abs=0.05)
    assert card_value("| DOS, Wasserstein-1 to phonopy's DOS") == pytest.approx(r["dos_w1_thz"], abs=5e-4)
