"""End to end through the command line, with tiny models on real data.

1. ``cloudphys pretrain`` (MLM) writes an encoder directory; ``cloudphys train`` with
   ``encoder.pretrained=DIR`` starts from exactly those weights.
2. ``cloudphys evaluate RUN --split test`` on phonondb-thermo curves: the metrics JSON, per-temperature
   entries and how they add up; the 300 K → whole-curve temperature transfer.
3. docs/data.md's "Training on your own phonopy calculations", step by step, on the Si and MgO
   archives of ``phonondb-raw-sample/``: phonopy → ``data from-phonopy`` → split file → the docs'
   config → ``train`` → ``predict``; rows of ``build-phonondb`` (on a ``--meta`` grid) mixed in; an
   empty ``val`` split.
4. ``pretrain.sources`` / ``exclude`` entries naming a data set that takes ``path`` (``corpus-csv``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from cloudphys.cli import main
from cloudphys.data.phonondb_build import PHONONDB_GRID
from cloudphys.errors import DataError

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
TINY_ENCODER = ["encoder.hidden_size=16", "encoder.num_layers=1", "encoder.num_heads=2"]
QUIET = ["train.num_threads=1", "train.progress=false"]
CURVE_T = [t for t in PHONONDB_GRID if 20 <= t <= 1000]  # the 24 grid points of temperature_range [20, 1000]


def cli(*argv: object) -> str:
    """Run ``cloudphys ARGV`` in-process; returns stdout, fails with stderr on a non-zero exit."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in argv])
    assert rc == 0, f"cloudphys {' '.join(map(str, argv))} exited {rc}:\n{err.getvalue()}"
    return out.getvalue()


