"""Issue 12 §3: training on one data set, fine-tuning on another, and the leakage rule.

``train.exclude`` / ``pretrain.exclude`` remove crystals (canonical SCOPE strings), whatever dialect
or setting they are written in; ``train.init_from`` starts a run from a trained model, refusing one
that does not fit by name.
"""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch
from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys import scope
from cloudphys.config import load_config
from cloudphys.data import Examples
from cloudphys.errors import CheckpointError, ConfigError, DataError
from cloudphys.plugins import get_registry
from cloudphys.training import build_model, fit, train
from cloudphys.training.exclusion import drop_excluded, excluded_keys, leakage_key
from cloudphys.training.pretrain import collect_strings
from cloudphys.training.transfer import init_weights, member_source


def _rocksalt(shift: bool):
    from pymatgen.core import Lattice, Structure

    a, b = ("Cl", "Na") if shift else ("Na", "Cl")  # Na on 4b instead of 4a: an origin shift
    return Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), [a, b], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture(scope="module")
def table(data_root):
    return scope.load_generator_table(data_root / "cloud" / "generator.json")


def test_one_crystal_one_key_across_dialects_and_settings(table) -> None:
    a = scope.from_structure(_rocksalt(False))
    b = scope.from_structure(_rocksalt(True))
    written = {a.render("cloud", table), b.render("cloud", table, canonical=False), a.render(),
               b.render(canonical=False)}
    assert len(written) >= 3  # different texts ...
    assert len({leakage_key(t) for t in written}) == 1  # ... one crystal
    assert leakage_key("not a scope string ") == "not a scope string"  # unparseable: compared as written
    other = scope.from_structure(_rocksalt(False).replace_species({"Na": "K"}))
    assert leakage_key(other.render()) != leakage_key(a.render())


def _examples(strings: list[str]) -> Examples:
    n = len(strings)
    return Examples(ids=[f"m{i}" for i in range(n)], scope=strings, n_atoms=np.full(n, 2.0),
                    temperatures=np.array([300.0]), targets={"cv": np.full((n, 1), 40.0)}, dialect="cloud")


def test_drop_excluded_names_what_it_removed(table, tmp_path) -> None:
    a, b = scope.from_structure(_rocksalt(False)), scope.from_structure(_rocksalt(True))
    kcl = scope.from_structure(_rocksalt(False).replace_species({"Na": "K"}))
    ex = _examples([a.render("cloud", table), kcl.render("cloud", table), b.render("cloud", table, canonical=False)])
    held = tmp_path / "held.txt"
    held.write_text(b.render(canonical=False) + "\n")  # the crystal, written in the other dialect and setting
    keys = excluded_keys([{"path": str(held)}], get_registry(), "train")
    kept, removed = drop_excluded(ex, keys)
    assert removed == ["m0", "m2"] and kept.ids == ["m1"]
    assert kept.dialect == "cloud" and kept.targets["cv"].shape == (1, 1)
    assert drop_excluded(ex, set()) == (ex, [])


def test_pretrain_exclude_compares_crystals_not_bytes(table, tmp_path) -> None:
    a, b = scope.from_structure(_rocksalt(False)), scope.from_structure(_rocksalt(True))
    kcl = scope.from_structure(_rocksalt(False).replace_species({"Na": "K"}))
    src = tmp_path / "src.txt"
    src.write_text("\n".join([a.render("cloud", table), kcl.render("cloud", table)]) + "\n")
    held = tmp_path / "held.txt"
    held.write_text(b.render(canonical=False) + "\n")
    cfg = load_config({"encoder": {"name": "scope-bert"}, "head": {"name": "debye"},
                       "pretrain": {"sources": [{"path": str(src)}], "exclude": [{"path": str(held)}]}})
    got, info = collect_strings(cfg.pretrain, get_registry())
    assert got == [kcl.render("cloud", table)] and info["sources"][0] == {
        "source": {"path": str(src)}, "strings": 2, "kept": 1}


@pytest.fixture(scope="module")
def data(data_root):
    return {"train": cloud_examples(data_root, 48), "val": cloud_examples(data_root, 16, offset=48)}


def _cfg(**train):
    cfg = copy.deepcopy(TINY)
    cfg["train"] = {**cfg["train"], "epochs": 2, **train}
    return cfg


def test_train_exclude_leaves_out_train_and_val_crystals_and_records_counts(data, tmp_path) -> None:
    held = tmp_path / "held.txt"  # two training crystals and one validation crystal, canonicalised
    held.write_text("\n".join(scope.canonical_text(s, "default") for s in
                              [data["train"].scope[0], data["train"].scope[5], data["val"].scope[2]]) + "\n")
    dupes = sum(leakage_key(s) in {leakage_key(data["train"].scope[i]) for i in (0, 5)} for s in data["train"].scope)
    res = fit(_cfg(exclude=[{"path": str(held)}]), tmp_path / "run", tokenizer=tokenizer(), examples=data)
    got = res.model.meta["excluded"]
    assert got["strings"] == 3 and got["train"] == dupes >= 2 and got["val"] >= 1
    saved = json.loads((tmp_path / "run" / "model" / "cloudphys.json").read_text())
    assert saved["excluded"] == got
    everything = tmp_path / "all.txt"
    everything.write_text("\n".join(data["train"].scope) + "\n")
    with pytest.raises(DataError, match="train.exclude removes every training example"):
        fit(_cfg(exclude=[{"path": str(everything)}]), None, tokenizer=tokenizer(), examples=data)
    with pytest.raises(ConfigError, match=r"train\.exclude\[0\] needs 'name'"):
        load_config(_cfg(exclude=[{"split": "test"}]))


