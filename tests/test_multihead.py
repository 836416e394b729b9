"""Several heads on one encoder (issue 23): the ``heads:`` config, per-item loss masking, one saved
model with every head's outputs, load-time checks of every entry, and the head contract for an
output that is not a thermodynamic curve (the stability plugin's ``p_unstable``)."""

from __future__ import annotations

import csv
import importlib.metadata as md
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from _training_helpers import TINY, cloud_examples, tokenizer

from cloudphys.config import load_config
from cloudphys.data import Examples
from cloudphys.errors import CheckpointError, ConfigError
from cloudphys.plugins import get_registry, reset
from cloudphys.training.losses import effective_weights, loss, target_stats


@pytest.fixture(autouse=True)
def _stability_plugin():
    try:
        md.distribution("cloudphys-stability")
    except md.PackageNotFoundError:
        pytest.skip("cloudphys-stability is not installed (pip install ./plugins/cloudphys-stability)")
    reset()
    yield
    reset()


ENCODER = TINY["encoder"]
HEADS = [{"name": "debye", "observables": ["cv"], "weight": 1.0}, {"name": "stability", "weight": 0.5}]


def _config(**train):
    return {"encoder": ENCODER, "heads": HEADS,
            "train": {**TINY["train"], "epochs": 2, **train}}


def _examples(root: Path, n: int, offset: int, seed: int) -> Examples:
    """CLOUD strings with Cv at 300 K and a p_unstable label: a third 'unstable' (their Cv missing,
    as the phonondb loader leaves unstable curves), a few with no stability label at all."""
    ex = cloud_examples(root, n, offset)
    rng = np.random.default_rng(seed)
    unstable = rng.random(n) < 0.35
    ex.targets["cv"][unstable] = np.nan
    p = unstable.astype(np.float64)[:, None]
    p[:3] = np.nan  # no stability label: these teach the curves only
    ex.targets["p_unstable"] = p
    ex.units["p_unstable"] = ""
    return ex


# -- config -----------------------------------------------------------------------------------


def test_heads_list_becomes_one_multi_head_and_round_trips():
    cfg = load_config(_config())
    assert cfg.head.name == "multi"
    head = get_registry().build_head(cfg.head.name, **cfg.head.params)
    assert head.names == ("debye", "stability") and head.weights == (1.0, 0.5)
    assert [s.name for s in head.latents] == ["theta_D", "stability_logit"]
    assert head.selected == ("cv", "p_unstable")
    # each head's loss is the mean over its observables, weighted by its weight
    assert effective_weights(head, {}) == {"cv": 1.0, "p_unstable": 0.5}
    assert effective_weights(head, {"cv": 2.0}) == {"cv": 2.0, "p_unstable": 0.5}
    again = load_config(cfg.to_dict())
    assert again.head == cfg.head


def test_single_head_configs_are_unchanged():
    cfg = load_config({"encoder": ENCODER, "head": {"name": "debye", "observables": ["cv"]}})
    assert cfg.head.name == "debye"
    head = get_registry().build_head("debye", observables=["cv"])
    assert effective_weights(head, {}) is None and effective_weights(head, {"cv": 2.0}) == {"cv": 2.0}
    assert "kind" not in head.observable("cv").as_dict()  # saved declarations as before


