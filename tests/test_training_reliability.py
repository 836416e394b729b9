"""Issue 13 classes 1 and 2 for training, pretraining, checkpoints and model loading.

Data loss: ``pretrain --out`` on an existing run is refused without ``--overwrite`` and
``--overwrite`` removes only what pretraining wrote; one process per run directory (a lock naming
the holder); a kill inside pretraining's final save is recovered on the next start; ``pretrain
--resume`` ends with the weights of an uninterrupted run. Silent wrong results: weights missing,
unexpected or mis-shaped are a CheckpointError naming them (never fresh initial values); a newer
format is refused, an older one loads; an altered tokenizer is refused; ``--resume`` with another
config lists the differences; a single model into an ensemble directory (and the reverse) is
refused unless ``--overwrite``, after which ``load_model`` loads what is really there. Prediction
parses and tokenizes each input once.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _training_helpers import TINY, cloud_examples, tokenizer
from safetensors.torch import load_file, save_file

from cloudphys import load_model
from cloudphys.cli import main
from cloudphys.errors import CheckpointError
from cloudphys.modeling.model import model_dialect, tokenizer_record
from cloudphys.training import ScopePhysicsModel, build_model, fit, train
from cloudphys.training import checkpoint as ckpt
from cloudphys.training.batching import strings_dialect
from cloudphys.training.pretrain import pretrain
from cloudphys.training.resume import config_differences

pytestmark = [pytest.mark.filterwarnings("ignore::UserWarning"),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module")
def tok():
    return tokenizer()


@pytest.fixture(scope="module")
def data(data_root: Path):
    return {"train": cloud_examples(data_root, 32), "val": cloud_examples(data_root, 8, offset=32)}


@pytest.fixture(scope="module")
def corpus(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    with open(data_root / "cloud" / "pretrain_cloud_10k.csv", newline="") as fh:
        strings = [r["cloud"] for r in csv.DictReader(fh)][:40]
    path = tmp_path_factory.mktemp("corpus") / "corpus.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scope"])
        w.writerows([s] for s in strings)
    return path


def _pretrain_cfg(corpus: Path, epochs: int = 3) -> dict:
    return {
        "encoder": {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2},
        "head": {"name": "debye"},
        "pretrain": {"sources": [{"path": str(corpus)}], "epochs": epochs, "batch_size": 8, "lr": 3e-3,
                     "val_fraction": 0.25, "num_threads": 1, "progress": "false", "seed": 1},
    }


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path / "model.safetensors"))


# -- class 1: data loss ------------------------------------------------------------------------
def test_pretrain_refuses_an_existing_run_and_overwrite_keeps_what_it_did_not_write(corpus: Path, tmp_path: Path,
                                                                                    tok) -> None:
    out = tmp_path / "pre"
    out.mkdir()
    (out / "notes.txt").write_text("my notes")  # a folder with a user's file is fine to pretrain into
    pretrain(_pretrain_cfg(corpus, epochs=1), out, tokenizer=tok)
    assert (out / "model" / "model.safetensors").is_file() and (out / "notes.txt").read_text() == "my notes"
    with pytest.raises(CheckpointError, match="already holds a pretraining run.*--overwrite"):
        pretrain(_pretrain_cfg(corpus, epochs=1), out, tokenizer=tok)
    rc = main(["pretrain", str(Path(__file__).parent.parent / "configs" / "cloud-pretrain.yaml"), "--out", str(out),
               "-s", f"pretrain.sources=[{{path: {corpus}}}]", "pretrain.epochs=1"])
    assert rc == 1  # the CLI refuses too, before reading anything
    (out / "model" / "extra.txt").write_text("inside model/: written over")  # our own folder is replaced whole
    summary = pretrain(_pretrain_cfg(corpus, epochs=2), out, tokenizer=tok, overwrite=True)
    assert summary["steps"] == 2 * 4 and (out / "notes.txt").read_text() == "my notes"
    assert not (out / "model" / "extra.txt").exists()
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "config.yaml", "last", "metrics.csv", "metrics.jsonl", "model", "notes.txt", "pretrain.json"]


def test_pretrain_and_train_never_overwrite_each_others_runs(corpus: Path, tmp_path: Path, tok, data) -> None:
    run = tmp_path / "run"
    fit(dict(TINY, train={**TINY["train"], "epochs": 1}), run, tokenizer=tok, examples=data)
    with pytest.raises(CheckpointError, match="holds a training run"):
        pretrain(_pretrain_cfg(corpus, epochs=1), run, tokenizer=tok, overwrite=True)
    assert (run / "model" / "head.json").is_file()
    pre = tmp_path / "pre"  # and the reverse: train never overwrites a pretraining run
    pretrain(_pretrain_cfg(corpus, epochs=1), pre, tokenizer=tok)
    with pytest.raises(CheckpointError, match="holds a pretraining run"):
        fit(dict(TINY, train={**TINY["train"], "epochs": 1}), pre, tokenizer=tok, examples=data, overwrite=True)
    assert (pre / "model" / "model.safetensors").is_file() and (pre / "last").is_dir()


def test_a_second_process_on_the_same_run_directory_is_refused(tmp_path: Path, tok, data) -> None:
    out = tmp_path / "run"
    with ckpt.run_lock(out):  # another open file description: flock refuses it like another process
        with pytest.raises(CheckpointError, match=rf"in use by another cloudphys process \(pid {os.getpid()}"):
            fit(TINY, out, tokenizer=tok, examples=data)
        with pytest.raises(CheckpointError, match="in use"):
            train(dict(TINY, train={**TINY["train"], "ensemble": 2}), out, tokenizer=tok, examples=data)
        with pytest.raises(CheckpointError, match="in use"), ckpt.run_lock(out):
            pass
    assert not (out / "last").exists()
    with ckpt.run_lock(out):  # released with the block
        pass


def test_the_lock_is_held_across_processes(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from cloudphys.training.checkpoint import run_lock
            with run_lock({str(out)!r}):
                print("locked", flush=True)
                time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=rf"pid {holder.pid}\b"), ckpt.run_lock(out):
            pass
    finally:
        holder.kill()
        holder.wait()
    with ckpt.run_lock(out):  # a killed holder leaves no stale lock
        pass


def test_a_kill_inside_the_final_save_is_recovered_on_the_next_start(corpus: Path, tmp_path: Path, tok) -> None:
    out = tmp_path / "pre"
    pretrain(_pretrain_cfg(corpus, epochs=2), out, tokenizer=tok)
    want = _tensors(out / "model")
    # what SIGKILL between "old moved aside" and "new moved in" leaves: no model/, a complete .old, a partial .tmp
    os.replace(out / "model", out / ".model.old-deadbeef")
    (out / ".model.tmp-1-cafe").mkdir()
    (out / ".model.tmp-1-cafe" / "config.json").write_text("{")
    summary = pretrain(_pretrain_cfg(corpus, epochs=2), out, tokenizer=tok, resume=True)
    assert summary["steps"] == 2 * 4
    assert not [p.name for p in out.iterdir() if p.name.startswith(".model")]
    got = _tensors(out / "model")
    assert got.keys() == want.keys() and all(torch.equal(got[k], want[k]) for k in want)


def test_pretrain_resume_equals_an_uninterrupted_run(corpus: Path, tmp_path: Path, tok,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    straight = tmp_path / "straight"
    pretrain(_pretrain_cfg(corpus, epochs=3), straight, tokenizer=tok)
    out = tmp_path / "cut"
    orig = ckpt.append_metrics

    def die_after_epoch_2(out_dir: Path, row: dict) -> None:
        orig(out_dir, row)
        if row["epoch"] == 2:
            raise KeyboardInterrupt  # after the row, before epoch 2's checkpoint: epoch 2 is redone
    monkeypatch.setattr(ckpt, "append_metrics", die_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        pretrain(_pretrain_cfg(corpus, epochs=3), out, tokenizer=tok)
    monkeypatch.setattr(ckpt, "append_metrics", orig)
    assert not (out / "model").exists() and json.loads((out / "last" / "trainer_state.json").read_text())["epoch"] == 1
    with pytest.raises(CheckpointError, match="nothing to resume"):
        pretrain(_pretrain_cfg(corpus, epochs=3), tmp_path / "empty", tokenizer=tok, resume=True)
    pretrain(_pretrain_cfg(corpus, epochs=3), out, tokenizer=tok, resume=True)
    a, b = _tensors(straight / "model"), _tensors(out / "model")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist_a = json.loads((straight / "pretrain.json").read_text())["history"]
    hist_b = json.loads((out / "pretrain.json").read_text())["history"]
    assert hist_a == hist_b and [r["epoch"] for r in ckpt.read_metrics(out)] == [1, 2, 3]
    with pytest.raises(CheckpointError, match=r"(?s)differs.*pretrain\.lr: 0\.003 -> 0\.001"):
        pretrain(dict(_pretrain_cfg(corpus, epochs=3), pretrain={**_pretrain_cfg(corpus)["pretrain"], "lr": 1e-3}),
                 out, tokenizer=tok, resume=True)


# A kill from outside during the final save (SIGKILL inside os.replace of the new model/), in a
# subprocess, then --resume: the previous output is back, nothing is left behind, weights as uninterrupted.
KILL_IN_FINAL_SAVE = """
import os, signal, sys
from cloudphys.training import checkpoint
orig = os.replace
def hook(src, dst):
    if os.path.basename(str(src)).startswith(".model.tmp"):
        os.kill(os.getpid(), signal.SIGKILL)
    return orig(src, dst)
