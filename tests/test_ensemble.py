"""Seed ensembles (train.ensemble): members, averaged latents, loading, resume, refusals."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys import load_model
from cloudphys.config import load_config
from cloudphys.errors import CheckpointError, ConfigError
from cloudphys.modeling.encoding import collate, encode
from cloudphys.modeling.ensemble import EnsembleEncoder
from cloudphys.modeling.format import ENSEMBLE_FILE, FORMAT_VERSION, is_ensemble_dir
from cloudphys.training import ScopePhysicsModel, evaluate_model
from cloudphys.training import train as fit  # one model or an ensemble, as the config asks


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


@pytest.fixture(scope="module")
def data(data_root: Path):
    return {"train": cloud_examples(data_root, 32), "val": cloud_examples(data_root, 16, offset=32)}


def _cfg(k: int, epochs: int = 2) -> dict:
    cfg = copy.deepcopy(TINY)
    cfg["train"].update(ensemble=k, epochs=epochs, seed=3)
    return cfg


def _batch(model: ScopePhysicsModel, ex, tok):
    enc = encode(ex, model, ["cv"])
    return collate(enc, np.arange(len(enc)), tok.pad_token_id)


def test_ensemble_averages_its_members_latents(tmp_path: Path, tok, data) -> None:
    run = tmp_path / "ens"
    res = fit(_cfg(3), run, tokenizer=tok, examples=data)
    assert is_ensemble_dir(run) and len(res.members) == 3
    manifest = json.loads((run / ENSEMBLE_FILE).read_text())
    assert manifest == {"format": FORMAT_VERSION, "members": ["member-0", "member-1", "member-2"], "seeds": [3, 4, 5],
                        "complete": ["member-0", "member-1", "member-2"]}
    for k in range(3):
        assert (run / f"member-{k}" / "model" / "model.safetensors").is_file()
        assert load_config((run / f"member-{k}" / "config.yaml")).train.seed == 3 + k

    # each member is the single run of its seed: same weights as training that seed alone
    alone = fit(dict(_cfg(1), train={**_cfg(1)["train"], "seed": 4}), None, tokenizer=tok, examples=data)
    pairs = zip(res.members[1].model.encoder.state_dict().items(), alone.model.encoder.state_dict().items())
    for (name, a), (_, b) in pairs:
        assert torch.equal(a, b), name

    loaded = load_model(run)
    assert isinstance(loaded.encoder, EnsembleEncoder) and loaded.meta["ensemble"]["seeds"] == [3, 4, 5]
    b = _batch(loaded, data["val"], tok)
    with torch.no_grad():
        obs, lat = loaded(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"])
        singles = [ScopePhysicsModel.from_pretrained(run / f"member-{k}").latents(
                       b["input_ids"], b["attention_mask"], b["features"]) for k in range(3)]
        mean = torch.stack([s["theta_D"] for s in singles]).mean(0)
        torch.testing.assert_close(lat["theta_D"], mean)
        # the head is evaluated once on the mean latent: curves stay those of one Debye solid
        direct = loaded.head(latents={"theta_D": mean}, temperature=b["temperature"], n_atoms=b["n_atoms"])
        torch.testing.assert_close(obs["cv"], direct["cv"])
    spread = torch.stack([s["theta_D"] for s in singles]).std(0)
    assert float(spread.max()) > 0  # the members really differ

    m = evaluate_model(loaded, data["val"], device="cpu")
    assert m["observables"]["cv"]["count"] == 16 and np.isfinite(m["mae"])
    with pytest.raises(CheckpointError, match="ensemble"):
        loaded.save_pretrained(tmp_path / "nope")


def test_ensemble_resume_skips_complete_members(tmp_path: Path, tok, data) -> None:
    run = tmp_path / "ens"
    fit(_cfg(2), run, tokenizer=tok, examples=data)
    before = {k: v.clone() for k, v in ScopePhysicsModel.from_pretrained(run / "member-0").encoder.state_dict().items()}
    # pretend member-1 never finished: it is retrained from its last checkpoint, member-0 is left alone
    manifest = json.loads((run / ENSEMBLE_FILE).read_text())
    manifest["complete"] = ["member-0"]
    (run / ENSEMBLE_FILE).write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="incomplete"):
        load_model(run)
    res = fit(_cfg(2), run, tokenizer=tok, examples=data, resume=True)
    after = ScopePhysicsModel.from_pretrained(run / "member-0").encoder.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert json.loads((run / ENSEMBLE_FILE).read_text())["complete"] == ["member-0", "member-1"]
    assert isinstance(res.model.encoder, EnsembleEncoder)

    with pytest.raises(CheckpointError, match="already holds an ensemble"):
        fit(_cfg(2), run, tokenizer=tok, examples=data)
    with pytest.raises(CheckpointError, match="seeds"):
        fit(_cfg(3), run, tokenizer=tok, examples=data, resume=True)


def test_ensemble_config_and_bad_manifests(tmp_path: Path, tok, data) -> None:
    with pytest.raises(ConfigError, match="train.ensemble"):
        load_config(dict(_cfg(1), train={**_cfg(1)["train"], "ensemble": 0}))
    run = tmp_path / "ens"
    run.mkdir()
    (run / ENSEMBLE_FILE).write_text(json.dumps({"members": ["../elsewhere"]}))
    with pytest.raises(CheckpointError, match="inside"):
        load_model(run)
    (run / ENSEMBLE_FILE).write_text("{not json")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(run)
    single = tmp_path / "single"
    fit(_cfg(1, epochs=1), single, tokenizer=tok, examples=data)
    with pytest.raises(CheckpointError, match="single-model run"):
        fit(_cfg(2), single, tokenizer=tok, examples=data)


def test_parallel_members_train_the_same_members_in_worker_processes(tmp_path: Path, tok, data) -> None:
    cfg = _cfg(3)
    cfg["train"]["num_threads"] = 1  # the same thread count in the workers and here: bit-identical runs
    one_by_one = fit(cfg, tmp_path / "seq", tokenizer=tok, examples=data)
    rows: list[dict] = []
    par_cfg = copy.deepcopy(cfg)
    par_cfg["train"]["parallel_members"] = 2
    par = fit(par_cfg, tmp_path / "par", tokenizer=tok, examples=data, callbacks=[rows.append])
    manifest = json.loads((tmp_path / "par" / ENSEMBLE_FILE).read_text())
    assert manifest["complete"] == ["member-0", "member-1", "member-2"] and manifest["seeds"] == [3, 4, 5]
    for a, b in zip(one_by_one.members, par.members):
        sa, sb = a.model.state_dict(), b.model.state_dict()
        assert sa.keys() == sb.keys()
        for name in sa:
            assert torch.equal(sa[name], sb[name]), name
        keys = ("epoch", "step", "train_loss", "lr", "val_loss", "val_mae_over_mad")  # all but the timings
        assert [{k: r[k] for k in keys} for r in a.history] == [{k: r[k] for k in keys} for r in b.history]
    # the callbacks got every member's rows once its worker finished
    assert sorted((r["member"], r["epoch"]) for r in rows) == [(m, e) for m in range(3) for e in (1, 2)]
    e1 = evaluate_model(one_by_one.model, data["val"])
    e2 = evaluate_model(par.model, data["val"])
    assert e1["mae_over_mad"] == e2["mae_over_mad"]
    # the run directory is an ordinary ensemble: load_model reads it, --resume skips its members
    again = fit(par_cfg, tmp_path / "par", tokenizer=tok, examples=data, resume=True)
    assert [m.epochs_run for m in again.members] == [2, 2, 2]
    assert load_model(tmp_path / "par").encoder.__class__ is EnsembleEncoder


def test_parallel_members_refusals_and_a_failing_member(tmp_path: Path, tok, data) -> None:
    cfg = _cfg(2)
    cfg["train"]["parallel_members"] = 2
    with pytest.raises(ConfigError, match="parallel_members=2 needs a run directory"):
        fit(cfg, None, tokenizer=tok, examples=data)
    with pytest.raises(ConfigError, match="parallel_members"):
        load_config({**cfg, "train": {**cfg["train"], "parallel_members": 0}})
    bad = copy.deepcopy(cfg)
    bad["encoder"]["max_length"] = 4  # every string is too long: each worker's fit fails
    with pytest.raises(Exception, match="too long|longer|max_length") as info:
        fit(bad, tmp_path / "bad", tokenizer=tok, examples=data)
    notes = " ".join(getattr(info.value, "__notes__", []))
    if hasattr(info.value, "add_note"):
        assert "in ensemble member member-" in notes and "--resume" in notes
    assert json.loads((tmp_path / "bad" / ENSEMBLE_FILE).read_text())["complete"] == []
