"""Training, evaluation and pretraining parse every SCOPE string: bad ones are one DataError naming each.

``cloudphys.modeling.encoding.tokenize(..., validate=True)`` (used by ``encode`` and by ``pretrain``) runs
:func:`cloudphys.scope.parse` on every string and reports unknown tokens, wrong section counts,
impossible Wyckoff letters and too-long strings together, item by item.
"""

from __future__ import annotations

import copy
import csv
import re
from pathlib import Path

import numpy as np
import pytest
from _training_helpers import TINY, tokenizer

from cloudphys.config import load_config
from cloudphys.data import Examples
from cloudphys.errors import DataError
from cloudphys.modeling.encoding import MAX_LISTED, encode, scope_parse_problem, tokenize
from cloudphys.training import build_model, evaluate_model, fit

NACL = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"
NACL_CLOUD = "1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5"
GOOD = [NACL, NACL_CLOUD, "-F 4 2 3 | 4a | Cu 1.0", "-F 4 2 3 | 8c | Si 1.0", "P 1 | 1a | Fe 1.0"]
#: id -> (bad string, patterns its line in the error must contain)
BAD = {
    "two-sections": ("-F 4 2 3 | 4a 4b", ["does not parse", "expected 3 sections", "found 2"]),
    "four-sections": ("-F 4 2 3 | 4a 4b | Na 0.5 | Cl 0.5", ["does not parse", "expected 3 sections", "found 4"]),
    "impossible-letter": ("-F 4 2 3 | 4z | Na 1.0", ["does not parse", "Wyckoff section", "no Wyckoff letter 'z'"]),
    "unknown-token": ("-F 4 2 3 | 4a | Zz 1.0",
                      ["has token(s) outside the vocabulary: ['Zz']", "not an element symbol"]),
}


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return build_model(load_config(TINY), tokenizer=tok)


def _examples(ids: list[str], strings: list[str]) -> Examples:
    return Examples(ids=ids, scope=strings, n_atoms=np.full(len(ids), 2.0), temperatures=np.array([300.0]),
                    targets={"cv": np.full((len(ids), 1), 45.0)}, units={"cv": "J/(K*mol)"})


def _lines(message: str) -> dict[str, str]:
    """The error's per-item lines by item name (the first word of each indented line)."""
    out = {}
    for line in message.splitlines()[1:]:
        name, _, rest = line.strip().partition(" ")
        out[name] = rest
    return out


def _write_training_csv(path: Path) -> list[str]:
    rows = [(f"good{k}", s, "train") for k, s in enumerate(GOOD)]
    rows[2:2] = [(rid, s, "train") for rid, (s, _) in BAD.items()]  # among the good ones, not at the end
    rows += [(f"val{k}", s, "val") for k, s in enumerate(GOOD[:3])]
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "scope", "n_atoms", "cv", "split"])
        w.writerows((rid, s, 2, 45.0, split) for rid, s, split in rows)
    return [rid for rid, _, split in rows if split == "train"]


def test_training_csv_with_one_bad_string_of_each_kind_is_one_error_naming_each(tmp_path: Path, tok) -> None:
    train_ids = _write_training_csv(tmp_path / "train.csv")
    cfg = copy.deepcopy(TINY)
    cfg["data"] = {"name": "csv", "path": str(tmp_path / "train.csv"), "targets": {"cv": "cv"}, "temperature": 300.0}
    run = tmp_path / "run"
    with pytest.raises(DataError) as info:
        fit(cfg, run, tokenizer=tok)
    msg = str(info.value)
    assert msg.startswith(f"{len(BAD)} of {len(train_ids)} SCOPE strings cannot be used")
    lines = _lines(msg)
    assert set(lines) == set(BAD)  # every bad item, and no good one
    for rid, (text, patterns) in BAD.items():
        for pattern in patterns:
            assert pattern in lines[rid], (rid, lines[rid])
        assert repr(text) in lines[rid]  # the string itself, once
    assert not any(f"good{k}" in msg for k in range(len(GOOD)))
    assert not (run / "last").exists() and not (run / "model").exists()  # refused before any training


def test_evaluation_refuses_the_same_strings(model) -> None:
    ids = ["ok", *BAD, "ok2"]
    ex = _examples(ids, [NACL, *(s for s, _ in BAD.values()), NACL_CLOUD])
    with pytest.raises(DataError) as info:
        evaluate_model(model, ex, device="cpu")
    assert set(_lines(str(info.value))) == set(BAD)
    with pytest.raises(DataError, match="4 of 6 SCOPE strings"):
        encode(ex, model, ["cv"])


