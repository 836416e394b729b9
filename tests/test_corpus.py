"""Token corpus on disk (cloudphys.data.shards) and pretraining streamed from it (cloudphys.training.stream)."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cloudphys.cli import main
from cloudphys.data.shards import TokenCorpus, build_token_corpus, key_hash, token_ids
from cloudphys.errors import ConfigError, DataError
from cloudphys.training.stream import CorpusSampler, corpus_split

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
TINY_ENCODER = {"name": "scope-bert", "hidden_size": 16, "num_layers": 1, "num_heads": 2, "max_length": 64}


@pytest.fixture(autouse=True)
def _env(tmp_path, monkeypatch):
    monkeypatch.setenv("CLOUDPHYS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLOUDPHYS_OFFLINE", "1")


def _cloud_strings(data_root: Path, n: int, offset: int = 0) -> list[str]:
    with open(data_root / "cloud" / "pretrain_cloud_10k.csv", newline="") as fh:
        return [r["cloud"] for r in csv.DictReader(fh)][offset : offset + n]


def _cloud_test(data_root: Path) -> list[str]:
    with open(data_root / "cloud" / "cloud_cv_test.csv", newline="") as fh:
        return [r["cloud"] for r in csv.DictReader(fh)]


@pytest.fixture
def inputs(data_root, tmp_path) -> dict[str, Path]:
    """A text file of 150 CLOUD strings (20 repeated, 5 CLOUD test strings, one broken line) and a CSV
    of 8 CDVAE perovskite CIFs (one broken)."""
    strings = _cloud_strings(data_root, 150)
    test = _cloud_test(data_root)[:5]
    txt = tmp_path / "strings.txt"
    txt.write_text("\n".join([*strings, *strings[:20], *test, "P 1 | 1a | Fe"]) + "\n")
    with gzip.open(data_root / "structures" / "cdvae_perov_5_test.csv.gz", "rt", newline="") as fh:
        rows = [r for _, r in zip(range(7), csv.DictReader(fh))]
    cifs = tmp_path / "cifs.csv"
    with open(cifs, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["material_id", "cif"])
        for r in rows:
            w.writerow([r["material_id"], r["cif"]])
        w.writerow(["broken", "data_x\n_cell_length_a 1\n"])
    excl = tmp_path / "test.txt"
    excl.write_text("\n".join(test) + "\n")
    return {"txt": txt, "cifs": cifs, "exclude": excl, "strings": strings, "test": test, "rows": rows}


def _all(c: TokenCorpus) -> list[tuple[int, ...]]:
    return [tuple(c[i].tolist()) for i in range(len(c))]


def test_build_dedup_exclude_failures_and_tokens_equal_the_tokenizer(inputs, tmp_path):
    from cloudphys import scope
    from cloudphys.tokenizer import build_tokenizer

    out = tmp_path / "corpus"
    rep = build_token_corpus([str(inputs["txt"]), str(inputs["cifs"])], out, exclude=[str(inputs["exclude"])],
                             shard_size=40, workers=1)
    c = TokenCorpus(out)
    m = json.loads((out / "manifest.json").read_text())
    assert m["complete"] and m["counts"]["items"] == 150 + 20 + 5 + 1 + 8
    assert len(c) == rep.strings == m["counts"]["strings"]
    # de-duplicated by crystal (the 20 repeats and any string whose canonical form repeats)
    canon = [scope.canonical_text(s, "default") for s in inputs["strings"]]
    assert len(set(c.text(i) for i in range(len(c)))) == len(c)
    assert rep.duplicates == 20 + (len(canon) - len(set(canon)))
    # the excluded CLOUD test crystals are not in the corpus, and are counted
    banned = {key_hash(scope.canonical_text(s, "default")) for s in inputs["test"]}
    assert not banned & {int(k) for keys in c.keys() for k in keys}
    assert rep.excluded == 5
    # failures listed per item: the broken line and the broken CIF, with their ids
    with open(out / "failures.csv", newline="") as fh:
        fails = list(csv.DictReader(fh))
    ids = {f["id"] for f in fails}
    assert f"{inputs['txt']}:{150 + 20 + 5 + 1}" in ids and "broken" in ids and rep.failures == len(fails) == 2
    # the memory-mapped corpus holds what the in-memory tokenizer gives for the same strings
    tok = build_tokenizer(256)
    first = list(dict.fromkeys(canon))
    assert _all(c)[: len(first)] == [tuple(x) for x in tok(first)["input_ids"]]
    assert c.text(0) == first[0]
    # the converted perovskites (ABX3: 5 atoms, amounts of 0.2) come last, as their SCOPE strings
    tail = [c.text(i) for i in range(len(first), len(c))]
    assert len(tail) == 7 and all(scope.parse(t).render() == t and " 0.2" in t for t in tail)
    assert token_ids("-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5") == tok("-F 4 2 3 | 4a 4b | Na 0.5 Cl 0.5")["input_ids"]


def test_exclude_ids_and_too_long_strings_are_counted_or_listed(inputs, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text(inputs["rows"][0]["material_id"] + "\n")
    rep = build_token_corpus([str(inputs["cifs"])], tmp_path / "c", exclude_ids=[inputs["rows"][0]["material_id"]])
    assert rep.excluded == 1 and rep.failures == 1 and rep.items == 8
    rep = build_token_corpus([str(inputs["txt"])], tmp_path / "short", max_length=16)
    with open(tmp_path / "short" / "failures.csv", newline="") as fh:
        reasons = [r["reason"] for r in csv.DictReader(fh)]
    assert any("max_length 16" in r and "never truncated" in r for r in reasons)
    assert all(len(x) <= 16 for x in _all(TokenCorpus(tmp_path / "short")))


def test_build_resumes_after_a_kill_keeping_finished_shards(inputs, tmp_path):
    srcs = [str(inputs["txt"]), str(inputs["cifs"])]
    whole = tmp_path / "whole"
    build_token_corpus(srcs, whole, shard_size=30)
    part = tmp_path / "part"
    code = (
        "import os, sys\n"
        "import cloudphys.data.shards as S\n"
        "n = [0]\n"
        "real = S._save_npy\n"
        "def dying(path, arr):\n"
        "    n[0] += 1\n"
        "    if n[0] == 8:\n"
        "        os._exit(9)  # killed in the middle of the third shard\n"
        "    real(path, arr)\n"
        "S._save_npy = dying\n"
        f"S.build_token_corpus({srcs!r}, {str(part)!r}, shard_size=30)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr[-2000:]
    m = json.loads((part / "manifest.json").read_text())
    assert not m["complete"] and len(m["shards"]) == 2
    with pytest.raises(DataError, match="did not finish"):
        TokenCorpus(part)
    kept = {p.name: p.stat().st_mtime_ns for p in part.glob("shard-0000[01].*")}
    rep = build_token_corpus(srcs, part, shard_size=30)
    assert rep.resumed_shards == 2
    assert {p.name: p.stat().st_mtime_ns for p in part.glob("shard-0000[01].*")} == kept  # not redone
    assert _all(TokenCorpus(part)) == _all(TokenCorpus(whole))
    assert json.loads((part / "manifest.json").read_text())["counts"] == \
        json.loads((whole / "manifest.json").read_text())["counts"]
    with pytest.raises(DataError, match="other inputs or settings"):
        build_token_corpus(srcs, part, shard_size=31)


def test_parallel_workers_give_the_same_corpus(inputs, tmp_path):
    a = build_token_corpus([str(inputs["txt"])], tmp_path / "a", shard_size=64, workers=1)
    b = build_token_corpus([str(inputs["txt"])], tmp_path / "b", shard_size=64, workers=2)
    assert a.strings == b.strings and _all(TokenCorpus(tmp_path / "a")) == _all(TokenCorpus(tmp_path / "b"))


def test_cli_build_corpus_out(inputs, tmp_path, capsys):
    out = tmp_path / "cli"
    assert main(["data", "build-corpus", str(inputs["txt"]), "--out", str(out), "--exclude", str(inputs["exclude"]),
                 "--shard-size", "50", "-q"]) == 0
    text = capsys.readouterr().out
    assert "shards" in text and "excluded 5" in text and (out / "manifest.json").is_file()
    assert main(["data", "build-corpus", str(inputs["txt"]), "-q"]) != 0  # neither -o nor --out


def test_sampler_ranks_are_disjoint_and_cover_each_batch():
    idx = np.arange(103, dtype=np.int32) * 3
    one = CorpusSampler(idx, 8, seed=5)
    ranks = [CorpusSampler(idx, 8, seed=5, rank=r, world=3) for r in range(3)]
    assert one.steps_per_epoch() == ranks[0].steps_per_epoch() == 13  # 12 full + a last one of 7 >= 3 ranks
    for epoch in (1, 2):
        for (_s, whole), *parts in zip(one.batches(epoch), *(r.batches(epoch) for r in ranks)):
            got = [p[1] for p in parts]
            assert sorted(np.concatenate(got).tolist()) == sorted(whole.tolist())
            assert all(not set(a.tolist()) & set(b.tolist()) for i, a in enumerate(got) for b in got[i + 1 :])
    assert list(one.batches(1, 4))[0][1].tolist() == list(one.batches(1))[4][1].tolist()
    assert one.order(1).tolist() != one.order(2).tolist()


def _config(corpus: Path, **extra) -> dict:
    pre = {"corpus": str(corpus), "epochs": 2, "batch_size": 16, "lr": 1e-3, "device": "cpu", "progress": "false",
           "val_fraction": 0.1, "num_threads": 1, "save_every": 3, **extra}
    return {"encoder": dict(TINY_ENCODER), "head": {"name": "debye"}, "pretrain": pre}


def _weights(run: Path) -> str:
    from safetensors.numpy import load_file

    h = hashlib.sha256()
    for k, v in sorted(load_file(run / "model" / "model.safetensors").items()):
        h.update(k.encode() + v.tobytes())
    return h.hexdigest()


@pytest.fixture
def small_corpus(data_root, tmp_path) -> Path:
    txt = tmp_path / "s.txt"
    txt.write_text("\n".join(_cloud_strings(data_root, 120)) + "\n")
    build_token_corpus([str(txt)], tmp_path / "corpus", shard_size=50)
    return tmp_path / "corpus"


class _Kill(list):
    """A sample log that raises once ``n`` steps were taken (a kill mid-epoch)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def append(self, item) -> None:
        if len(self) == self.n:
            raise KeyboardInterrupt("killed")
        super().append(item)


