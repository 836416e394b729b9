"""docs/benchmarks.md states the corpus benchmark's numbers as `bench_corpus.py --report` prints them from
benchmarks/results/corpus.jsonl (issue 24 §2): every table row of the report is in the docs."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

from _training_helpers import load_benchmark

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def test_every_corpus_row_is_in_the_docs() -> None:
    bench = load_benchmark("bench_corpus")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bench.report()
    rows = [line for line in out.getvalue().splitlines() if line.startswith("| ") and "---" not in line]
    assert any("6,300,000" in r and "built from text" in r for r in rows)  # the full-scale build is recorded
    docs = DOCS.read_text(encoding="utf-8")
    missing = [r for r in rows if r not in docs]
    assert not missing, f"rows of `bench_corpus.py --report` not in docs/benchmarks.md: {missing}"