@pytest.mark.parametrize(("heads", "needle"), [
    ([{"name": "debye"}, {"name": "debye"}], "both declare the latent 'theta_D'"),
    ([{"name": "debye", "order": 10**9}], r"heads\[0\]"),
    ([{"name": "stability", "weight": -1}], r"heads\[0\].weight"),
    ([{"name": "no-such-head"}], "unknown head 'no-such-head'"),
    ([{"name": "debye", "weight": 0}], "weight 0"),
    ([], "non-empty list"),
    ([{"name": "multi", "heads": [{"name": "debye"}]}], "cannot hold another"),
])
def test_bad_head_lists_are_refused_by_name(heads, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config({"encoder": ENCODER, "heads": heads})


def test_head_and_heads_together_are_refused():
    with pytest.raises(ConfigError, match="either one head"):
        load_config({"encoder": ENCODER, "head": "debye", "heads": HEADS})


# -- loss ---------------------------------------------------------------------------------------


def test_each_heads_loss_only_where_its_labels_exist():
    head = get_registry().build_head("multi", heads=HEADS)

    class Enc:
        targets = {"cv": np.array([[20.0], [np.nan], [30.0]]), "p_unstable": np.array([[0.0], [1.0], [np.nan]])}
        n_atoms = np.array([2.0, 2.0, 3.0])
        temperatures = np.array([300.0])

    stats = target_stats(Enc, head)
    assert stats["observables"]["p_unstable"]["kind"] == "probability"
    assert "kind" not in stats["observables"]["cv"]
    cv = torch.tensor([[25.0], [99.0], [30.0]], dtype=torch.float64, requires_grad=True)
    p = torch.tensor([[0.2], [0.7], [0.9]], dtype=torch.float64, requires_grad=True)
    targets = {k: torch.tensor(v) for k, v in Enc.targets.items()}
    value = loss({"cv": cv, "p_unstable": p}, targets, torch.tensor(Enc.n_atoms), stats, "l1",
                 effective_weights(head, {}))
    value.backward()
    # the unstable item (no curve) gives no curve gradient; the unlabelled one no stability gradient
    assert cv.grad[1, 0] == 0 and cv.grad[0, 0] != 0
    assert p.grad[2, 0] == 0 and p.grad[0, 0] > 0 and p.grad[1, 0] < 0
    scale = stats["observables"]["cv"]["scale_per_atom"]
    l_cv = (abs(25.0 - 20.0) / 2 / scale + 0.0) / 2
    l_p = -(np.log(0.8) + np.log(0.7)) / 2
    assert float(value.detach()) == pytest.approx((1.0 * l_cv + 0.5 * l_p) / 1.5, rel=1e-12)


def test_probability_labels_outside_0_1_are_refused():
    head = get_registry().build_head("stability")

    class Enc:
        targets = {"p_unstable": np.array([[0.0], [2.0]])}
        n_atoms = np.array([1.0, 1.0])
        temperatures = np.array([300.0])

    with pytest.raises(Exception, match="outside"):
        target_stats(Enc, head)


# -- contract -----------------------------------------------------------------------------------


def test_contract_battery_covers_a_probability_head():
    from cloudphys.testing import CHECKS, check_head

    assert "per_item" in CHECKS
    for head in ("stability", get_registry().build_head("stability", observables=["p_unstable", "min_freq_thz"]),
                 get_registry().build_head("multi", heads=HEADS)):
        assert check_head(head).passed == list(CHECKS)


def test_per_item_check_catches_a_probability_outside_0_1():
    from cloudphys.physics import ObservableSpec
    from cloudphys.testing import HeadCheckError, check_head
    from cloudphys_stability.head import StabilityHead

    class Bad(StabilityHead):
        name = "bad-probability"
        observables = (ObservableSpec("p_unstable", "", False, kind="probability"),)

        def compute(self, latents, temperature, n_atoms, observables):
            z = latents["stability_logit"]
            return {"p_unstable": torch.broadcast_to(2 * torch.sigmoid(z), temperature.shape)}

    with pytest.raises(HeadCheckError, match="not a probability"):
        check_head(Bad(), checks=["per_item"])


def test_stability_head_needs_no_temperature():
    head = get_registry().build_head("stability")
    out = head(latents={"stability_logit": torch.tensor([-1.0, 0.0, 3.0])})
    assert out["p_unstable"].shape == (3,)
    assert torch.allclose(out["p_unstable"], torch.sigmoid(torch.tensor([-1.0, 0.0, 3.0])))
    with pytest.raises(ValueError, match="needs a temperature"):
        get_registry().build_head("debye")(latents={"theta_D": torch.tensor([300.0])})


# -- train, save, load, predict ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(data_root, tmp_path_factory):
    from cloudphys.training import fit

    reset()
    out = tmp_path_factory.mktemp("multi") / "run"
    data = {"train": _examples(data_root, 64, 0, 1), "val": _examples(data_root, 32, 200, 2)}
    res = fit(_config(), out, examples=data, tokenizer=tokenizer())
    return res, out, data


def test_joint_training_saves_one_model_with_every_head(trained):
    from cloudphys import load_model

    res, out, data = trained
    info = json.loads((out / "model" / "head.json").read_text())
    assert info["name"] == "multi"
    assert [(h["name"], h["weight"]) for h in info["config"]["heads"]] == [("debye", 1.0), ("stability", 0.5)]
    cal = info["config"]["heads"][1]["calibration"]
    meta = json.loads((out / "model" / "cloudphys.json").read_text())
    assert meta["calibration"]["stability"]["a"] == pytest.approx(cal[0])  # Platt scaling on val, saved
    model = load_model(out)
    pred = model.predict(list(data["val"].scope[:5]), temperatures=[100.0, 300.0])
    assert not pred.errors
    assert set(pred.observables) >= {"cv", "u", "p_unstable"}  # every head's outputs
    p = pred.observables["p_unstable"]
    assert np.all((p >= 0) & (p <= 1)) and np.array_equal(p[:, 0], p[:, 1])  # one value per item
    assert "p_unstable" in pred.columns() and pred.quantities["p_unstable"].upper == 1.0
    assert pred[0].values("p_unstable").shape == (2,)


def test_cli_predict_writes_a_p_unstable_column(trained, tmp_path):
    from cloudphys.cli import main

    _, out, data = trained
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scope", "n_atoms"])
        for s, n in zip(data["val"].scope[:4], data["val"].n_atoms[:4]):
            w.writerow([s, n])
    dst = tmp_path / "out.csv"
    assert main(["predict", "--model", str(out), "-i", str(src), "-o", str(dst), "--temperatures", "300"]) == 0
    with open(dst, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = list(rows[0])
    assert any(c.startswith("cv") for c in cols) and "p_unstable" in cols
    assert all(0.0 <= float(r["p_unstable"]) <= 1.0 for r in rows)


def test_load_refuses_a_head_list_entry_out_of_bounds(trained, tmp_path):
    import shutil

    from cloudphys.modeling.model import ScopePhysicsModel

    _, out, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(out / "model", bad)
    info = json.loads((bad / "head.json").read_text())
    info["config"]["heads"][0]["order"] = 10**9
    (bad / "head.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match=r"head.json.*heads\[0\]"):
        ScopePhysicsModel.from_pretrained(bad)
    info["config"]["heads"] = [{"name": "debye"}, {"name": "debye"}]
    (bad / "head.json").write_text(json.dumps(info))
    with pytest.raises(CheckpointError, match="theta_D"):
        ScopePhysicsModel.from_pretrained(bad)


def test_predict_with_a_second_model_adds_its_columns(trained, data_root, tmp_path, capsys):
    """``cloudphys predict --model CURVES --with STABILITY``: the curves of the first model, p_unstable
    of the second, one row per input and temperature."""
    from cloudphys.cli import main
    from cloudphys.training import fit

    _, multi_run, data = trained
    curves = tmp_path / "curves"
    cfg = {"encoder": ENCODER, "head": {"name": "debye", "observables": ["cv"]},
           "train": {**TINY["train"], "epochs": 1}}
    fit(cfg, curves, examples={"train": cloud_examples(data_root, 32, 0), "val": cloud_examples(data_root, 16, 300)},
        tokenizer=tokenizer())
    src = tmp_path / "in.csv"
    with open(src, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["scope", "n_atoms"])
        for s, n in zip(data["val"].scope[:3], data["val"].n_atoms[:3]):
            w.writerow([s, n])
        w.writerow(["not a scope string", 2])
    dst = tmp_path / "out.csv"
    assert main(["predict", "--model", str(curves), "--with", str(multi_run), "-i", str(src), "-o", str(dst),
                 "-T", "100,300", "--keep-going"]) == 0
    with open(dst, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 2 + 1  # the bad input keeps its row
    assert "p_unstable" in rows[0] and any(c.startswith("cv_") for c in rows[0])
    ok = [r for r in rows if not r["error"]]
    assert len(ok) == 6 and all(0 <= float(r["p_unstable"]) <= 1 for r in ok)
    meta = json.loads((tmp_path / "out.csv.json").read_text())
    assert "p_unstable" in meta["columns"] and "+" in meta["model"]
    capsys.readouterr()
    assert main(["predict", "--model", str(curves), "--with", str(curves), "-i", str(src),
                 "-o", str(tmp_path / "x.csv")]) == 1  # nothing new to add: refused by name
    assert "gives no observable the first model does not" in capsys.readouterr().err


def test_the_two_head_config_in_docs_plugins_md_loads():
    import re

    import yaml

    text = (Path(__file__).resolve().parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- two-head config -->\n```yaml\n(.*?)```", text, re.S)
    assert block is not None
    if "phonon-dos" not in get_registry().heads:
        pytest.skip("cloudphys-phonon-dos is not installed (pip install ./plugins/cloudphys-phonon-dos)")
    cfg = load_config(yaml.safe_load(block.group(1)))
    head = get_registry().build_head(cfg.head.name, **cfg.head.params)
    assert head.names == ("phonon-dos", "stability") and head.selected == ("cv", "s", "u", "p_unstable")
    assert cfg.data.params["stability"] is True
