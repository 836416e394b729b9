"""Reliability guarantee 2: fuzzing. Arbitrary input lets only the documented error type escape.

* SCOPE parser: arbitrary text -> a record or :class:`ScopeParseError`;
* tokenizer: arbitrary text -> token ids (unknown words -> ``[UNK]``), or
  :class:`SequenceTooLongError` / :class:`DataError` when a length is enforced;
* config loader: arbitrary mappings and overrides -> a :class:`Config` or :class:`ConfigError`;
* structure converter: random lattices, species and coordinates -> a record or :class:`StructureError`
  (and no crash: NaN/inf used to segfault spglib).

Each test runs ``FUZZ_EXAMPLES`` examples: 2,000 by default (CI), 10,000 with
``HYPOTHESIS_PROFILE=slow``, or ``CLOUDPHYS_FUZZ_EXAMPLES=N``. See docs/reliability.md.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from cloudphys import scope
from cloudphys.config import Config, PretrainConfig, TrainConfig, load_config
from cloudphys.errors import ConfigError, DataError, ScopeParseError, StructureError
from cloudphys.scope import _grammar as G
from cloudphys.tokenizer import SequenceTooLongError, build_tokenizer, build_vocabulary, check_length

FUZZ_EXAMPLES = int(
    os.environ.get("CLOUDPHYS_FUZZ_EXAMPLES") or (10_000 if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else 2_000)
)
fuzz = settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

VOCAB = build_vocabulary()
TOKENIZER = build_tokenizer(model_max_length=64)

# -- SCOPE parser --------------------------------------------------------------------------------

token_soup = st.lists(st.sampled_from(VOCAB + ["|"] * 6) | st.text(max_size=4), max_size=40).map(" ".join)


@st.composite
def near_valid_scope(draw: st.DrawFn) -> str:
    """A real symmetry section (either dialect), then random Wyckoff and composition tokens."""
    number = draw(st.integers(1, 230))
    sym = " ".join(G.hall_tokens(number))
    if draw(st.booleans()):  # a cloud-style generator string, grammatical or not
        sym = " ".join(draw(st.lists(st.sampled_from(G.CLOUD_SYMMETRY_TOKENS), min_size=1, max_size=30)))
        sym = draw(st.sampled_from(["0", "1"])) + " " + sym
    mults = sorted(G.wyckoff_multiplicities(number)) + [0, 7, 999]
    site = st.builds(lambda m, x: f"{m}{x}", st.sampled_from(mults), st.sampled_from(G.WYCKOFF_LETTERS + ("?",)))
    sites = " ".join(draw(st.lists(site, min_size=0, max_size=6)))
    comp_tok = st.sampled_from(G.COMPOSITION_SYMBOLS + G.COMPOSITION_VALUES + ("Zz", "nan", "-0.5", "1.005"))
    comp = " ".join(draw(st.lists(comp_tok, min_size=0, max_size=8)))
    return draw(st.sampled_from([f"{sym} | {sites} | {comp}", f"{sym}|{sites}|{comp}", f"{sym} | {sites}"]))


@st.composite
def mutated_valid_scope(draw: st.DrawFn) -> str:
    """A valid string (valid letters for its group), then maybe one token replaced, dropped or added."""
    number = draw(st.integers(1, 230))
    general, order = G.general_wyckoff_letter(number), G.general_multiplicity(number)
    special = sorted(m for m in G.wyckoff_multiplicities(number) if m < order)
    letters = draw(
        st.lists(st.sampled_from(G.WYCKOFF_LETTERS[: G.letter_rank(general) + 1]), min_size=1, max_size=5, unique=True)
    )
    sites = [f"{order if x == general else draw(st.sampled_from(special))}{x}" for x in letters]
    els = draw(st.lists(st.sampled_from(G.COMPOSITION_SYMBOLS), min_size=1, max_size=4, unique=True))
    comp = [t for el in els for t in (el, draw(st.sampled_from(G.COMPOSITION_VALUES)))]
    tokens = list(G.hall_tokens(number)) + ["|"] + sites + ["|"] + comp
    how = draw(st.sampled_from(["keep", "keep", "replace", "drop", "insert"]))
    k = draw(st.integers(0, len(tokens) - 1))
    if how == "replace":
        tokens[k] = draw(st.sampled_from(VOCAB))
    elif how == "drop":
        del tokens[k]
    elif how == "insert":
        tokens.insert(k, draw(st.sampled_from(VOCAB)))
    return " ".join(tokens)


def _check_parse(text: str) -> None:
    try:
        rec = scope.parse(text)
    except ScopeParseError as exc:
        assert exc.reason and 0 <= exc.position <= len(text)  # type: ignore[attr-defined]
        event(f"refused: {exc.section} section")  # type: ignore[attr-defined]
        return
    event("parsed")
    # what parses is a valid record whose default rendering parses back to itself
    again = scope.parse(rec.render())
    assert again == rec
    for site in rec.sites:
        assert G.letter_rank(site.letter) <= G.letter_rank(G.general_wyckoff_letter(rec.spacegroup))


@fuzz
@given(st.text() | token_soup | near_valid_scope() | mutated_valid_scope())
@example("")
@example("|||")
@example("-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5")
@example("1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5")
@example("-F 4 2 3 | 4z | Na 1.0")
@example("\x00 | \u00a0 | \ud7ff")
def test_scope_parser_only_raises_scope_parse_error(text: str) -> None:
    _check_parse(text)


# -- tokenizer ---------------------------------------------------------------------------------------


@fuzz
@given(st.text() | token_soup | near_valid_scope() | mutated_valid_scope())
@example("")
@example(" | " * 100)
def test_tokenizer_never_fails_and_lengths_are_enforced_loudly(text: str) -> None:
    from cloudphys.modeling.encoding import tokenize

    ids = TOKENIZER([text])["input_ids"][0]
    assert ids[0] == TOKENIZER.cls_token_id and ids[-1] == TOKENIZER.sep_token_id
    assert all(0 <= i < len(VOCAB) for i in ids)
    try:
        (count,) = check_length(TOKENIZER, [text], ids=["fuzz"])
        assert count == len(ids) <= 64
    except SequenceTooLongError as exc:
        assert len(ids) > 64 and "fuzz" in str(exc)
    try:
        (row,) = tokenize(TOKENIZER, [text], ["fuzz"])
        assert row.tolist() == ids and TOKENIZER.unk_token_id not in ids
    except DataError as exc:
        assert "fuzz" in str(exc) and (len(ids) > 64 or TOKENIZER.unk_token_id in ids)


# -- config loader -----------------------------------------------------------------------------------

VALID: dict[str, Any] = {
    "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
    "head": {"name": "debye", "observables": ["cv"]},
    "data": {"name": "cloud-cv"},
    "train": {"epochs": 2, "lr": 1.0e-3},
    "pretrain": {"sources": [{"name": "cloud-pretrain"}]},
}
KEYS = {
    "train": [f.name for f in dataclasses.fields(TrainConfig)],
    "pretrain": [f.name for f in dataclasses.fields(PretrainConfig)],
    "encoder": [
        "name",
        "hidden_size",
        "num_layers",
        "num_heads",
        "dropout",
        "max_length",
        "composition_features",
        "intermediate_size",
        "pooling",
        "latent_mlp",
        "unknown_key",
    ],
    "head": ["name", "observables", "unknown_key"],
    "data": ["name", "temperature", "valid_size", "seed", "download", "unknown_key"],
}
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=8)
    | st.sampled_from(["scope-bert", "debye", "cloud-cv", "auto", "cv", "l1", "1e-3", "nan"])
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=6) | st.sampled_from(["name", "path", "column"]), inner, max_size=3)
    ),
    max_leaves=10,
)


@st.composite
def mutated_config(draw: st.DrawFn) -> dict[str, Any]:
    """A valid config with a few keys set to arbitrary values (reaches the deep checks)."""
    cfg = copy.deepcopy(VALID)
    plausible = {
        "epochs": st.integers(1, 5),
        "lr": st.floats(1e-5, 1.0),
        "hidden_size": st.sampled_from([8, 16, 32]),
        "seed": st.integers(0, 9),
        "observables": st.sampled_from([["cv"], ["cv", "u"], ["s"]]),
        "loss": st.sampled_from(["l1", "mse", "huber"]),
        "dropout": st.floats(0, 0.5),
    }
    if draw(st.booleans()):
        key = draw(st.sampled_from(sorted(plausible)))
        section = next(sec for sec in ("train", "encoder", "head") if key in KEYS[sec])
        cfg[section][key] = draw(plausible[key])
        return cfg
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from(sorted(KEYS) + [None]))
        if section is None:
            cfg[draw(st.sampled_from(list(VALID) + ["extra"]))] = draw(values)
        elif isinstance(cfg.get(section), dict):
            cfg[section][draw(st.sampled_from(KEYS[section]))] = draw(values)
    return cfg


any_mapping = st.dictionaries(st.sampled_from(list(VALID) + ["extra"]) | st.text(max_size=5), values, max_size=5)
overrides = st.lists(
    st.text(max_size=16)
    | st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(["train.lr", "train.epochs", "encoder.hidden_size", "head.name", "x", "train"]),
        st.text(max_size=8),
    ),
    max_size=3,
)


@fuzz
@given(mutated_config() | any_mapping, st.just([]) | overrides)
@example({"head": {"name": ["debye"]}, "encoder": "scope-bert"}, [])
@example(VALID, ["train.lr=nan"])
@example(VALID, ["train.lr"])
def test_config_loader_only_raises_config_error(raw: dict[str, Any], extra: list[str]) -> None:
    try:
        cfg = load_config(raw, overrides=extra)
    except ConfigError as exc:
        assert str(exc)
        event("refused")
        return
    event("valid")
    assert isinstance(cfg, Config)
    tc = cfg.train
    assert np.isfinite(tc.lr) and tc.lr > 0 and tc.epochs >= 1 and tc.batch_size >= 1
    assert load_config(cfg.to_dict()) == cfg  # what validated round-trips


# -- structure converter -----------------------------------------------------------------------------

special = st.sampled_from([0.0, float("nan"), float("inf"), -float("inf"), 1e-9, 1e12])
lattice_entries = st.floats(-12, 12) | special
coordinates = st.floats(0, 1) | st.floats(-2, 2) | st.sampled_from([float("nan"), 0.0, 0.5, 1.0, 1e30])


@st.composite
def random_cells(draw: st.DrawFn) -> Any:
    """Few atoms (cheap): a random or an orthorhombic lattice, random species and coordinates,
    as a spglib tuple or a pymatgen ``Structure.as_dict()`` dict."""
    n = draw(st.integers(0, 5))
    if draw(st.booleans()):
        lattice = np.diag(draw(st.tuples(*[st.floats(0.5, 12)] * 3))).tolist()
    else:
        lattice = draw(st.lists(st.lists(lattice_entries, min_size=3, max_size=3), min_size=3, max_size=3))
    positions = draw(st.lists(st.lists(coordinates, min_size=3, max_size=3), min_size=n, max_size=n))
    numbers = draw(st.lists(st.integers(1, 118) | st.integers(-2, 122), min_size=n, max_size=n))
    if draw(st.booleans()):
        return (lattice, positions, numbers)
    symbols = [G.ELEMENTS[z - 1] if 1 <= z <= len(G.ELEMENTS) else "Qq" for z in numbers]
    occu = draw(st.sampled_from([1, 1, 1, 0.5]))
    return {
        "lattice": {"matrix": lattice},
        "sites": [{"species": [{"element": el, "occu": occu}], "abc": p} for el, p in zip(symbols, positions)],
    }


@fuzz
@given(random_cells(), st.sampled_from([0.01, 0.1, 1e-5]))
@example(([[4, 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0], [0.5, float("nan"), 0.5]], [11, 17]), 0.01)
@example(([[float("inf"), 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0]], [11]), 0.01)
@example(([[4, 0, 0], [0, 4, 0], [0, 0, 4]], [[0, 0, 0], [0, 0, 0]], [11, 17]), 0.01)
def test_converter_only_raises_structure_error(cell: Any, symprec: float) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            rec = scope.from_structure(cell, symprec=symprec)
        except StructureError as exc:
            assert str(exc)
            event("refused")
            return
    event("converted")
    assert 1 <= rec.spacegroup <= 230
    assert scope.parse(rec.render()) == rec.canonical().rounded()  # the default dialect renders it canonical


def test_fuzz_tests_run_at_least_2000_examples() -> None:
    fuzzed = [
        test_scope_parser_only_raises_scope_parse_error,
        test_tokenizer_never_fails_and_lengths_are_enforced_loudly,
        test_config_loader_only_raises_config_error,
        test_converter_only_raises_structure_error,
    ]
    for fn in fuzzed:
        assert fn._hypothesis_internal_use_settings.max_examples == FUZZ_EXAMPLES  # type: ignore[attr-defined]
    if not os.environ.get("CLOUDPHYS_FUZZ_EXAMPLES"):
        assert FUZZ_EXAMPLES == (10_000 if os.environ.get("HYPOTHESIS_PROFILE") == "slow" else 2_000)
