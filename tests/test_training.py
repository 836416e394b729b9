"""End to end: train a tiny model → save → load → evaluate / predict; resume; reproducibility."""

from __future__ import annotations

import copy
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys.config import load_config
from cloudphys.config.temperatures import parse_temperatures
from cloudphys.modeling.encoding import collate, encode
from cloudphys.models.api import Model
from cloudphys.training import ScopePhysicsModel, evaluate_model, fit
from cloudphys.training.batching import batch_indices


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


@pytest.fixture(scope="module")
def data(data_root: Path):
    return {"train": cloud_examples(data_root, 48), "val": cloud_examples(data_root, 16, offset=48)}


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_train_save_load_predict(tmp_path: Path, tok, data, data_root: Path) -> None:
    run = tmp_path / "run"
    res = fit(TINY, run, tokenizer=tok, examples=data)
    assert res.epochs_run == 3 and len(res.history) == 3
    for name in ("config.yaml", "metrics.jsonl", "metrics.csv", "model/config.json", "model/model.safetensors",
                 "model/head.json", "model/cloudphys.json", "model/tokenizer.json", "last/optimizer.safetensors"):
        assert (run / name).is_file(), name
    assert not list(run.rglob("*.bin")) and not list(run.rglob("*.pt")) and not list(run.rglob("*.pkl"))
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and all(np.isfinite(r["val_loss"]) for r in rows)

    loaded = ScopePhysicsModel.from_pretrained(run)
    enc = encode(data["val"], loaded, ["cv"])
    b = collate(enc, np.arange(len(enc)), tok.pad_token_id)
    with torch.no_grad():
        a, lat_a = res.model(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"])
        c, lat_c = loaded(b["input_ids"], b["attention_mask"], b["temperature"], b["n_atoms"], b["features"])
    assert torch.equal(a["cv"], c["cv"]) and torch.equal(lat_a["theta_D"], lat_c["theta_D"])
    assert ((lat_c["theta_D"] >= 1) & (lat_c["theta_D"] <= 5000)).all()

    m = evaluate_model(loaded, data["val"], device="cpu")
    cv = m["observables"]["cv"]
    assert cv["count"] == 16 and cv["mae"] > 0 and cv["mad"] > 0
    assert cv["mae_over_mad"] == pytest.approx(cv["mae"] / cv["mad"])

    # predict: a CSV of SCOPE strings (one broken row) and a file that does not exist
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "scope", "n_atoms"])
        w.writerow(["good", data["val"].scope[0], data["val"].n_atoms[0]])
        w.writerow(["bad-n", data["val"].scope[1], "-3"])
    T = parse_temperatures("5:1000:5")
    assert T[0] == 5 and T[-1] == 1000 and len(T) == 200
    pred = Model(loaded).predict([src, tmp_path / "missing.cif"], T, observables=["cv"], device="cpu")
    names = [it.name for it in pred.items]
    assert names[0] == "good" and pred.items[0].error is None
    cvs = pred.observables["cv"][0]
    assert cvs.shape == (200,) and np.isfinite(cvs).all()
    assert np.all(np.diff(cvs) >= -1e-6) and np.all(cvs <= 3 * data["val"].n_atoms[0] * 8.3145)
    assert np.isfinite(pred.latents["theta_D"][0]).all()
    errors = {it.name: it.error for it in pred.items if it.error}
    # a missing file is named by the path given (cloudphys.inputs); the bad row by its id
    assert set(errors) == {"bad-n", str(tmp_path / "missing.cif")} and "n_atoms" in errors["bad-n"]
    assert np.isnan(pred.observables["cv"][1:]).all()  # nothing predicted for the failed inputs