def test_mid_epoch_resume_sees_exactly_the_uninterrupted_samples(small_corpus, tmp_path):
    from cloudphys.training.pretrain import pretrain

    cfg = _config(small_corpus)
    full: list = []
    pretrain(cfg, tmp_path / "full", sample_log=full)
    n_train = len(corpus_split(TokenCorpus(small_corpus), 0.1)[0])
    spe = -(-n_train // 16)
    assert len(full) == 2 * spe and spe > 4
    kill_at = spe + 4  # mid-epoch 2; the last checkpoint was written after global step 2 * 3 = 6 (spe + ...)
    first = _Kill(kill_at)
    with pytest.raises(KeyboardInterrupt):
        pretrain(cfg, tmp_path / "cut", sample_log=first)
    state = json.loads((tmp_path / "cut" / "last" / "trainer_state.json").read_text()) \
        if (tmp_path / "cut" / "last" / "trainer_state.json").is_file() else None
    assert state is not None and 0 < state["epoch_step"] < spe and state["epoch"] == 2
    done = state["step"]
    rest: list = []
    pretrain(cfg, tmp_path / "cut", resume=True, sample_log=rest)
    assert first[:done] + rest == full  # the same samples in the same order, none repeated, none skipped
    assert _weights(tmp_path / "cut") == _weights(tmp_path / "full")
    rows = [json.loads(x) for x in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]


def test_streaming_applies_exclude_and_checks_config(small_corpus, data_root, tmp_path):
    from cloudphys.config import load_config
    from cloudphys.training.pretrain import pretrain

    some = _cloud_strings(data_root, 10)
    ex = tmp_path / "ex.txt"
    ex.write_text("\n".join(some) + "\n")
    res = pretrain(_config(small_corpus, exclude=[{"path": str(ex)}], epochs=1), tmp_path / "ex")
    info = json.loads((tmp_path / "ex" / "pretrain.json").read_text())["corpus"]
    assert info["excluded_in_corpus"] == len({key_hash(__import__("cloudphys").scope.canonical_text(s, "default"))
                                              for s in some})
    assert res["steps"] >= 1
    with pytest.raises(ConfigError, match="both set"):
        load_config({**_config(small_corpus), "pretrain": {**_config(small_corpus)["pretrain"],
                                                           "sources": [{"name": "cloud-pretrain"}]}})
    cfg = _config(small_corpus)
    cfg["encoder"]["max_length"] = TokenCorpus(small_corpus).longest - 1
    with pytest.raises(DataError, match="max_length"):
        pretrain(cfg, tmp_path / "short")


def test_two_gloo_ranks_read_disjoint_parts_and_agree(small_corpus, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(HERE / "corpus_ddp_worker.py"), str(small_corpus), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1))
    assert r0["world"] == r1["world"] == 2 and r0["weights"] == r1["weights"]  # DDP kept the replicas equal
    assert len(r0["log"]) == len(r1["log"]) > 0
    one = CorpusSampler(corpus_split(TokenCorpus(small_corpus), 0.1)[0], 16, seed=0)
    for step, (a, b) in enumerate(zip(r0["log"], r1["log"])):
        assert not set(a) & set(b)  # each rank its own part
        epoch, s = divmod(step, one.steps_per_epoch())
        whole = list(one.batches(epoch + 1, s))[0][1].tolist()
        assert sorted(a + b) == sorted(whole)  # together: the one-process batch
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()