@pytest.fixture(scope="module", autouse=True)
def _scope_cache(tmp_path_factory):
    """One private SCOPE cache for the module (phonondb-thermo's test split is converted once)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLOUDPHYS_CACHE", str(tmp_path_factory.mktemp("scope-cache")))
        yield


# -- 1. MLM pretraining, then fine-tuning from it ----------------------------------------------
@pytest.fixture(scope="module")
def pretrained(data_root, tmp_path_factory):
    """``cloudphys pretrain configs/cloud-pretrain.yaml`` on 48 of CLOUD's unlabelled strings."""
    work = tmp_path_factory.mktemp("pretrain")
    with open(data_root / "cloud" / "pretrain_cloud_10k.csv", newline="") as fh:
        strings = [r["cloud"] for r in csv.DictReader(fh)][:48]
    with open(data_root / "cloud" / "cloud_cv_test.csv", newline="") as fh:
        test_string = next(csv.DictReader(fh))["cloud"]
    corpus = work / "corpus.csv"
    with open(corpus, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scope"])
        w.writerows([s] for s in [*strings, test_string])  # the config excludes cloud-cv:test strings
    out = work / "pretrained"
    summary = json.loads(cli(
        "pretrain", CONFIGS / "cloud-pretrain.yaml", "--out", out, "-s", *TINY_ENCODER,
        f"pretrain.sources=[{{path: {corpus}}}]", "pretrain.epochs=8", "pretrain.batch_size=8", "pretrain.lr=3e-3",
        "pretrain.val_fraction=0.25", "pretrain.num_threads=1", "pretrain.progress=false",
    ))
    return out, summary


def _pretrained_bert_state(path: Path) -> dict:
    """The BERT trunk's tensors as ``cloudphys pretrain`` saved them (read straight from the file)."""
    from safetensors.torch import load_file

    saved = load_file(str(path / "model" / "model.safetensors"))  # pretrain --out DIR: the encoder is DIR/model
    assert any(k.startswith("cls.predictions.") for k in saved)  # a BertForMaskedLM: trunk + MLM head
    return {k.removeprefix("bert."): v for k, v in saved.items() if k.startswith("bert.")}


def test_pretrain_writes_an_encoder_and_the_mlm_loss_falls(pretrained):
    out, summary = pretrained
    for name in ("model/config.json", "model/model.safetensors", "model/tokenizer.json", "pretrain.json",
                 "last/optimizer.safetensors", "metrics.jsonl", "config.yaml"):
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt"))
    info = json.loads((out / "pretrain.json").read_text())
    # 49 strings read, the one from CLOUD's Cv test split excluded
    assert summary["corpus"] == 48 and info["corpus"]["sources"][0]["strings"] == 49
    assert info["corpus"]["sources"][0]["kept"] == 48 and info["corpus"]["excluded_strings"] > 0
    assert summary["steps"] == 8 * 5  # 36 training strings (12 held out), batches of 8
    hist = info["history"]
    assert [h["epoch"] for h in hist] == list(range(1, 9))
    train = np.array([h["train_mlm_loss"] for h in hist])
    val = np.array([h["val_mlm_loss"] for h in hist])
    assert np.isfinite(train).all() and np.isfinite(val).all()
    # validation masks are fixed, so the held-out MLM loss is comparable across epochs
    assert val[-1] < val[0] and train[-1] < train[0]


def test_finetuning_starts_from_the_pretrained_encoder(pretrained, tmp_path):
    from cloudphys.config import load_config
    from cloudphys.training import ScopePhysicsModel, build_model

    out, _ = pretrained
    want = _pretrained_bert_state(out)
    # the fine-tuning command of configs/cloud-pretrain.yaml's header: sizes come from the pretrained
    # encoder (16 wide, 1 layer), not from cloud-cv-debye.yaml (128, 2)
    override = f"encoder.pretrained={out}"
    model = build_model(load_config(CONFIGS / "cloud-cv-debye.yaml", overrides=[override]))
    assert model.encoder.config.hidden_size == 16 and model.encoder.config.num_hidden_layers == 1
    got = model.encoder.bert.state_dict()
    assert got.keys() == want.keys()
    assert all(np.array_equal(got[k].numpy(), want[k].numpy()) for k in want)  # element_init did not overwrite them

    # one optimizer step of AdamW moves each weight by at most ~lr: the run started from `want`
    lr = 1e-4
    run = tmp_path / "run"
    res = json.loads(cli(
        "train", CONFIGS / "cloud-cv-debye.yaml", "--out", run, "-s", override, "train.limit=32", "train.epochs=1",
        "train.max_steps=1", f"train.lr={lr}", f"train.latent_lr={lr}", *QUIET,
    ))
    assert res["epochs_run"] == 1 and np.isfinite(res["best_val_loss"])
    for name in ("model/config.json", "model/model.safetensors", "model/head.json", "model/cloudphys.json"):
        assert (run / name).is_file(), name
    tuned = ScopePhysicsModel.from_pretrained(run).encoder.bert.state_dict()
    step = {k: float((tuned[k] - want[k]).abs().max()) for k in want}
    assert max(step.values()) <= 1.05 * lr, max(step.items(), key=lambda kv: kv[1])
    assert max(step.values()) > 0.5 * lr  # and it did train


# -- 2. evaluate on curves ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def curve_run(data_root, tmp_path_factory):
    """configs/phonondb-curves-debye.yaml (cv, s, u over 20-1000 K), tiny, 32 materials a split.

    ``data.limit``, not ``train.limit``: the latter cuts the train split only after all of it (4,122
    structures, ~18 s cold) has been converted, and leaves val whole.
    """
    run = tmp_path_factory.mktemp("curves") / "run"
    cli("train", CONFIGS / "phonondb-curves-debye.yaml", "--out", run, "-s", *TINY_ENCODER, "data.limit=32",
        "train.epochs=2", "train.batch_size=16", *QUIET)
    return run


def test_evaluate_curves_on_the_whole_test_split(curve_run, tmp_path):
    saved = tmp_path / "metrics.json"
    m = json.loads(cli("evaluate", curve_run, "--split", "test", "-o", saved, "--set", "data.limit=null"))
    assert json.loads(saved.read_text()) == m
    assert m["split"] == "test" and m["head"] == "debye" and m["data"]["name"] == "phonondb-thermo"
    assert m["n"] == 629  # stable test materials (docs/benchmarks.md, "phonondb-thermo loading")
    assert m["temperatures"] == CURVE_T and len(CURVE_T) == 24
    obs = m["observables"]
    assert set(obs) == {"cv", "s", "u"}
    assert obs["cv"]["unit"] == obs["s"]["unit"] == "J/(K*mol)" and obs["u"]["unit"] == "J/mol"
    for name, e in obs.items():
        for key in ("mae", "mae_per_atom", "rmse", "mad", "mae_over_mad"):
            assert np.isfinite(e[key]) and e[key] > 0, (name, key)
        assert e["count"] == 629 * 24  # no missing labels: every column has the same count...
        assert e["mae_over_mad"] == pytest.approx(e["mae"] / e["mad"], rel=1e-12)
        per_t = e["per_temperature"]
        assert list(per_t) == [f"{t:g}" for t in CURVE_T]
        # ...so the overall MAE (mean over all N x nT errors) is the mean of the per-temperature MAEs
        assert np.mean([r["mae"] for r in per_t.values()]) == pytest.approx(e["mae"], rel=1e-9)
        assert np.mean([r["mae_per_atom"] for r in per_t.values()]) == pytest.approx(e["mae_per_atom"], rel=1e-9)
        assert all(np.isfinite(r["mae_over_mad"]) for r in per_t.values())
    assert m["mae_over_mad"] == pytest.approx(np.mean([e["mae_over_mad"] for e in obs.values()]))
    assert "mae" not in m  # top-level mae only with a single observable


def test_temperature_transfer_300K_model_scored_on_whole_curves(data_root, tmp_path):
    run = tmp_path / "run"
    cli("train", CONFIGS / "phonondb-transfer-300K.yaml", "--out", run, "-s", *TINY_ENCODER, "data.limit=32",
        "train.epochs=2", "train.batch_size=16", *QUIET)
    at_300 = json.loads(cli("evaluate", run, "--split", "test", "--set", "data.limit=null"))
    assert at_300["temperatures"] == [300.0] and set(at_300["observables"]) == {"cv"}
    assert "per_temperature" not in at_300["observables"]["cv"] and np.isfinite(at_300["mae"])
    m = json.loads(cli("evaluate", run, "--split", "test", "--set", "data.observables=[cv,s,u]",
                       "data.temperatures=null", "data.temperature_range=[20,1000]", "data.limit=null"))
    assert m["n"] == at_300["n"] == 629 and m["temperatures"] == CURVE_T
    assert set(m["observables"]) == {"cv", "s", "u"}  # s and u although the model never saw them
    for name, e in m["observables"].items():
        assert np.isfinite(e["mae"]) and np.isfinite(e["mae_per_atom"]) and e["count"] == 629 * 24, name
        assert list(e["per_temperature"]) == [f"{t:g}" for t in CURVE_T]
    # cv at 300 K is one of the curve points: the same predictions, the same error there
    assert m["observables"]["cv"]["per_temperature"]["300"]["mae"] == pytest.approx(at_300["mae"], rel=1e-6)


# -- 3. a user's own phonopy output (docs/data.md) ---------------------------------------------
DOCS = REPO / "docs" / "data.md"


def _docs_section() -> str:
    text = DOCS.read_text()
    start = text.index("## Training on your own phonopy calculations")
    return text[start : text.index("\n## ", start + 1)]


def _docs_block(lang: str, needle: str) -> str:
    """The fenced ``lang`` block of that docs section that contains ``needle``."""
    blocks = re.findall(rf"```{lang}\n(.*?)```", _docs_section(), flags=re.S)
    found = [b for b in blocks if needle in b]
    assert len(found) == 1, f"docs/data.md: expected one ```{lang} block with {needle!r}, found {len(found)}"
    return textwrap.dedent(found[0])


def _commands(block: str) -> list[list[str]]:
    return [line.split() for line in block.replace("\\\n", " ").splitlines() if line.strip().startswith("cloudphys ")]


@pytest.fixture(scope="module")
def own_phonopy(data_root, tmp_path_factory):
    """Step 1 of the docs, verbatim, in a folder holding si/ and mgo/ (their phonondb inputs)."""
    phonopy = pytest.importorskip("phonopy", reason="phonopy is not installed (pip install 'cloudphys[phonopy]')")
    import warnings

    from cloudphys.data.phonondb_build import _extract

    work = tmp_path_factory.mktemp("own")
    for name, archive in (("si", "materials-id-149-si-fd-3m-227.tar.lzma"),
                          ("mgo", "materials-id-1265-mgo-fm-3m-225.tar.lzma")):
        (work / name).mkdir()
        _extract(data_root / "phonondb-raw-sample" / archive, work / name)  # POSCAR-unitcell, FORCE_SETS, BORN
    code = _docs_block("python", "write_yaml_thermal_properties")
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # phonopy's primitive-matrix and Γ acoustic-mode notices
        mp.chdir(work)
        for name in ("si", "mgo"):  # both are fcc with a 2x2x2 supercell, as in the snippet
            exec(compile(code.replace('"si/', f'"{name}/'), "docs/data.md", "exec"), {"phonopy": phonopy})
    return work


def test_train_and_predict_on_own_phonopy_output(own_phonopy, monkeypatch):
    work = own_phonopy
    monkeypatch.chdir(work)  # the docs use paths relative to the working directory
    # step 2: one row per calculation (the Si one also under a second id)
    steps = _commands(_docs_block("bash", "from-phonopy"))
    assert [c[:3] for c in steps] == [["cloudphys", "data", "from-phonopy"]] * 2
    again = steps[0][1:]
    again[again.index("--id") + 1] = "si-2"
    for args in (*(c[1:] for c in steps), again):
        cli(*args)
    rows = [json.loads(line) for line in (work / "mine.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["si", "mgo", "si-2"]
    for r in rows:
        assert r["n_atoms"] == 2 and r["temperatures_K"] == list(range(0, 1001, 50))
        assert r["u"][0] == r["f"][0] > 0 and r["cv"][0] == 0  # J/mol, zero-point energy at 0 K
    # step 3: the docs' config, split file, training and prediction commands
    config = yaml.safe_load(_docs_block("yaml", "name: thermo-jsonl"))
    block = _docs_block("bash", "cloudphys train mine.yaml")
    echo = re.search(r"echo '(.*)' > (\S+)", block)
    assert echo and echo.group(2) == config["data"]["split_file"], "the docs write the split file the config names"
    split = {**json.loads(echo.group(1)), "si-2": "train"}
    assert set(split.values()) == {"train", "val"}  # rows in both (an empty val is allowed: see below)
    (work / echo.group(2)).write_text(json.dumps(split))
    (work / "mine.yaml").write_text(yaml.safe_dump(config))
    train_cmd, predict_cmd = _commands(block)
    assert train_cmd == ["cloudphys", "train", "mine.yaml", "--out", "runs/mine"] and predict_cmd[1] == "predict"
    res = json.loads(cli(*train_cmd[1:], "-s", *TINY_ENCODER, "train.epochs=2", *QUIET))
    assert res["epochs_run"] == 2 and np.isfinite(res["best_val_loss"])
    run = work / "runs" / "mine"
    for name in ("config.yaml", "metrics.jsonl", "model/model.safetensors", "model/head.json", "model/cloudphys.json"):
        assert (run / name).is_file(), name
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"]) for h in history)

    # predict on the POSCAR (the 8-atom conventional cell: predictions per mole of 8-atom cells)
    cli(*predict_cmd[1:])
    with open(work / "pred.csv", newline="") as fh:  # cli/predict_cmd.py: a '#' header line, unit-suffixed columns
        pred = list(csv.DictReader(fh))  # the first line is the header
    assert len(pred) == 20 and [float(p["temperature_K"]) for p in pred] == list(range(50, 1001, 50))
    for p in pred:
        assert not p["error"] and float(p["n_atoms"]) == 8
        for key in ("cv_J_per_K_mol_cell", "s_J_per_K_mol_cell", "u_J_per_mol_cell", "theta_D_K"):
            assert np.isfinite(float(p[key])), key
        assert 0 < float(p["cv_J_per_K_mol_cell"]) <= 3 * 8 * 8.314462619


def test_build_phonondb_rows_mix_with_from_phonopy_rows(own_phonopy, data_root, tmp_path):
    from cloudphys.data.phonondb import load_thermo_jsonl

    rows = tmp_path / "mine.jsonl"
    cli("data", "from-phonopy", own_phonopy / "si" / "thermal_properties.yaml", "--structure",
        own_phonopy / "si" / "POSCAR-unitcell", "--id", "si", "-o", rows)
    grid = json.loads(rows.read_text())["temperatures_K"]  # the docs' 0:1000:50
    (tmp_path / "meta.json").write_text(json.dumps({"temperatures_K": grid}))
    built = tmp_path / "built.jsonl"
    cli("data", "build-phonondb", data_root / "phonondb-raw-sample" / "materials-id-1138-lif-fm-3m-225.tar.lzma",
        "--meta", tmp_path / "meta.json", "-o", built, "-q")
    (row,) = [json.loads(line) for line in built.read_text().splitlines()]
    assert row["temperatures_K"] == grid and len(row["cv"]) == len(grid) == 21  # the --meta grid, not the 28 points
    alone = load_thermo_jsonl("all", path=str(built), observables=["cv", "u"])  # --meta output loads by itself
    assert alone.ids == ["mp-1138"] and alone.temperatures.tolist() == grid and alone.targets["u"].shape == (1, 21)
    with open(rows, "a") as fh:
        fh.write(built.read_text())
    ex = load_thermo_jsonl("all", path=str(rows), observables=["cv"])
    assert ex.ids == ["si", "mp-1138"] and ex.temperatures.tolist() == grid
    np.testing.assert_array_equal(ex.targets["cv"][1], row["cv"])
    # a row without temperatures_K (older build-phonondb output) is on the 28-point grid: refused by name, whatever
    # its split, never read on the 21-point grid
    old = {k: v for k, v in row.items() if k != "temperatures_K"} | {"id": "old-build"}
    with open(rows, "a") as fh:
        fh.write(json.dumps(old) + "\n")
    (tmp_path / "split.json").write_text(json.dumps({"si": "train", "mp-1138": "train", "old-build": "test"}))
    with pytest.raises(DataError, match=r"\(old-build\): .*no temperatures_K.*28 points.*21 points"):
        load_thermo_jsonl("train", path=str(rows), split_file=str(tmp_path / "split.json"))


def test_training_copes_with_an_empty_val_split(own_phonopy, tmp_path):
    """A split file that puts every row in train: val loads as an empty split, the model is kept on train loss."""
    from cloudphys.data.phonondb import load_thermo_jsonl

    rows = tmp_path / "mine.jsonl"
    for name in ("si", "mgo"):
        cli("data", "from-phonopy", own_phonopy / name / "thermal_properties.yaml", "--structure",
            own_phonopy / name / "POSCAR-unitcell", "--id", name, "-o", rows, "--append")
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"si": "train", "mgo": "train"}))
    val = load_thermo_jsonl("val", path=str(rows), split_file=str(split), observables=["cv", "s", "u"])
    assert len(val) == 0 and val.temperatures.tolist() == list(range(0, 1001, 50))
    assert all(v.shape == (0, 21) for v in val.targets.values())
    config = {"encoder": {"name": "scope-bert"}, "head": {"name": "debye", "observables": ["cv", "s", "u"]},
              "data": {"name": "thermo-jsonl", "path": str(rows), "split_file": str(split),
                       "observables": ["cv", "s", "u"], "temperature_range": [50, 1000]},
              "train": {"epochs": 2, "batch_size": 2}}
    (tmp_path / "mine.yaml").write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    res = json.loads(cli("train", tmp_path / "mine.yaml", "--out", run, "-s", *TINY_ENCODER, *QUIET))
    history = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert res["epochs_run"] == 2 and len(history) == 2 and all("val_loss" not in h for h in history)
    best = min(h["train_loss"] for h in history)  # without val, the checkpoint is chosen on the training loss
    assert np.isfinite(best) and res["best_val_loss"] == pytest.approx(best)
    assert (run / "model" / "model.safetensors").is_file()
    # and a split file without train rows says so, instead of a shape error
    split.write_text(json.dumps({"si": "val", "mgo": "val"}))
    with pytest.raises(DataError, match=r"'train' split is empty.*split_file.*2 'val'"):
        load_thermo_jsonl("train", path=str(rows), split_file=str(split))


