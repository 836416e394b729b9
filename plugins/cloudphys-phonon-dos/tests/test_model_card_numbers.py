"""The shipped phonon-DOS models' cards state the numbers their named command computes (issue 20 §5).

The card's metrics block (between ``<!-- metrics:start -->`` and ``<!-- metrics:end -->``) is the
text ``python benchmarks/bench_dos.py NAME --card`` prints. Here it is recomputed from the
shipped weights on the stable phonondb-thermo test split and compared number by number: each may
differ from the card by at most one unit in its last printed digit (float rounding on another CPU),
so a retrained model with a stale card, or a card edited by hand, fails.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

from cloudphys.data.base import data_dir
from cloudphys.models import list_models, model_spec

REPO = Path(__file__).resolve().parents[3]
NUMBER = re.compile(r"[+-]?\d+\.\d+")


def _bench_dos():
    spec = importlib.util.spec_from_file_location("bench_dos", REPO / "benchmarks" / "bench_dos.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _block(text: str, start: str, end: str) -> str:
    assert start in text and end in text, "the card has no metrics block"
    return text[text.index(start): text.index(end) + len(end)]


def _numbers(text: str) -> list[tuple[float, float]]:
    """Every decimal number of ``text`` with one unit of its last printed digit."""
    return [(float(m), 10.0 ** -len(m.split(".")[1])) for m in NUMBER.findall(text)]


def test_numbers_compare_with_one_unit_in_the_last_digit() -> None:
    assert _numbers("cv 0.268 u 105.4 (signed -20.2)") == [(0.268, 0.001), (105.4, 0.1), (-20.2, 0.1)]


SHIPPED_DOS_MODELS = ("phonondb-dos", "phonondb-dos-geo")


@pytest.mark.parametrize("name", SHIPPED_DOS_MODELS)
def test_the_shipped_dos_cards_state_what_their_command_computes(name: str) -> None:
    if name not in list_models(include_unavailable=True):
        pytest.skip(f"{name} is not shipped in this checkout")
    if name not in list_models():
        pytest.skip("the phonon-DOS plugin is not installed")
    if not (data_dir() / "phonondb-thermo" / "materials.jsonl.gz").exists():
        pytest.skip("phonondb-thermo is not in the data directory")
    bench = _bench_dos()
    card = model_spec(name).card
    assert f"benchmarks/bench_dos.py {name} --card" in card  # the card names the command
    stated = _block(card, bench.CARD_START, bench.CARD_END)
    result = bench.evaluate_dos_model(name)
    computed = bench.card_metrics(result)
    words = re.compile(r"[A-Za-z]+")
    assert words.findall(stated) == words.findall(computed), "the card's metrics block is not the command's text"
    got, want = _numbers(computed), _numbers(stated)
    assert len(got) == len(want) and len(got) >= 20
    for (value, _), (card_value, unit) in zip(got, want):
        assert abs(value - card_value) <= unit * 1.01, (value, card_value, computed)