@pytest.mark.parametrize("ema", [0.0, 0.9])
def test_resume_matches_an_uninterrupted_run(tmp_path: Path, tok, data, ema: float) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["train"]["epochs"] = 4
    cfg["train"]["ema"] = ema
    straight = fit(cfg, tmp_path / "a", tokenizer=tok, examples=data)

    class Stop(Exception):
        pass

    def interrupt(row: dict) -> None:
        if row["epoch"] == 2:
            raise Stop

    with pytest.raises(Stop):
        fit(cfg, tmp_path / "b", tokenizer=tok, examples=data, callbacks=[interrupt])
    with pytest.raises(Exception, match="resume"):
        fit(cfg, tmp_path / "b", tokenizer=tok, examples=data)
    resumed = fit(cfg, tmp_path / "b", tokenizer=tok, examples=data, resume=True)
    assert resumed.epochs_run == 4
    wa, wb = _weights(straight.model), _weights(resumed.model)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    la = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    lb = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    strip = lambda s: {k: v for k, v in json.loads(s).items() if k not in ("time_s", "samples_per_s")}  # noqa: E731
    assert [strip(x) for x in la] == [strip(x) for x in lb]


def test_weight_average_follows_the_update_rule_and_swaps_back() -> None:
    from cloudphys.training.ema import WeightAverage, averaged

    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    start = _weights(m)
    ema = WeightAverage(m, 0.5)
    assert "1.num_batches_tracked" not in ema.names  # integer buffers are not averaged
    expected = {k: v.clone() for k, v in start.items() if v.is_floating_point()}
    for n in range(1, 6):
        with torch.no_grad():
            for p in m.parameters():
                p.add_(torch.randn_like(p))
        d = min(0.5, (1 + n) / (10 + n))
        assert ema.current_decay() == pytest.approx(d)
        ema.update()
        now = _weights(m)
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * now[k]
    trained = _weights(m)
    with averaged(ema):
        inside = _weights(m)
        for k in expected:
            torch.testing.assert_close(inside[k], expected[k], rtol=1e-6, atol=1e-7)
    assert all(torch.equal(v, trained[k]) for k, v in _weights(m).items())
    with averaged(None):
        assert all(torch.equal(v, trained[k]) for k, v in _weights(m).items())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(m, 1.0)


def test_ema_run_saves_and_validates_the_average(tmp_path: Path, tok, data) -> None:
    from cloudphys.training.ema import EMA_FILE

    cfg = copy.deepcopy(TINY)
    cfg["train"].update(ema=0.9, patience=0)
    res = fit(cfg, tmp_path / "r", tokenizer=tok, examples=data)
    run = tmp_path / "r"
    best = ScopePhysicsModel.from_pretrained(run / "model")
    last = ScopePhysicsModel.from_pretrained(run / "last")
    from safetensors.torch import load_file

    avg = load_file(str(run / "last" / EMA_FILE))
    if res.best_epoch == res.epochs_run:  # model/ is the average of the last epoch's step
        wb = _weights(best)
        assert all(torch.equal(wb[k], v) for k, v in avg.items())
    wl = _weights(last)
    assert any(not torch.equal(wl[k], v) for k, v in avg.items())  # last/ keeps the trained weights
    # the logged validation loss is that of the returned (averaged) model
    ev = evaluate_model(res.model, data["val"])
    row = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()][res.best_epoch - 1]
    assert ev["mae_over_mad"] == pytest.approx(row["val_mae_over_mad"], rel=1e-5)
    plain = fit(TINY, None, tokenizer=tok, examples=data)
    assert [h["train_loss"] for h in plain.history] == [h["train_loss"] for h in res.history]  # same steps
    assert [h["val_loss"] for h in plain.history] != [h["val_loss"] for h in res.history]


def test_seeded_and_leaves_global_rng_alone(tok, data) -> None:
    torch.manual_seed(123)
    before = torch.get_rng_state()
    r1 = fit(TINY, None, tokenizer=tok, examples=data)
    assert torch.equal(torch.get_rng_state(), before)
    r2 = fit(TINY, None, tokenizer=tok, examples=data)
    assert [h["val_loss"] for h in r1.history] == [h["val_loss"] for h in r2.history]
    cfg = copy.deepcopy(TINY)
    cfg["train"]["seed"] = 1
    r3 = fit(cfg, None, tokenizer=tok, examples=data)
    assert [h["val_loss"] for h in r3.history] != [h["val_loss"] for h in r1.history]


