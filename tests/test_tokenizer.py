"""The closed-vocabulary SCOPE tokenizer: no [UNK] for any valid string, stable ids, no silent truncation."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys import scope
from cloudphys.scope import _grammar as G
from cloudphys.tokenizer import SPECIAL_TOKENS, SequenceTooLongError, build_tokenizer, build_vocabulary, check_length

from conftest import missing  # skips locally, fails under CI (tests/conftest.py)

pytestmark = pytest.mark.filterwarnings("ignore:Set OLD_ERROR_HANDLING:DeprecationWarning")


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(model_max_length=256)


@pytest.fixture(scope="module")
def table(data_root: Path) -> scope.GeneratorTable:
    path = data_root / "cloud" / "generator.json"
    if not path.is_file():
        missing(f"{path} not found")
    return scope.load_generator_table(path)


def test_special_tokens_and_layout(tok) -> None:
    vocab = build_vocabulary()
    assert vocab[:5] == list(SPECIAL_TOKENS) and vocab[5] == "|"
    assert len(vocab) == len(set(vocab)) == tok.vocab_size
    ids = (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id)
    assert ids == (0, 1, 2, 3, 4)
    assert tok.model_max_length == 256
    enc = tok(["-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"])["input_ids"][0]
    assert tok.convert_ids_to_tokens(enc) == ["[CLS]", "-F", "4", "2", "3", "|", "4a", "4b", "|", "Na", "0.5",
                                              "Cl", "0.5", "[SEP]"]


def test_vocabulary_covers_the_grammar() -> None:
    vocab = set(build_vocabulary())
    assert set(G.CLOUD_SYMMETRY_TOKENS) <= vocab
    assert {t for n in range(1, 231) for t in G.hall_tokens(n)} <= vocab
    assert set(G.COMPOSITION_SYMBOLS) <= vocab and set(G.COMPOSITION_VALUES) <= vocab
    for n in range(1, 231):
        assert {f"{m}{x}" for m in G.wyckoff_multiplicities(n) for x in G.WYCKOFF_LETTERS} <= vocab


def test_vocabulary_covers_every_published_wyckoff_label(data_root: Path) -> None:
    path = data_root / "cloud" / "wyckoff-position-multiplicities.json"
    if not path.is_file():
        missing(f"{path} not found")
    vocab = set(build_vocabulary())
    table = {k: v for k, v in json.loads(path.read_text()).items() if v}  # it has an empty entry "0"
    assert sorted(map(int, table)) == list(range(1, 231))
    for number, letters in table.items():
        for letter, mult in letters.items():
            assert f"{mult}{letter}" in vocab
            assert int(mult) in G.wyckoff_multiplicities(int(number)), (number, letter, mult)


def test_vocabulary_is_deterministic_across_processes() -> None:
    code = "import json; from cloudphys.tokenizer import build_vocabulary; print(json.dumps(build_vocabulary()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"PYTHONHASHSEED": "12345", "PATH": ""})
    assert json.loads(out.stdout) == build_vocabulary()


def test_published_strings_have_no_unk(tok, data_root: Path) -> None:
    files = sorted((data_root / "cloud").glob("*.csv"))
    if not files:
        missing("no CLOUD csv files")
    texts: list[str] = []
    for path in files:
        with open(path, newline="") as fh:
            texts += [row.get("cloud") or row["scope"] for row in csv.DictReader(fh)]
    ids = tok(texts)["input_ids"]
    unk = tok.unk_token_id
    bad = [t for t, row in zip(texts, ids) if unk in row]
    assert not bad, bad[:3]
    assert all(len(row) == len(t.split()) + 2 for t, row in zip(texts, ids))
    # ... and neither do their default-dialect versions
    defaults = [scope.to_dialect(t) for t in texts[:3000]]
    assert not any(unk in row for row in tok(defaults)["input_ids"])


@st.composite
def records(draw: st.DrawFn) -> scope.ScopeRecord:
    n = draw(st.integers(1, 230))
    letters = draw(st.lists(st.sampled_from(G.WYCKOFF_LETTERS), min_size=1, max_size=10, unique=True))
    mults = sorted(G.wyckoff_multiplicities(n))
    sites = tuple(scope.WyckoffSite(draw(st.sampled_from(mults)), x) for x in letters)
    els = draw(st.lists(st.sampled_from(G.COMPOSITION_SYMBOLS), min_size=1, max_size=8, unique=True))
    return scope.ScopeRecord(n, sites, tuple((e, Fraction(draw(st.integers(0, 100)), 100)) for e in els))


@given(rec=records())
@settings(max_examples=200)
def test_no_valid_string_maps_to_unk(rec: scope.ScopeRecord, tok, table) -> None:
    for text in (rec.render(), rec.render("cloud", table)):
        ids = tok(text)["input_ids"]
        assert tok.unk_token_id not in ids
        assert tok.decode(ids, skip_special_tokens=True) == text


def test_glued_separators_split_like_the_parser(tok) -> None:
    canonical = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"
    glued = "  -F 4 2 3|4a\t4b |Na 0.5   Cl 0.5 "
    assert scope.parse(glued).render() == canonical
    assert tok(glued)["input_ids"] == tok(canonical)["input_ids"]


def test_unknown_tokens_become_unk(tok) -> None:
    ids = tok("-F 4 2 3 | 4a | Zz 1.0")["input_ids"]
    assert ids.count(tok.unk_token_id) == 1


def test_save_and_load_keep_ids(tok, tmp_path: Path) -> None:
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    tok.save_pretrained(tmp_path)
    text = ["1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5"]
    for loaded in (PreTrainedTokenizerFast.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
        assert loaded.model_max_length == 256 and loaded.pad_token_id == 0 and loaded.mask_token_id == 4
        assert loaded.get_vocab() == tok.get_vocab()


def test_too_long_strings_are_an_error_never_truncated(tok) -> None:
    short = "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"
    small = build_tokenizer(model_max_length=14)
    assert check_length(small, [short]) == [14]
    long = "-F 4 2 3 | 4a 4b 8c | Na 0.5 Cl 0.5"
    with pytest.raises(SequenceTooLongError, match=r"length of 14 tokens: mp-42 \(15 tokens\)") as info:
        check_length(small, [short, long], ids=["mp-1", "mp-42"])
    assert isinstance(info.value, ValueError)
    with pytest.warns(UserWarning, match="#1"):
        assert check_length(small, [short, long], on_error="warn") == [14, 15]
    assert len(small(long)["input_ids"]) == 15  # the tokenizer itself does not truncate
    assert check_length(tok, []) == []
    with pytest.raises(ValueError):
        build_tokenizer(model_max_length=0)


def test_batches_pad_dynamically(tok) -> None:
    enc = tok(["-P 2 2 2 | 1a | Si 1.0", "-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5"])
    assert [len(x) for x in enc["input_ids"]] == [11, 14]
    padded = tok.pad(enc, return_tensors="np")
    assert padded["input_ids"].shape == (2, 14) and padded["attention_mask"][0].sum() == 11