# -- 4. path-parameterised data sets as pretraining sources ------------------------------------
def test_pretrain_sources_name_a_data_set_with_a_path(data_root, tmp_path):
    from cloudphys.config import load_config
    from cloudphys.errors import ConfigError
    from cloudphys.plugins import get_registry
    from cloudphys.training.pretrain import collect_strings

    with open(data_root / "cloud" / "pretrain_cloud_10k.csv", newline="") as fh:
        strings = [r["cloud"] for r in csv.DictReader(fh)][:12]
    raw = tmp_path / "raw.csv"
    raw.write_text("scope\n" + "".join(f"{s}\n" for s in strings))
    corpus = tmp_path / "corpus.csv"
    cli("data", "build-corpus", raw, "-o", corpus, "--holdout", "0.25", "--dialect", "cloud")
    with open(corpus, newline="") as fh:
        table = list(csv.DictReader(fh))
    train = [r["scope"] for r in table if r["split"] == "train"]
    assert len(train) == 9 and len(table) == 12
    held_out = tmp_path / "held_out.csv"  # one of the train strings, excluded through a second corpus-csv entry
    held_out.write_text(f"scope\n{train[0]}\n")
    base = {"encoder": {"name": "scope-bert"}, "head": {"name": "debye"}}
    pretrain = {"sources": [{"name": "corpus-csv", "path": str(corpus)}],  # split: train by default
                "exclude": [{"name": "corpus-csv", "path": str(held_out), "split": "all"}]}
    cfg = load_config({**base, "pretrain": pretrain})
    got, info = collect_strings(cfg.pretrain, get_registry())
    assert got == train[1:]  # the data set received path= (and split): the train rows of corpus.csv, minus one
    assert info["sources"][0]["strings"] == 9 and info["excluded_strings"] == 1
    # {path: FILE, column: COL} without a name is still a file (all its rows, split column or not)
    files = load_config({**base, "pretrain": {"sources": [{"path": str(corpus), "column": "scope"}]}})
    assert collect_strings(files.pretrain, get_registry())[0] == [r["scope"] for r in table]
    # the same through `cloudphys pretrain`: a tiny run on the data set entry
    out = tmp_path / "pretrained"
    summary = json.loads(cli(
        "pretrain", CONFIGS / "cloud-pretrain.yaml", "--out", out, "-s", *TINY_ENCODER,
        f"pretrain.sources=[{{name: corpus-csv, path: {corpus}, split: all}}]",
        f"pretrain.exclude=[{{name: corpus-csv, path: {held_out}, split: all}}]", "pretrain.epochs=1",
        "pretrain.batch_size=8", "pretrain.val_fraction=0", "pretrain.num_threads=1", "pretrain.progress=false",
    ))
    assert summary["corpus"] == 11 and summary["steps"] == 2
    source = json.loads((out / "pretrain.json").read_text())["corpus"]["sources"][0]
    assert source["source"] == {"name": "corpus-csv", "path": str(corpus), "split": "all"} and source["kept"] == 11

    # ambiguous or invalid entries: a ConfigError naming the entry
    def refused(entry: dict, match: str) -> None:
        with pytest.raises(ConfigError, match=match):
            c = load_config({**base, "pretrain": {"sources": [{"name": "cloud-pretrain"}], "exclude": [entry]}})
            collect_strings(c.pretrain, get_registry())

    refused({"name": "cloud-pretrain", "path": str(corpus)}, r"pretrain\.exclude\[0\]: data set 'cloud-pretrain' "
            r"takes no 'path' parameter.*leave out 'name'.*corpus-csv, csv, thermo-jsonl")
    refused({"path": str(corpus), "split": "all"}, r"pretrain\.exclude\[0\]: a file entry \(no 'name'\) takes only "
            r"path, column, got \['split'\].*name: DATASET, path")
    refused({"split": "all"}, r"pretrain\.exclude\[0\] needs 'name' \(a data set\) or 'path'")
    refused({"name": "corpus-csv", "path": str(corpus), "colum": "scope"}, r"unknown key 'colum'.*corpus-csv")
    refused({"name": "corpus-csv", "path": str(corpus), "split": "test"},
            r"no split 'test'; available: train, val, all")
    refused({"name": "no-such-set", "path": str(corpus)}, r"unknown data set 'no-such-set'.*leave out 'name'")
    refused({"name": "corpus-csv", "path": 3}, r"pretrain\.exclude\[0\]\.path must be a file path")