def test_direct_head_trains_and_early_stopping(tok, data) -> None:
    cfg = copy.deepcopy(TINY)
    cfg["head"] = {"name": "direct", "observables": ["cv"]}
    cfg["train"].update(epochs=30, patience=2, lr=0.05, warmup=0.0)
    res = fit(cfg, None, tokenizer=tok, examples=data)
    assert res.epochs_run < 30 and res.best_epoch <= res.epochs_run
    assert res.model.head.center["cv"] > 0  # fitted to the per-atom training targets
    m = evaluate_model(res.model, data["val"], device="cpu")
    assert 0 < m["mae_over_mad"] < 3


def test_dynamic_padding_and_ddp_batch_split(tok, data) -> None:
    from _training_helpers import TINY as cfg

    from cloudphys.training import build_model

    model = build_model(load_config(cfg), tokenizer=tok)
    enc = encode(data["train"], model, ["cv"])
    b = collate(enc, np.array([0, 1, 2]), tok.pad_token_id)
    lengths = [len(enc.input_ids[i]) for i in range(3)]
    assert b["input_ids"].shape == (3, max(lengths)) and b["attention_mask"].sum().item() == sum(lengths)
    full = list(batch_indices(10, 4, shuffle=True, seed=0, epoch=1))
    r0 = list(batch_indices(10, 4, shuffle=True, seed=0, epoch=1, rank=0, world=2))
    r1 = list(batch_indices(10, 4, shuffle=True, seed=0, epoch=1, rank=1, world=2))
    assert len(r0) == len(r1) == 3
    assert sorted(np.concatenate(r0 + r1).tolist()) == sorted(np.concatenate(full).tolist())


def test_too_long_string_is_an_error_naming_it(tok, data) -> None:
    from cloudphys.errors import DataError
    from cloudphys.training import build_model

    short = tokenizer(8)
    model = build_model(load_config(TINY), tokenizer=short)
    with pytest.raises(DataError, match="row0"):
        encode(data["train"], model, ["cv"])
    # a tokenizer longer than the encoder's encoder.max_length positions: the same error by name
    # (not a shape error in the embeddings), and the caller's tokenizer is left as it was
    cfg = copy.deepcopy(TINY)
    cfg["encoder"]["max_length"] = 8
    model = build_model(load_config(cfg), tokenizer=tok)
    assert model.tokenizer.model_max_length == 8 and tok.model_max_length == 256
    with pytest.raises(DataError, match="row0.*max_length 8"):
        encode(data["train"], model, ["cv"])
    # the encoder's default length (256 positions, no max_length given) caps a longer tokenizer too
    assert build_model(load_config(TINY), tokenizer=tokenizer(512)).tokenizer.model_max_length == 256


def test_predict_cli_on_structures(tmp_path: Path, tok, data, data_root: Path, capsys) -> None:
    import gzip

    from pymatgen.core import Lattice, Structure

    from cloudphys.cli import main

    fit(TINY, tmp_path / "run", tokenizer=tok, examples=data)
    cif = tmp_path / "NaCl.cif"
    nacl = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    nacl.to(filename=str(cif))
    with gzip.open(data_root / "phonondb-thermo" / "materials.jsonl.gz", "rt") as fh:
        line = fh.readline()
    (tmp_path / "m.jsonl").write_text(line + "{not json}\n")
    (tmp_path / "bad.cif").write_text("garbage")
    out = tmp_path / "p.csv"
    rc = main(["predict", str(tmp_path / "run"), "--input", str(cif), str(tmp_path / "m.jsonl"),
               str(tmp_path / "bad.cif"),
               "-T", "10:300:10", "-o", str(out), "--plot", str(tmp_path / "p.png"), "--dialect", "cloud"])
    # exit 1: some inputs failed (cli/predict_cmd.py); their error rows are still written
    assert rc == 1 and (tmp_path / "p.png").stat().st_size > 0
    with open(out) as fh:
        rows = list(csv.DictReader(fh))  # the first line is the header
    ids = [Path(r["id"]).name if r["id"].endswith(".cif") else r["id"] for r in rows]
    assert ids.count("NaCl.cif") == 30 and sum(json.loads(line)["id"] in i for i in ids) == 30
    nacl = [r for r, i in zip(rows, ids) if i == "NaCl.cif"]
    assert nacl[0]["n_atoms"] in ("8", "8.0") and all(not r["error"] for r in nacl) and float(nacl[0]["theta_D_K"]) > 1
    errs = {i: r["error"] for r, i in zip(rows, ids) if r["error"]}
    assert "bad.cif" in errs and any("JSON" in e for e in errs.values())


