"""How many SCOPE strings of the shipped/shared data sets change under canonicalisation (issue 12 §1).

For every string of CLOUD's Cv split (train+val, test) and CLOUD's 10k pretraining sample, and for
every phonondb-thermo structure (converted with :func:`cloudphys.scope.from_structure`), compare the
default-dialect string as cloudphys wrote it before canonical records (the record as read: sites and
elements in order of first appearance) with the canonical one, and count

* ``changed``: strings that differ at all;
* ``relabelled``: strings whose set of Wyckoff letters changed (an origin shift / setting of the
  space group's Euclidean normalizer applied: the substantive change, e.g. 8b -> 8a in Fd-3m);
* ``order only``: the rest (site or element order only);
* distinct strings before and after (descriptions of one crystal that now coincide), and for the
  CLOUD sets the cloud-dialect strings that are not canonical (their canonical cloud rendering
  differs; the cloud dialect keeps CLOUD's bytes unless asked).

Also: the phonondb strings equal to a CLOUD Cv test string, before and after (the leakage set of
issue 12 §3).

Run::

    CLOUDPHYS_DATA=../shared/data python benchmarks/bench_canonical.py [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import time
from pathlib import Path


def _data_dir() -> Path:
    env = os.environ.get("CLOUDPHYS_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def _cloud_strings(path: Path, limit: int | None) -> list[str]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = [row["cloud"] for row in csv.DictReader(fh)]
    return rows[:limit] if limit else rows


def _count(pairs: list[tuple[str, str, frozenset[str], frozenset[str]]]) -> dict[str, int]:
    changed = sum(old != new for old, new, _, _ in pairs)
    relabelled = sum(lo != ln for _, _, lo, ln in pairs)
    return {
        "strings": len(pairs),
        "changed": changed,
        "relabelled": relabelled,
        "order only": changed - relabelled,
        "distinct before": len({old for old, _, _, _ in pairs}),
        "distinct after": len({new for _, new, _, _ in pairs}),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=None, help="first N strings / structures of each set")
    args = ap.parse_args(argv)

    from cloudphys import scope

    data = _data_dir()
    table = scope.load_generator_table(data / "cloud" / "generator.json")
    rows: list[tuple[str, dict[str, int]]] = []
    test_old: set[str] = set()
    test_new: set[str] = set()
    t0 = time.perf_counter()
    for name, fname in (("CLOUD Cv train+val", "cloud_cv_train_and_val.csv"), ("CLOUD Cv test", "cloud_cv_test.csv"),
                        ("CLOUD pretrain 10k", "pretrain_cloud_10k.csv")):
        pairs = []
        cloud_changed = 0
        for text in _cloud_strings(data / "cloud" / fname, args.limit):
            rec = scope.parse(text, canonical=False)
            can = rec.canonical()
            old, new = rec.render(canonical=False), can.render()
            pairs.append((old, new, frozenset(s.letter for s in rec.sites), frozenset(s.letter for s in can.sites)))
            cloud_changed += can.render("cloud", table) != text
            if name == "CLOUD Cv test":
                test_old.add(old)
                test_new.add(new)
        counts = _count(pairs)
        counts["cloud strings not canonical"] = cloud_changed
        rows.append((name, counts))

    pairs = []
    leak_old: set[str] = set()
    leak_new: set[str] = set()
    with gzip.open(data / "phonondb-thermo" / "materials.jsonl.gz", "rt", encoding="utf-8") as fh:
        for k, line in enumerate(fh):
            if args.limit and k >= args.limit:
                break
            row = json.loads(line)
            rec = scope.from_structure(row["structure"])
            can = rec.canonical()
            old, new = rec.render(canonical=False), can.render()
            pairs.append((old, new, frozenset(s.letter for s in rec.sites), frozenset(s.letter for s in can.sites)))
            if old in test_old:
                leak_old.add(row["id"])
            if new in test_new:
                leak_new.add(row["id"])
    rows.append(("phonondb-thermo", _count(pairs)))
    elapsed = time.perf_counter() - t0

    keys = ["strings", "changed", "relabelled", "order only", "distinct before", "distinct after",
            "cloud strings not canonical"]
    print("| data set | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for name, counts in rows:
        print(f"| {name} | " + " | ".join(f"{counts[k]:,}" if k in counts else "--" for k in keys) + " |")
    print()
    print(f"phonondb-thermo materials whose default string equals a CLOUD Cv test string: "
          f"{len(leak_old)} before, {len(leak_new)} after canonicalisation")
    print(f"({elapsed:.0f} s; python {sys.version.split()[0]}; command: CLOUDPHYS_DATA=../shared/data "
          f"python benchmarks/bench_canonical.py{' --limit ' + str(args.limit) if args.limit else ''})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