def test_init_from_copies_every_weight_and_refuses_what_does_not_fit(data, tmp_path) -> None:
    tok = tokenizer()
    src = fit(_cfg(seed=3), tmp_path / "src", tokenizer=tok, examples=data)
    model = build_model(load_config(_cfg(seed=9)), tokenizer=tok)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    info = init_weights(model, tmp_path / "src", get_registry(), "cloud")
    assert info["path"] == str(tmp_path / "src")
    sa, sb = model.state_dict(), src.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(before[k], sa[k]) for k in sa)
    # fine-tuning through fit: the run records its source and starts from its weights (lr 0: stays there)
    tuned = fit(_cfg(seed=9, init_from=str(tmp_path / "src"), lr=1e-12, latent_lr=1e-12, warmup=0.0),
                None, tokenizer=tok, examples=data)
    assert tuned.model.meta["init_from"]["path"] == str(tmp_path / "src")
    st = tuned.model.state_dict()
    assert all(torch.allclose(st[k], sb[k], rtol=0, atol=1e-6) for k in sb)
    # what does not fit is refused by name
    wider = copy.deepcopy(_cfg())
    wider["encoder"]["hidden_size"] = 32
    with pytest.raises(CheckpointError, match=r"wrong shape: .*embeddings"):
        init_weights(build_model(load_config(wider), tokenizer=tok), tmp_path / "src", get_registry(), "cloud")
    other = copy.deepcopy(_cfg())
    other["head"] = {"name": "direct", "observables": ["cv"]}
    with pytest.raises(CheckpointError, match="has head 'debye', this run 'direct'"):
        init_weights(build_model(load_config(other), tokenizer=tok), tmp_path / "src", get_registry(), "cloud")
    with pytest.raises(CheckpointError, match="trained on cloud-dialect SCOPE strings, this run's data are default"):
        init_weights(build_model(load_config(_cfg()), tokenizer=tok), tmp_path / "src", get_registry(), "default")
    with pytest.raises(CheckpointError, match="does not exist"):
        init_weights(model, tmp_path / "nowhere", get_registry(), "cloud")
    with pytest.raises(ConfigError, match="train.init_from is empty"):
        load_config(_cfg(init_from=" "))


def test_ensemble_members_start_from_the_members_of_an_ensemble(data, tmp_path) -> None:
    tok = tokenizer()
    train(_cfg(ensemble=2, epochs=1), tmp_path / "src", tokenizer=tok, examples=data)
    assert member_source(tmp_path / "src", 0) == tmp_path / "src" / "member-0"
    assert member_source(tmp_path / "src", 3) == tmp_path / "src" / "member-1"
    assert member_source(tmp_path / "x", 5) == tmp_path / "x"
    res = train(_cfg(ensemble=3, epochs=1, init_from=str(tmp_path / "src")), tmp_path / "tuned", tokenizer=tok,
                examples=data)
    got = [m.model.meta["init_from"]["path"] for m in res.members]
    assert got == [str(tmp_path / "src" / f"member-{k}") for k in (0, 1, 0)]


def test_extra_data_joins_the_training_split_only(data, data_root, tmp_path) -> None:
    from cloudphys.training.batching import concat, load_extra, take

    reg = get_registry()
    base = data["train"]
    entry = {"name": "phonondb-thermo", "split": "val", "dialect": "cloud", "observables": ["cv", "s"],
             "temperatures": [300], "limit": 12}
    joined, counts = load_extra([entry], base, reg)
    assert counts == [{"source": entry, "examples": 12, "duplicates": 0}] and len(joined) == len(base) + 12
    assert joined.ids[: len(base)] == base.ids and joined.dialect == "cloud"
    assert np.isnan(joined.targets["s"][: len(base)]).all()  # CLOUD has no entropy: missing labels
    assert np.isfinite(joined.targets["cv"]).all()
    assert joined.n_atoms_primitive is None  # neither set records atoms per primitive cell apart from n_atoms
    assert concat(base, base).targets["cv"].shape == (2 * len(base), 1)
    # from the training split's own data set: only the examples it does not hold already
    own_entry = {**entry, "limit": 20}
    first = take(joined, np.arange(len(base), len(base) + 8))
    again, counts = load_extra([own_entry], first, reg, base_name="phonondb-thermo")
    assert counts[0]["duplicates"] == 8 and counts[0]["examples"] == 12 and len(set(again.ids)) == 20
    with pytest.raises(DataError, match=r"extra_data\[0\] 'phonondb-thermo' has temperatures \[300.0, 400.0\]"):
        load_extra([{**entry, "temperatures": [300, 400]}], base, reg)
    with pytest.raises(DataError, match="has default-dialect strings, the training split cloud"):
        load_extra([{**entry, "dialect": "default"}], base, reg)
    with pytest.raises(ConfigError, match=r"train\.extra_data\[0\] must be a mapping"):
        load_config(_cfg(extra_data=["phonondb-thermo"]))
    # through fit: the extra examples are trained on, validation stays CLOUD's; counts in the metadata
    res = fit(_cfg(extra_data=[entry]), tmp_path / "joint", tokenizer=tokenizer(), examples=data)
    assert res.model.meta["extra_data"] == [{"source": entry, "examples": 12, "duplicates": 0}]
    assert res.history[-1]["samples_per_s"] > 0 and len(res.history) == 2
    # the MAD of evaluate is against the config's own training mean, not the joined one
    own = fit(_cfg(), None, tokenizer=tokenizer(), examples=data).model.meta["target_stats"]["observables"]["cv"]
    joint = res.model.meta["target_stats"]["observables"]["cv"]
    assert joint["mean"] == pytest.approx(own["mean"]) and joint["scale_per_atom"] != own["scale_per_atom"]
