"""``train.formula_weight``: per-example loss weights by composition, so a polytype family does not
outweigh the rest of the training split (issue 20: phonondb's 113 CdI2 polytypes in train)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from cloudphys.config import load_config
from cloudphys.errors import ConfigError
from cloudphys.training.batching import composition_key, formula_weights
from cloudphys.training.losses import dos_w1, loss

ROCKSALT = "1 6 a O D D a D O D b O O O c O O O d O O O e O O O 0 | 4a 4b | Na 0.5 Cl 0.5"


def test_the_composition_is_what_polymorphs_share() -> None:
    assert composition_key(ROCKSALT) == "Cl 1/2 Na 1/2"
    other_sites = ROCKSALT.replace("| 4a 4b |", "| 8c |")  # other sites, the same composition
    assert composition_key(other_sites) == composition_key(ROCKSALT)
    other_order = ROCKSALT.replace("Na 0.5 Cl 0.5", "Cl 0.5 Na 0.5")
    assert composition_key(other_order) == composition_key(ROCKSALT)
    assert composition_key(ROCKSALT.replace("Cl", "Br")) != composition_key(ROCKSALT)
    # a string that does not parse: its text after the last bar (or all of it), spaces normalised
    assert composition_key("Na  0.5   Cl 0.5 ") == "Na 0.5 Cl 0.5"
    assert composition_key("x | y |  Zn 0.5  S 0.5") == "Zn 0.5 S 0.5"


def test_weights_give_each_composition_its_share() -> None:
    scope = ["a | 1a | Zn 0.5 S 0.5"] * 3 + ["b | 1a | Mg 0.5 O 0.5", "c | 1a | Na 0.5 Cl 0.5"]
    assert formula_weights(scope, 0.0) is None
    w1 = formula_weights(scope, 1.0)
    assert w1 is not None and w1.mean() == pytest.approx(1.0)
    # with α = 1 the three ZnS together weigh what MgO weighs alone
    assert w1[:3].sum() == pytest.approx(w1[3]) and w1[3] == pytest.approx(w1[4])
    w_half = formula_weights(scope, 0.5)
    assert w_half.mean() == pytest.approx(1.0)
    assert w_half[0] / w_half[3] == pytest.approx(3 ** -0.5)
    # unique compositions: every weight 1, whatever α
    np.testing.assert_allclose(formula_weights(scope[2:], 1.0), 1.0)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_the_exponent_is_bounded(bad: float) -> None:
    base = {"encoder": {"name": "scope-bert"}, "head": {"name": "debye", "observables": ["cv"]}}
    assert load_config({**base, "train": {"formula_weight": 0.5}}).train.formula_weight == 0.5
    assert load_config(base).train.formula_weight == 0.0
    with pytest.raises(ConfigError, match="train.formula_weight"):
        load_config({**base, "train": {"formula_weight": bad}})
    with pytest.raises(ConfigError, match="formula_weight"):
        formula_weights(["x"], bad)


def _stats() -> dict:
    return {"observables": {"cv": {"extensive": True, "scale_per_atom": 2.0}}}


def test_weighted_loss_is_the_weighted_mean_and_ones_change_nothing() -> None:
    torch.manual_seed(0)
    pred = {"cv": torch.rand(4, 3, dtype=torch.float64)}
    target = {"cv": torch.rand(4, 3, dtype=torch.float64)}
    target["cv"][1, 2] = float("nan")  # a missing label stays out of both sums
    n = torch.tensor([1.0, 2.0, 2.0, 4.0], dtype=torch.float64)
    plain = loss(pred, target, n, _stats(), "l1")
    ones = loss(pred, target, n, _stats(), "l1", example_weights=torch.ones(4, dtype=torch.float64))
    assert float(ones) == pytest.approx(float(plain), rel=1e-12)
    w = torch.tensor([0.0, 1.0, 3.0, 0.5], dtype=torch.float64)
    err = ((pred["cv"] - target["cv"]) / n[:, None] / 2.0).abs()
    ok = torch.isfinite(err)
    want = (torch.where(ok, err, 0.0) * w[:, None]).sum() / (ok * w[:, None]).sum()
    got = loss(pred, target, n, _stats(), "l1", example_weights=w)
    assert float(got) == pytest.approx(float(want), rel=1e-12)
    # a weight of 0 takes its example out: changing its prediction changes nothing
    moved = {"cv": pred["cv"].clone()}
    moved["cv"][0] += 10.0
    assert float(loss(moved, target, n, _stats(), "l1", example_weights=w)) == pytest.approx(float(got), rel=1e-12)


def test_weighted_dos_term_is_the_weighted_mean_of_the_per_material_distances() -> None:
    phonon_dos = pytest.importorskip("cloudphys_phonon_dos.head")
    head = phonon_dos.PhononDOSHead(bins=8)
    torch.manual_seed(1)
    lat = {"dos": torch.rand(3, 8, dtype=torch.float64),
           "theta_max": torch.tensor([500.0, 600.0, 700.0], dtype=torch.float64)}
    n = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    mass = torch.rand(3, 5, dtype=torch.float64)
    mass = mass / mass.sum(-1, keepdim=True) * 3 * n.unsqueeze(-1)
    labels = {"mass": mass, "fmax_thz": torch.tensor([10.0, 12.0, 14.0], dtype=torch.float64),
              "atom": torch.zeros(3, dtype=torch.float64)}
    each = dos_w1(head, lat, n, labels, reduce=False)
    w = torch.tensor([2.0, 0.0, 1.0], dtype=torch.float64)
    got = dos_w1(head, lat, n, labels, example_weights=w)
    assert float(got) == pytest.approx(float((each * w).sum() / w.sum()), rel=1e-12)
    ones = dos_w1(head, lat, n, labels, example_weights=torch.ones(3, dtype=torch.float64))
    assert float(ones) == pytest.approx(float(dos_w1(head, lat, n, labels)), rel=1e-12)


def test_fit_with_formula_weight_trains_and_leaves_validation_unweighted(data_root, tmp_path) -> None:
    from _training_helpers import TINY, cloud_examples, tokenizer

    from cloudphys.training import fit

    train, val = cloud_examples(data_root, 32), cloud_examples(data_root, 8, offset=32)
    # a polytype family: the first 12 training strings share one composition
    family = train.scope[0].rsplit("|", 1)[1]
    train.scope = [s.rsplit("|", 1)[0] + "|" + family if i < 12 else s for i, s in enumerate(train.scope)]
    assert len({composition_key(s) for s in train.scope[:12]}) == 1
    runs = {}
    for alpha in (0.0, 1.0):
        cfg = copy.deepcopy(TINY)
        cfg["train"] = {**cfg["train"], "epochs": 2, "formula_weight": alpha}
        rows: list[dict] = []
        fit(cfg, None, tokenizer=tokenizer(), examples={"train": train, "val": val}, callbacks=[rows.append])
        runs[alpha] = rows
    assert all(np.isfinite(r["val_loss"]) for rows in runs.values() for r in rows)
    # the first epoch starts from the same weights; the weighted loss moves them differently
    assert runs[0.0][0]["train_loss"] != runs[1.0][0]["train_loss"]
