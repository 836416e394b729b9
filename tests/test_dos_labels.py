"""Phonon-DOS labels in training (issue 20): loader fields, joining splits, the W1 loss term, the config key."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cloudphys.data.base import Examples
from cloudphys.data.thermo_jsonl import dos_labels
from cloudphys.errors import ConfigError, DataError
from cloudphys.training.batching import concat, take
from cloudphys.training.losses import dos_w1

phonon_dos = pytest.importorskip("cloudphys_phonon_dos.head")


def _ex(n: int, with_dos: bool, k: int = 4) -> Examples:
    return Examples(
        ids=[f"m{i}" for i in range(n)], scope=["x"] * n, n_atoms=np.full(n, 2.0), temperatures=np.array([300.0]),
        targets={"cv": np.ones((n, 1))},
        dos=np.full((n, k), 1.5) if with_dos else None,
        dos_fmax_thz=np.full(n, 10.0) if with_dos else None,
        dos_atom=np.zeros(n) if with_dos else None,
    )


def test_dos_labels_from_rows_keeps_materials_without_one():
    rows = [
        {"dos": [1.0, 2.0, 3.0], "dos_fmax_thz": 9.0, "dos_nonpositive_modes": 0.5},
        {},  # no DOS: a NaN row, the material still trains on its curves
        {"dos": [1.0, 2.0], "dos_fmax_thz": 9.0},  # another length: left without a label
        {"dos": [1.0, float("nan"), 1.0], "dos_fmax_thz": 9.0},  # not finite
        {"dos": [1.0, 1.0, 1.0], "dos_fmax_thz": -1.0},  # bad fmax
    ]
    out = dos_labels(rows, "t")
    assert out["dos"].shape == (5, 3)
    np.testing.assert_array_equal(out["dos"][0], [1, 2, 3])
    assert out["dos_fmax_thz"][0] == 9.0 and out["dos_atom"][0] == 0.5
    assert np.isnan(out["dos"][1:]).all() and np.isnan(out["dos_fmax_thz"][1:]).all()
    assert dos_labels([{}, {}], "t") == {}


def test_examples_check_dos_shapes():
    with pytest.raises(ValueError, match="dos must have shape"):
        Examples(ids=["a"], scope=["x"], n_atoms=np.ones(1), temperatures=np.ones(1), dos=np.ones((2, 3)))


def test_concat_and_take_carry_dos():
    a, b = _ex(2, True), _ex(3, False)
    ab = concat(a, b)
    assert ab.dos.shape == (5, 4)
    assert np.isfinite(ab.dos[:2]).all() and np.isnan(ab.dos[2:]).all()
    assert np.isnan(ab.dos_fmax_thz[2:]).all()
    t = take(ab, np.array([4, 0]))
    assert np.isnan(t.dos[0]).all() and t.dos_fmax_thz[1] == 10.0
    assert concat(b, b).dos is None
    with pytest.raises(DataError, match="bins"):
        concat(a, _ex(1, True, k=5))


def test_phonondb_loader_gives_dos_labels():
    from cloudphys.data.phonondb import load_phonondb_thermo

    try:
        ex = load_phonondb_thermo("test", limit=4, observables=["cv"])
    except DataError as exc:  # pragma: no cover - the data directory is not there
        pytest.skip(str(exc))
    assert ex.dos is not None and ex.dos.shape == (4, 128)
    total = ex.dos.sum(1) + ex.dos_atom
    np.testing.assert_allclose(total, 3 * ex.n_atoms, rtol=1e-6)
    assert (ex.dos_fmax_thz > 0).all()


def _head_dos(bins: int, theta_max: float, weights: np.ndarray):
    head = phonon_dos.PhononDOSHead(bins=bins)
    lat = {"dos": torch.tensor(weights, dtype=torch.float64),
           "theta_max": torch.tensor([theta_max], dtype=torch.float64)}
    return head, lat


def test_dos_w1_zero_for_the_heads_own_dos_on_a_finer_grid():
    w = np.array([[0.0, 1.0, 3.0, 2.0]])
    head, lat = _head_dos(4, 8 * phonon_dos.K_PER_THZ, w)  # bins of 2 THz
    n = torch.tensor([2.0], dtype=torch.float64)
    edges, g = head.dos_histogram(lat, n)
    np.testing.assert_allclose(edges.numpy()[0], [0, 2, 4, 6, 8])
    assert float(g.sum()) == pytest.approx(6.0)
    fine = g.repeat_interleave(4, -1) / 4  # the same spectrum on 16 bins of 0.5 THz, up to 8 THz
    labels = {"mass": fine, "fmax_thz": torch.tensor([8.0], dtype=torch.float64),
              "atom": torch.zeros(1, dtype=torch.float64)}
    assert float(dos_w1(head, lat, n, labels)) == pytest.approx(0.0, abs=1e-12)
    # all label modes at 0 THz (the atom): W1 = the head's mean frequency
    labels0 = {"mass": torch.zeros(1, 16, dtype=torch.float64), "fmax_thz": torch.tensor([8.0], dtype=torch.float64),
               "atom": torch.tensor([6.0], dtype=torch.float64)}
    mean_f = float((g[0] * (edges[0, :-1] + 1.0)).sum() / 6.0)
    assert float(dos_w1(head, lat, n, labels0)) == pytest.approx(mean_f, rel=1e-12)


def test_dos_w1_leaves_unlabelled_rows_out_and_has_gradients():
    w = torch.rand(3, 8, dtype=torch.float64, requires_grad=True)
    tm = torch.tensor([500.0, 600.0, 700.0], dtype=torch.float64, requires_grad=True)
    head = phonon_dos.PhononDOSHead(bins=8)
    n = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    mass = torch.rand(3, 5, dtype=torch.float64)
    mass = mass / mass.sum(-1, keepdim=True) * 3 * n.unsqueeze(-1)
    mass[1] = float("nan")
    labels = {"mass": mass, "fmax_thz": torch.tensor([10.0, float("nan"), 14.0], dtype=torch.float64),
              "atom": torch.zeros(3, dtype=torch.float64)}
    each = dos_w1(head, {"dos": w, "theta_max": tm}, n, labels, reduce=False)
    each = each.detach()
    assert math.isnan(float(each[1])) and torch.isfinite(each[[0, 2]]).all()
    mean = dos_w1(head, {"dos": w, "theta_max": tm}, n, labels)
    assert float(mean.detach()) == pytest.approx(float(each[[0, 2]].mean()), rel=1e-12)
    mean.backward()
    assert torch.isfinite(w.grad).all() and float(w.grad[1].abs().sum()) == 0.0
    assert torch.isfinite(tm.grad).all() and float(tm.grad[0]) != 0.0
    # float64 gradcheck through the head and the distance
    w2 = torch.rand(2, 8, dtype=torch.float64, requires_grad=True)
    tm2 = torch.tensor([510.0, 690.0], dtype=torch.float64, requires_grad=True)
    lab2 = {k: v[[0, 2]] for k, v in labels.items()}
    assert torch.autograd.gradcheck(lambda a, b: dos_w1(head, {"dos": a, "theta_max": b}, n[[0, 2]], lab2), (w2, tm2))


def test_dos_weight_config_key_is_bounded():
    from cloudphys.config import load_config

    base = {"encoder": {"name": "scope-bert"}, "head": {"name": "phonon-dos", "observables": ["cv"]}}
    cfg = load_config({**base, "train": {"dos_weight": 0.05}})
    assert cfg.train.dos_weight == 0.05
    assert load_config(base).train.dos_weight == 0.0
    for bad in (-1.0, float("nan"), 1e9, 1e39):
        with pytest.raises(ConfigError, match="train.dos_weight"):
            load_config({**base, "train": {"dos_weight": bad}})
