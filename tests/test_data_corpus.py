"""Corpus builder, generic CSV data set, and the ``cloudphys data`` command line."""

from __future__ import annotations

import csv
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cloudphys.cli import main
from cloudphys.data.corpus import build_corpus, load_corpus_csv, normalise
from cloudphys.data.csvdata import load_csv
from cloudphys.data.phonondb import DataWarning
from cloudphys.errors import DataError

scope = pytest.importorskip("cloudphys.scope", reason="the SCOPE converter is not available")


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLOUDPHYS_OFFLINE", "1")


@pytest.fixture
def cif_csv(data_root, tmp_path) -> Path:
    """12 perovskites from the CDVAE test set, one duplicated, one broken CIF, with a Cv-like target."""
    with gzip.open(data_root / "structures" / "cdvae_perov_5_test.csv.gz", "rt", newline="") as fh:
        rows = [r for _, r in zip(range(12), csv.DictReader(fh))]
    out = tmp_path / "mine.csv"
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["material_id", "cif", "cv_300", "split"])
        for k, r in enumerate(rows):
            w.writerow([r["material_id"], r["cif"], 100.0 + k, "test" if k < 3 else "train"])
        w.writerow(["dup", rows[0]["cif"], 1.0, "train"])
        w.writerow(["broken", "data_x\n_cell_length_a 1\n", 1.0, "train"])
    return out


def test_corpus_dedup_exclude_holdout(data_root, tmp_path, cif_csv):
    out = tmp_path / "corpus.csv"
    rows_jsonl = tmp_path / "few.jsonl"
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh, open(rows_jsonl, "w") as dst:
        for _, line in zip(range(6), fh):
            dst.write(line)
    report = build_corpus(["cloud-cv:train", "cloud-cv:test", str(cif_csv), str(rows_jsonl)], out,
                          holdout=0.05, seed=0, exclude=["cloud-cv:test"])
    with open(out, newline="") as fh:
        got = list(csv.DictReader(fh))
    strings = [r["scope"] for r in got]
    assert len(strings) == len(set(strings))  # de-duplicated
    test_strings = {normalise(s, "default") for s in _cloud_test(data_root)}
    assert not test_strings & set(strings)  # CLOUD's test split excluded
    assert report.excluded >= 299 and report.duplicates >= 1
    n = len(strings)
    assert sum(r["split"] == "val" for r in got) == math.floor(0.05 * n) == report.n_val
    for s in strings[:50]:  # one dialect: re-rendering is the identity
        assert scope.parse(s).render("default") == s
    # the broken CIF is reported, not dropped silently
    assert any(i == "broken" for _, i, _ in report.failures)
    fails = Path(report.failures_file).read_text()
    assert "broken" in fails
    # deterministic
    again = build_corpus(["cloud-cv:train", "cloud-cv:test", str(cif_csv), str(rows_jsonl)], tmp_path / "c2.csv",
                         holdout=0.05, seed=0, exclude=["cloud-cv:test"])
    assert (tmp_path / "c2.csv").read_text() == out.read_text() and again.n_val == report.n_val
    # loadable as the corpus-csv data set
    assert load_corpus_csv("val", path=str(out)) == [r["scope"] for r in got if r["split"] == "val"]
    assert len(load_corpus_csv("all", path=str(out))) == n


def _cloud_test(data_root: Path) -> list[str]:
    with open(data_root / "cloud" / "cloud_cv_test.csv", newline="") as fh:
        return [r["cloud"] for r in csv.DictReader(fh)]


def test_csv_dataset_with_structures(cif_csv):
    with pytest.warns(DataWarning, match="broken"):
        train = load_csv("train", path=str(cif_csv), targets={"cv": "cv_300"}, temperature=300)
    test = load_csv("test", path=str(cif_csv), targets={"cv": "cv_300"}, temperature=300)
    assert len(test) == 3 and len(train) == 10  # 9 + dup; broken left out with a warning
    assert train.temperatures.tolist() == [300.0] and train.units == {"cv": "J/(K*mol)"}
    assert np.all(train.n_atoms == 5)  # ABX3 perovskites, number of sites
    assert test.targets["cv"][:, 0].tolist() == [100.0, 101.0, 102.0]
    assert train.scope[train.ids.index("dup")] == test.scope[0]
    with pytest.raises(DataError, match="no target column"):
        load_csv("train", path=str(cif_csv), targets={"cv": "cv_500"})


def test_csv_dataset_with_strings_and_curves(tmp_path):
    p = tmp_path / "curves.csv"
    p.write_text(
        "scope,n_atoms,cv_100,cv_300\n"
        "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5,2,40.1,48.9\n"
        "-F 4 2 3 | 4a 4b | K 0.5 Cl 0.5,2,44.0,49.3\n"
        "-F 4 2 3 | 4a 4b | Li 0.5 F 0.5,2,20.0,45.0\n"
    )
    ex = load_csv("all", path=str(p), targets={"cv": {"cv_300": 300, "cv_100": 100}})
    assert ex.temperatures.tolist() == [100.0, 300.0]
    assert ex.targets["cv"].tolist() == [[40.1, 48.9], [44.0, 49.3], [20.0, 45.0]]
    assert ex.ids == ["row:0", "row:1", "row:2"]
    parts = [load_csv(s, path=str(p), targets={"cv": "cv_300"}, temperature=300, valid_size=1 / 3,
                      test_size=1 / 3).ids for s in ("train", "val", "test")]
    assert sorted(sum(parts, [])) == ex.ids and all(len(x) == 1 for x in parts)


def test_cli_list_info(capsys, data_root):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("cloud-cv", "cloud-pretrain", "cloud-dielectric", "phonondb-thermo", "csv"):
        assert name in out
    assert "present: yes" in out
    assert main(["data", "list", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert listed["cloud-cv"]["present"] == "yes" and listed["phonondb-thermo"]["present"] == "yes"
    assert main(["data", "info", "phonondb-thermo", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "CC BY 4.0" in info["licence"] and info["size"] > 9_000_000
    assert "J/(K*mol)" in info["columns"]["cv"] and all(f["present"] for f in info["files"])
    assert main(["data", "info", "cloud-cv"]) == 0
    out = capsys.readouterr().out
    assert "MIT" in out and "raw.githubusercontent.com" in out and "[present]" in out
    assert main(["data", "verify", "cloud-cv"]) == 0


def test_cli_missing_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CLOUDPHYS_DATA", str(tmp_path / "empty"))
    assert main(["data", "list", "--json"]) == 0
    listed = {d["name"]: d for d in json.loads(capsys.readouterr().out)["datasets"]}
    assert listed["cloud-cv"]["present"].startswith("no") and listed["phonondb-thermo"]["present"] == "no"
    assert main(["data", "fetch", "cloud-cv"]) == 1  # offline: message says where to put what
    err = capsys.readouterr().err
    assert str(tmp_path / "empty" / "cloud" / "cloud_cv_test.csv") in err


def test_cli_build_corpus(tmp_path, capsys):
    out = tmp_path / "c.csv"
    assert main(["data", "build-corpus", "cloud-cv:test", "-o", str(out), "--holdout", "0.1", "-q"]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and out.is_file()