def test_synthetic_strings_parse_and_their_ids_equal_the_tokenizer(data_root):
    from cloudphys import scope
    from cloudphys.testing.synthetic_scope import SyntheticScope
    from cloudphys.tokenizer import build_tokenizer

    gen = SyntheticScope()
    tok, off = gen.ids(3000, np.random.default_rng(1))
    texts = gen.texts(tok, off)
    records = [scope.parse(t) for t in texts]  # every one valid in the grammar (raises otherwise)
    assert len({r.spacegroup for r in records}) > 150  # many space groups
    enc = build_tokenizer(256)(texts[:500])["input_ids"]
    assert all(list(e) == tok[off[i] : off[i + 1]].tolist() for i, e in enumerate(enc))
    for r in records[:200]:  # amounts are shares of the cell's atoms: they sum to 1 up to rounding
        assert abs(sum(float(a) for _, a in r.composition) - 1) <= 0.005 * len(r.composition) + 1e-9


def test_subset_corpus(small_corpus, tmp_path):
    c = TokenCorpus(small_corpus)
    sub = c.subset([5, 2, 9], tmp_path / "sub")
    assert len(sub) == 3 and [sub[i].tolist() for i in range(3)] == [c[i].tolist() for i in (5, 2, 9)]
    assert np.concatenate(list(sub.keys())).tolist() == np.concatenate(list(c.keys()))[[5, 2, 9]].tolist()


def test_streamed_pretraining_runs_under_bf16_autocast_on_cpu(small_corpus, tmp_path, monkeypatch):
    """precision: bf16 takes the autocast path (the one CUDA takes with precision: auto): the forward
    pass runs in bf16 (seen by a hook), the loss stays finite and the weights stay fp32."""
    import torch

    from cloudphys.training.pretrain import pretrain

    seen: list[torch.dtype] = []
    real = torch.nn.Linear.forward

    def spy(self, x):
        out = real(self, x)
        seen.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.Linear, "forward", spy)
    res = pretrain(_config(small_corpus, precision="bf16", epochs=1, max_steps=2), tmp_path / "bf16")
    assert torch.bfloat16 in seen
    assert res["steps"] == 2 and np.isfinite(res["final"]["train_mlm_loss"])
    from safetensors.numpy import load_file

    assert all(v.dtype == np.float32 for v in load_file(tmp_path / "bf16" / "model" / "model.safetensors").values())
