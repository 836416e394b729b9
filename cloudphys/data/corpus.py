"""Unlabelled corpus builder for masked-language-model pretraining.

``build_corpus(sources, "corpus.csv", holdout=0.05, seed=0, exclude=["cloud-cv:test"])``:

1. read every source (:func:`cloudphys.data.sources.read_source`: data sets, CSV / JSON-lines files
   of strings or structures, structure files and folders); structures are converted to SCOPE;
2. bring every string into one dialect: ``cloudphys.scope.parse(text).render(dialect)`` (so CLOUD's
   cloud-dialect strings and converted structures mix; a cloud string's composition keeps its two
   decimals), whitespace normalised;
3. leave out every string that also occurs in an ``exclude`` source (normalised the same way), e.g.
   the CLOUD test split so that pretraining never sees test crystals;
4. de-duplicate (first occurrence wins, source order);
5. hold out ``floor(holdout * n)`` strings: ``numpy.random.RandomState(seed).permutation(n)``, the
   first ones are ``val``, the rest ``train``;
6. write CSV ``scope,split`` in first-occurrence order. Items that could not be read, converted or
   parsed are listed (source, id, reason) in ``<output stem>.failures.csv`` -- never dropped silently.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError
from ..inputs import open_text
from .base import check_split, reject_unknown
from .sources import read_source

__all__ = ["CorpusReport", "build_corpus", "load_corpus_csv", "normalise"]


@dataclass
class CorpusReport:
    """What :func:`build_corpus` did (counts per source, failures, final sizes)."""

    output: str
    per_source: list[dict[str, Any]] = field(default_factory=list)
    excluded: int = 0
    duplicates: int = 0
    n_train: int = 0
    n_val: int = 0
    failures: list[tuple[str, str, str]] = field(default_factory=list)
    failures_file: str | None = None

    def summary(self) -> str:
        lines = [f"{s['source']}: {s['read']} strings ({s['kind']}), {s['failed']} failed" for s in self.per_source]
        lines.append(
            f"excluded {self.excluded}, duplicates removed {self.duplicates}; "
            f"wrote {self.n_train} train + {self.n_val} val strings to {self.output}"
        )
        if self.failures:
            lines.append(f"{len(self.failures)} items left out, listed in {self.failures_file}")
            for src, i, why in self.failures[:10]:
                lines.append(f"  {src} {i}: {why}")
        return "\n".join(lines)


def normalise(text: str, dialect: str, generator_table: Any = None) -> str:
    """One SCOPE string in ``dialect`` (parsed and re-rendered), whitespace normalised."""
    from .. import scope

    return " ".join(scope.parse(text).render(dialect, generator_table).split())


def _generator_table(dialect: str) -> Any:
    if dialect != "cloud":
        return None
    from .cloud import generator_table

    return generator_table()


def _strings(sources: Sequence[str], *, dialect: str, table: Any, workers: int, progress: bool,
             report: CorpusReport | None) -> tuple[list[str], list[tuple[str, str, str]]]:
    out: list[str] = []
    failures: list[tuple[str, str, str]] = []
    for src in sources:
        got = read_source(src, dialect=dialect, workers=workers, progress=progress, generator_table=table)
        failed = [(src, i, why) for i, why in got.failures]
        n_ok = 0
        for i, text in zip(got.ids, got.strings):
            try:
                out.append(normalise(text, dialect, table))
                n_ok += 1
            except Exception as exc:
                failed.append((src, i, f"not a SCOPE string: {exc}"))
        failures.extend(failed)
        if report is not None:
            report.per_source.append({"source": src, "read": n_ok, "failed": len(failed),
                                      "kind": "converted structures" if got.converted else "strings"})
    return out, failures


def build_corpus(
    sources: Sequence[str],
    output: str | Path,
    *,
    holdout: float = 0.05,
    seed: int = 0,
    exclude: Sequence[str] = (),
    dialect: str = "default",
    workers: int = 1,
    progress: bool = False,
) -> CorpusReport:
    """Build a de-duplicated corpus of SCOPE strings with a held-out part (see module docstring)."""
    if not sources:
        raise DataError("build-corpus needs at least one source")
    if not 0.0 <= holdout < 1.0:
        raise DataError(f"holdout must be in [0, 1), got {holdout!r}")
    if dialect not in ("default", "cloud"):
        raise DataError(f"unknown dialect {dialect!r}; choose default or cloud")
    table = _generator_table(dialect)
    report = CorpusReport(output=str(output))
    strings, failures = _strings(sources, dialect=dialect, table=table, workers=workers, progress=progress,
                                 report=report)
    banned: set[str] = set()
    if exclude:
        ex, ex_fail = _strings(exclude, dialect=dialect, table=table, workers=workers, progress=progress, report=None)
        banned = set(ex)
        failures.extend((f"exclude {s}", i, why) for s, i, why in ex_fail)
    seen: set[str] = set()
    corpus: list[str] = []
    for text in strings:
        if text in banned:
            report.excluded += 1
        elif text in seen:
            report.duplicates += 1
        else:
            seen.add(text)
            corpus.append(text)
    n = len(corpus)
    if n == 0:
        raise DataError("the corpus is empty after exclusion and de-duplication")
    n_val = int(math.floor(holdout * n))
    is_val = np.zeros(n, dtype=bool)
    is_val[np.random.RandomState(seed).permutation(n)[:n_val]] = True
    from ..outputs import atomic_write, clean_text, text_cell

    out = Path(output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(out, "w", newline="", encoding="utf-8") as fh:  # a machine input for pretraining:
        w = csv.writer(fh)  # SCOPE strings as they are (only made encodable), written atomically
        w.writerow(["scope", "split"])
        for text, v in zip(corpus, is_val):
            w.writerow([clean_text(text), "val" if v else "train"])
    report.n_val = n_val
    report.n_train = n - n_val
    report.failures = failures
    fail_path = out.with_name(out.name.split(".")[0] + ".failures.csv")
    if failures:
        with atomic_write(fail_path, "w", newline="", encoding="utf-8") as fh:  # for people: spreadsheet-safe
            w = csv.writer(fh)
            w.writerow(["source", "id", "reason"])
            w.writerows([text_cell(c) for c in row] for row in failures)
        report.failures_file = str(fail_path)
    elif fail_path.exists():
        fail_path.unlink()
    return report


def load_corpus_csv(split: str = "train", *, path: str | None = None, column: str | None = None,
                    **unknown: Any) -> list[str]:
    """Strings of a corpus CSV (``build-corpus`` output, or any CSV with a ``scope``/``cloud`` column).

    :param split: ``train``, ``val`` (by the ``split`` column) or ``all``; a CSV without a ``split``
        column has only ``all``.
    """
    reject_unknown("corpus-csv", unknown)
    if not path:
        raise DataError("data set 'corpus-csv' needs path= (a CSV with a scope or cloud column)")
    check_split("corpus-csv", split, ("train", "val", "all"))
    p = Path(path).expanduser()
    if not p.is_file():
        raise DataError(f"data set 'corpus-csv': file {p} does not exist")
    with open_text(p, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        col = column or next((c for c in ("scope", "cloud") if c in header), None)
        if col is None or col not in header:
            raise DataError(f"{p}: no column {column or 'scope/cloud'!r}; columns are {header}")
        if split != "all" and "split" not in header:
            raise DataError(f"{p}: no 'split' column, so only split='all' is available")
        return [row[col] for row in reader if split == "all" or row["split"] == split]