def test_a_single_bad_string_names_it_on_one_line(model) -> None:
    ex = _examples(["a", "b"], [NACL, "-F 4 2 3 | 4z | Na 1.0"])
    with pytest.raises(DataError, match=r"^SCOPE string of b does not parse: .*no Wyckoff letter 'z'") as info:
        encode(ex, model, ["cv"])
    assert "\n" not in str(info.value)


def test_row_index_names_items_without_ids_and_the_list_is_capped(tok) -> None:
    strings = [NACL] + ["-F 4 2 3 | 4a 4b"] * (MAX_LISTED + 3) + [NACL]
    with pytest.raises(DataError) as info:
        tokenize(tok, strings, validate=True)
    msg = str(info.value)
    assert msg.startswith(f"{MAX_LISTED + 3} of {len(strings)} SCOPE strings")
    listed = re.findall(r"^  (#\d+) does not parse", msg, flags=re.M)
    assert listed == [f"#{k}" for k in range(1, MAX_LISTED + 1)]
    assert msg.rstrip().endswith("... and 3 more")


def test_grammar_and_length_problems_are_reported_together(model, tok) -> None:
    short = tokenizer(16)
    long_ok = "P 1 | 1a | " + " ".join(f"{el} 0.2" for el in ("H", "Li", "Na", "K", "Rb"))
    assert scope_parse_problem(long_ok) is None
    with pytest.raises(DataError) as info:
        tokenize(short, [NACL, long_ok, "-F 4 2 3 | 4z | Na 1.0"], ["good", "long", "letter"], validate=True)
    lines = _lines(str(info.value))
    assert set(lines) == {"long", "letter"}
    assert "more than the model's max_length 16" in lines["long"] and "does not parse" not in lines["long"]
    assert "no Wyckoff letter 'z'" in lines["letter"]


def test_without_validate_tokenize_checks_only_vocabulary_and_length(tok) -> None:
    (row,) = tokenize(tok, ["-F 4 2 3 | 4z | Na 1.0"], ["x"])  # the fuzz-tested contract of plain tokenize
    assert row.tolist() == tok(["-F 4 2 3 | 4z | Na 1.0"])["input_ids"][0]


def test_all_valid_data_passes_and_encodes_as_before(model, tok) -> None:
    strings = GOOD + ["-F 4 2 3|4a 4b|Na 0.5 Cl 0.5"]  # '|' glued to neighbours is valid too
    ex = _examples([f"g{k}" for k in range(len(strings))], strings)
    enc = encode(ex, model, ["cv"])
    assert [r.tolist() for r in enc.input_ids] == tok(strings)["input_ids"]
    assert [r.tolist() for r in tokenize(tok, strings, validate=True)] == [r.tolist() for r in tokenize(tok, strings)]
    assert enc.input_ids[-1].tolist() == enc.input_ids[0].tolist()


def test_the_cloud_cv_strings_all_pass_validation(data_root: Path, tok) -> None:
    ids, strings = [], []
    for name in ("cloud_cv_train_and_val.csv", "cloud_cv_test.csv"):
        with open(data_root / "cloud" / name, newline="") as fh:
            for k, row in enumerate(csv.DictReader(fh)):
                ids.append(f"{name}:{k}")
                strings.append(row["cloud"])
    assert len(strings) == 1512
    rows = tokenize(tok, strings, ids, validate=True)
    assert len(rows) == 1512 and all(scope_parse_problem(s) is None for s in strings)
    assert [r.tolist() for r in rows[:50]] == tok(strings[:50])["input_ids"]


def test_pretraining_corpus_is_validated_before_training(tmp_path: Path, tok) -> None:
    from cloudphys.training.pretrain import pretrain

    corpus = tmp_path / "corpus.csv"
    with open(corpus, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scope"])
        w.writerows([[NACL], ["-F 4 2 3 | 4a 4b | Na 0.5 | Cl 0.5"], [NACL_CLOUD], ["-F 4 2 3 | 4z | Na 1.0"]])
    cfg = {"encoder": TINY["encoder"], "head": TINY["head"],
           "pretrain": {"sources": [{"path": str(corpus)}], "epochs": 1, "batch_size": 2, "device": "cpu",
                        "progress": "false"}}
    out = tmp_path / "pre"
    with pytest.raises(DataError) as info:
        pretrain(cfg, out, tokenizer=tok)
    lines = _lines(str(info.value))
    assert set(lines) == {"#1", "#3"}
    assert "found 4" in lines["#1"] and "no Wyckoff letter 'z'" in lines["#3"]
    assert not out.exists()