def _loss_inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    names = ("cv", "s", "u")
    pred = {k: torch.rand(5, 4, generator=g, dtype=torch.float64) for k in names}
    targets = {k: torch.rand(5, 4, generator=g, dtype=torch.float64) for k in names}
    targets["s"][0, 1] = float("nan")  # a missing label
    n_atoms = torch.tensor([1.0, 2.0, 3.0, 4.0, 8.0], dtype=torch.float64)
    stats = {"observables": {"cv": {"extensive": True, "scale_per_atom": 2.0},
                             "s": {"extensive": True, "scale_per_atom": 3.0},
                             "u": {"extensive": True, "scale_per_atom": 500.0}}}
    return pred, targets, n_atoms, stats


@pytest.mark.parametrize("kind", ["l1", "mse", "huber"])
def test_loss_weights_give_the_weighted_mean_over_observables(kind: str) -> None:
    from cloudphys.training.losses import loss

    pred, targets, n_atoms, stats = _loss_inputs()
    single = {k: float(loss({k: pred[k]}, {k: targets[k]}, n_atoms, stats, kind)) for k in targets}
    plain = float(loss(pred, targets, n_atoms, stats, kind))
    assert plain == pytest.approx(sum(single.values()) / 3, rel=1e-12)
    assert float(loss(pred, targets, n_atoms, stats, kind, {})) == plain  # no weights: the plain mean
    assert float(loss(pred, targets, n_atoms, stats, kind, {"cv": 1.0, "s": 1.0})) == pytest.approx(plain, rel=1e-12)
    got = float(loss(pred, targets, n_atoms, stats, kind, {"cv": 2.0, "u": 0.5}))
    assert got == pytest.approx((2 * single["cv"] + single["s"] + 0.5 * single["u"]) / 3.5, rel=1e-12)
    # weight 0 leaves an observable out entirely
    drop = float(loss(pred, targets, n_atoms, stats, kind, {"s": 0.0}))
    assert drop == pytest.approx((single["cv"] + single["u"]) / 2, rel=1e-12)
    # the gradient of a weight-0 observable's predictions is zero
    p = {k: v.clone().requires_grad_(True) for k, v in pred.items()}
    loss(p, targets, n_atoms, stats, kind, {"s": 0.0}).backward()
    assert torch.count_nonzero(p["s"].grad) == 0 and torch.count_nonzero(p["cv"].grad) > 0


def test_loss_weights_are_checked_against_the_observables(tok, data) -> None:
    from cloudphys.errors import ConfigError, DataError
    from cloudphys.training.losses import check_loss_weights, loss

    check_loss_weights({}, ["cv"])
    check_loss_weights({"cv": 0.0, "s": 2.0}, ["cv", "s"])
    with pytest.raises(ConfigError, match="'u'.*its observables: cv, s"):
        check_loss_weights({"u": 1.0}, ["cv", "s"])
    with pytest.raises(ConfigError, match="weight 0"):
        check_loss_weights({"cv": 0.0}, ["cv"])
    pred, targets, n_atoms, stats = _loss_inputs()
    with pytest.raises(DataError, match="weight 0"):
        loss({"s": pred["s"]}, {"s": targets["s"]}, n_atoms, stats, "l1", {"s": 0.0})
    with pytest.raises(ConfigError, match=r"loss_weights\['cv'\] must be a finite number >= 0"):
        load_config({**TINY, "train": {**TINY["train"], "loss_weights": {"cv": -1}}})
    cfg = copy.deepcopy(TINY)
    cfg["train"]["loss_weights"] = {"s": 1.0}  # the run trains on cv only
    with pytest.raises(ConfigError, match="'s'"):
        fit(cfg, None, tokenizer=tok, examples=data)
    # one observable: any positive weight gives the same loss, so the same run
    cfg["train"]["loss_weights"] = {"cv": 3.0}
    weighted = fit(cfg, None, tokenizer=tok, examples=data)
    plain = fit(TINY, None, tokenizer=tok, examples=data)
    assert [h["val_loss"] for h in weighted.history] == pytest.approx([h["val_loss"] for h in plain.history],
                                                                      rel=1e-6)