checkpoint.os.replace = hook
from cloudphys.cli import main
sys.exit(main({argv!r}))
"""


@pytest.mark.slow
def test_sigkill_in_pretrains_final_save_then_resume(corpus: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(yaml.safe_dump(_pretrain_cfg(corpus, epochs=2)))
    straight, out = tmp_path / "straight", tmp_path / "killed"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    assert main(["pretrain", str(cfg), "--out", str(straight)]) == 0
    shutil_copy = __import__("shutil").copytree
    shutil_copy(straight, out)  # a previous complete output that the killed --overwrite run must not lose
    argv = ["pretrain", str(cfg), "--out", str(out), "--overwrite"]
    proc = subprocess.run([sys.executable, "-c", KILL_IN_FINAL_SAVE.format(argv=argv)], env=env, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    # the previous output is set aside complete, not lost; the next start puts it back, then finishes the run
    assert not (out / "model").exists() and len(list(out.glob(".model.old-*"))) == 1
    assert main(["pretrain", str(cfg), "--out", str(out), "--resume"]) == 0
    assert not [p for p in out.iterdir() if p.name.startswith((".model.", ".last."))]
    a, b = _tensors(straight / "model"), _tensors(out / "model")
    assert all(torch.equal(a[k], b[k]) for k in a)


# -- class 2: silent wrong results ---------------------------------------------------------------
@pytest.fixture
def saved(tmp_path: Path, tok) -> Path:
    model = build_model(TINY, tokenizer=tok)
    path = tmp_path / "m"
    model.save_pretrained(path)
    return path


def test_saved_model_records_format_dialect_and_tokenizer(saved: Path, tok) -> None:
    meta = json.loads((saved / "cloudphys.json").read_text())
    assert meta["format"] == ckpt.FORMAT_VERSION and meta["cloudphys_version"]
    assert meta["tokenizer"] == tokenizer_record(tok) and meta["tokenizer"]["max_length"] == 256
    assert meta["dialect"] in ("default", "cloud")
    assert load_model(saved).meta["format"] == ckpt.FORMAT_VERSION


def test_missing_unexpected_or_misshaped_tensors_are_refused_by_name(saved: Path) -> None:
    state = _tensors(saved)
    victim = next(k for k in state if "latent" in k)
    save_file({k: v for k, v in state.items() if k != victim}, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"missing: .*{victim}.*untrained weights"):
        ScopePhysicsModel.from_pretrained(saved)
    save_file({**state, "bert.extra.weight": torch.zeros(2)}, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError, match=r"unexpected: .*extra"):
        load_model(saved)
    wrong = {**state, victim: torch.zeros(*state[victim].shape[:-1], state[victim].shape[-1] + 1)}
    save_file(wrong, str(saved / "model.safetensors"))
    with pytest.raises(CheckpointError, match=rf"wrong shape: {victim}"):
        load_model(saved)
    save_file(state, str(saved / "model.safetensors"))
    load_model(saved)  # intact again: loads


def test_a_newer_format_is_refused_and_an_older_one_loads(saved: Path) -> None:
    meta_path = saved / "cloudphys.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "format": ckpt.FORMAT_VERSION + 1, "cloudphys_version": "9.0"}))
    with pytest.raises(CheckpointError, match=rf"saved by cloudphys 9\.0 with format {ckpt.FORMAT_VERSION + 1};"
                                              rf".* reads formats <= {ckpt.FORMAT_VERSION}: upgrade"):
        load_model(saved)
    meta_path.write_text(json.dumps({**meta, "format": "two"}))
    with pytest.raises(CheckpointError, match="not a positive integer"):
        load_model(saved)
    # format 1 (cloudphys 0.1): no format, dialect or tokenizer recorded
    old = {k: v for k, v in meta.items() if k not in ("format", "cloudphys_version", "dialect", "tokenizer")}
    old["config"] = {**old["config"], "data": {"name": "cloud-cv"}}
    meta_path.write_text(json.dumps(old))
    model = load_model(saved)
    assert model.meta["format"] == 1 and model_dialect(model) == "cloud"  # declared by the cloud-cv data set
    model.meta["config"]["data"] = {"name": "cloud-unregistered"}
    assert model_dialect(model) == "cloud"  # a data set no longer registered: what 0.1 did for such models
    model.meta["config"]["data"] = {"name": "csv", "path": "x.csv", "dialect": "default"}
    assert model_dialect(model) == "default"


def test_an_altered_tokenizer_is_refused(saved: Path) -> None:
    meta_path = saved / "cloudphys.json"
    meta = json.loads(meta_path.read_text())
    meta_path.write_text(json.dumps({**meta, "tokenizer": {**meta["tokenizer"], "vocab_sha256": "0" * 64}}))
    with pytest.raises(CheckpointError, match="vocabulary is not the one"):
        load_model(saved)


def test_dialect_comes_from_the_data_never_from_its_name(tmp_path: Path, tok, data) -> None:
    assert strings_dialect(data["train"].scope) == "cloud"
    assert strings_dialect(["-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5", "P 1 | 1a | Si 1.0"]) == "default"
    res = fit(dict(TINY, train={**TINY["train"], "epochs": 1}), tmp_path / "run", tokenizer=tok, examples=data)
    assert res.model.meta["dialect"] == "cloud"
    assert json.loads((tmp_path / "run" / "model" / "cloudphys.json").read_text())["dialect"] == "cloud"


def test_resume_with_another_config_lists_the_differences(tmp_path: Path, tok, data) -> None:
    run = tmp_path / "run"
    cfg = copy.deepcopy(TINY)
    cfg["train"]["epochs"] = 2
    fit(cfg, run, tokenizer=tok, examples=data)
    other = copy.deepcopy(cfg)
    other["train"].update(lr=5e-3, epochs=3)
    other["head"] = {"name": "debye", "observables": ["cv", "u"]}
    with pytest.raises(CheckpointError) as info:
        fit(other, run, tokenizer=tok, examples=data, resume=True)
    msg = str(info.value)
    assert "train.lr: 0.001 -> 0.005" in msg and "train.epochs: 2 -> 3" in msg and "head.observables" in msg
    assert "--accept-config-changes" in msg
    same = copy.deepcopy(cfg)
    same["train"].update(epochs=3, num_threads=1, progress="false")  # threads/progress never matter
    assert config_differences(cfg, same) == ["train.epochs: 2 -> 3"]
    res = fit(same, run, tokenizer=tok, examples=data, resume=True, accept_config_changes=True)
    assert res.epochs_run == 3 and [r["epoch"] for r in ckpt.read_metrics(run)] == [1, 2, 3]


def test_single_into_ensemble_and_back_needs_overwrite_and_load_model_follows(tmp_path: Path, tok, data) -> None:
    run = tmp_path / "run"
    one = dict(TINY, train={**TINY["train"], "epochs": 1})
    two = dict(TINY, train={**TINY["train"], "epochs": 1, "ensemble": 2})
    train(two, run, tokenizer=tok, examples=data)
    assert type(load_model(run).encoder).__name__ == "EnsembleEncoder"
    with pytest.raises(CheckpointError, match="holds an ensemble.*single-model run.*--overwrite"):
        train(one, run, tokenizer=tok, examples=data)
    with pytest.raises(CheckpointError, match="holds an ensemble"):
        train(one, run, tokenizer=tok, examples=data, resume=True)
    (run / "notes.txt").write_text("mine")
    train(one, run, tokenizer=tok, examples=data, overwrite=True)
    assert not (run / ckpt.ENSEMBLE_FILE).exists() and not (run / "member-0").exists()
    assert (run / "notes.txt").read_text() == "mine"
    assert type(load_model(run).encoder).__name__ == "ScopeBertEncoder"  # predict uses what is really there
    with pytest.raises(CheckpointError, match="holds a single-model run.*ensemble"):
        train(two, run, tokenizer=tok, examples=data)
    train(two, run, tokenizer=tok, examples=data, overwrite=True)
    assert not (run / "model").exists() and not (run / "last").exists()
    assert type(load_model(run).encoder).__name__ == "EnsembleEncoder"
    # a directory left with both (an older cloudphys) is refused, not guessed
    (run / "model").mkdir()
    with pytest.raises(CheckpointError, match="holds an ensemble .* and a single-model run"):
        load_model(run)


def test_prediction_tokenizes_each_input_once(tmp_path: Path, tok, data, monkeypatch: pytest.MonkeyPatch) -> None:
    from cloudphys.inference import predict as pred_mod
    from cloudphys.modeling import encoding as batching

    res = fit(dict(TINY, train={**TINY["train"], "epochs": 1}), None, tokenizer=tok, examples=data)
    calls = []
    real = res.model.tokenizer.__class__.__call__

    def counting(self, texts, *a, **k):
        calls.append(len(texts))
        return real(self, texts, *a, **k)

    monkeypatch.setattr(res.model.tokenizer.__class__, "__call__", counting)
    monkeypatch.setattr(batching, "tokenize", lambda *a, **k: pytest.fail("tokenized a second time"))
    monkeypatch.setattr(batching, "scope_parse_problem", lambda *a: pytest.fail("parsed a second time"))
    src = tmp_path / "in.csv"
    rows = "".join(f"m{k},{s},{n}\n" for k, (s, n) in enumerate(zip(data["val"].scope, data["val"].n_atoms)))
    src.write_text("id,scope,n_atoms\n" + rows + "bad,P 1 | 9z | Si 1.0,1\n")
    out = pred_mod.predict_with_members(res.model, (), pred_mod.read_items([src]), np.array([100.0, 300.0]),
                                        device="cpu")[0]
    assert calls == [len(data["val"])]  # one tokenizer call for every string that parsed
    assert out.errors[:-1] == [None] * len(data["val"]) and "9z" in (out.errors[-1] or "")
    assert out.observables["cv"].shape == (len(data["val"]) + 1, 2) and np.isnan(out.observables["cv"][-1]).all()
    assert set(out.observables) == {"u", "cv", "s", "f"}  # every observable the head declares


def test_head_tensors_missing_from_the_directory_are_refused(tmp_path: Path, tok) -> None:
    from cloudphys.physics.debye import DebyeHead

    class BufferedDebye(DebyeHead):  # a head with a tensor of its own (saved in head.safetensors)
        def __init__(self, **kw: object) -> None:
            super().__init__(**kw)
            self.register_buffer("offset", torch.full((1,), 2.5))

    class Registry:  # the PluginRegistry protocol's parts that loading a head reads
        heads = {"debye": BufferedDebye}

        def build_head(self, name: str, **params: object) -> BufferedDebye:
            return BufferedDebye(**params)

    base = build_model(TINY, tokenizer=tok)
    model = ScopePhysicsModel(base.encoder, BufferedDebye(observables=["cv"]), tok, base.meta)
    path = tmp_path / "m"
    model.save_pretrained(path)
    assert "offset" in load_file(str(path / "head.safetensors"))
    assert float(ScopePhysicsModel.from_pretrained(path, registry=Registry()).head.offset) == 2.5
    save_file({"other": torch.zeros(1)}, str(path / "head.safetensors"))
    with pytest.raises(CheckpointError, match=r"head\.safetensors does not fit.*missing: offset.*unexpected: other"):
        ScopePhysicsModel.from_pretrained(path, registry=Registry())
    (path / "head.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"head\.safetensors does not fit.*missing: offset"):
        ScopePhysicsModel.from_pretrained(path, registry=Registry())
