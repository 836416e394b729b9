"""The stability head: the contract battery (a probability, not a curve), hypothesis properties,
Platt calibration, the entry point, and the phonondb-thermo labels it trains on."""

from __future__ import annotations

import importlib.metadata as md
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys.testing import check_head, contract_tests
from cloudphys.testing import strategies as cst
from cloudphys_stability.head import StabilityHead, platt_fit

# The whole battery (the per_item check included), one test item per (head, check); the
# regression variant adds the lowest-frequency latent and observable.
test_contract = contract_tests(StabilityHead, StabilityHead(observables=["p_unstable", "min_freq_thz"]))


@settings(max_examples=60, deadline=None)
@given(cst.head_inputs(StabilityHead()))
def test_probability_in_0_1_and_the_same_at_every_temperature(inputs):
    head = StabilityHead()
    lat = {k: v.double() for k, v in inputs.latents.items()}
    out = head(latents=lat, temperature=inputs.temperature, n_atoms=inputs.n_atoms)["p_unstable"]
    assert bool(((out >= 0) & (out <= 1)).all())
    z = lat["stability_logit"]
    expected = torch.sigmoid(z)
    if out.ndim > expected.ndim:
        expected = expected.unsqueeze(-1)
    assert torch.allclose(out, expected.expand_as(out).to(out.dtype))


@settings(max_examples=40, deadline=None)
@given(st.floats(-1e4, 1e4), st.floats(0.05, 20.0), st.floats(-5.0, 5.0))
def test_finite_gradient_everywhere_float64(z, a, b):
    head = StabilityHead(calibration=[a, b])
    zt = torch.tensor([z], dtype=torch.float64, requires_grad=True)
    p = head(latents={"stability_logit": zt})["p_unstable"]
    (g,) = torch.autograd.grad(p.sum(), zt)
    assert torch.isfinite(p).all() and torch.isfinite(g).all() and 0 <= float(p) <= 1
    assert float(g) == pytest.approx(a * float(p) * (1 - float(p)), abs=1e-300, rel=1e-9)


def test_no_temperature_needed_and_one_value_per_item():
    head = StabilityHead(observables=["p_unstable", "min_freq_thz"])
    lat = {"stability_logit": torch.tensor([0.0, 2.0]), "lowest_freq_thz": torch.tensor([-1.5, 0.2])}
    out = head(latents=lat)
    assert out["p_unstable"].shape == (2,) and torch.equal(out["min_freq_thz"], lat["lowest_freq_thz"])
    curve = head(latents=lat, temperature=torch.tensor([[0.0, 300.0, 1000.0]] * 2))
    assert curve["p_unstable"].shape == (2, 3) and torch.equal(curve["p_unstable"][:, 0], out["p_unstable"])


def test_platt_fit_recovers_a_known_calibration():
    rng = np.random.default_rng(0)
    z = rng.normal(0.0, 2.0, 20000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.6 * z - 0.4)))).astype(float)
    a, b = platt_fit(z, y)
    assert a == pytest.approx(0.6, abs=0.04) and b == pytest.approx(-0.4, abs=0.05)


def test_calibrate_sets_and_saves_the_scaling():
    rng = np.random.default_rng(1)
    z = rng.normal(0.0, 3.0, 4000)
    y = (rng.random(z.size) < 1 / (1 + np.exp(-(0.3 * z + 0.5)))).astype(float)
    head = StabilityHead()
    before = head(latents={"stability_logit": torch.tensor(z)})["p_unstable"].numpy()
    record = head.calibrate({"stability_logit": z}, {"p_unstable": np.repeat(y[:, None], 3, axis=1)})
    after = head(latents={"stability_logit": torch.tensor(z)})["p_unstable"].numpy()

    def logloss(p):
        p = np.clip(p, 1e-15, 1 - 1e-15)
        return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))

    assert record["method"] == "platt" and record["n"] == 4000
    assert logloss(after) < logloss(before)
    assert head.get_config()["calibration"] == [record["a"], record["b"]]
    rebuilt = StabilityHead(**head.get_config())
    assert torch.equal(rebuilt(latents={"stability_logit": torch.tensor(z)})["p_unstable"], torch.tensor(after))


@pytest.mark.parametrize("bad", [[0.0, 0.0], [-1.0, 0.0], [1.0], [float("nan"), 0.0]])
def test_bad_calibration_is_refused(bad):
    with pytest.raises(ValueError, match="calibration"):
        StabilityHead(calibration=bad)


def test_registered_through_the_entry_point():
    try:
        md.distribution("cloudphys-stability")
    except md.PackageNotFoundError:
        pytest.skip("cloudphys-stability is not installed (pip install ./plugins/cloudphys-stability)")
    from cloudphys.plugins import DEFAULT_PLUGINS, Registry, make_plugin_manager

    eps = [ep for ep in md.entry_points(group="cloudphys") if ep.dist is not None
           and ep.dist.name == "cloudphys-stability"]
    assert [(ep.name, ep.value) for ep in eps] == [("stability", "cloudphys_stability")]
    reg = Registry(make_plugin_manager(DEFAULT_PLUGINS, entry_points=True))
    assert reg.owner("heads", "stability") == "stability"
    check_head(reg.build_head("stability"), checks=["declarations", "per_item"])


def test_phonondb_stability_labels():
    root = Path(os.environ.get("CLOUDPHYS_DATA", Path(__file__).resolve().parents[3] / "shared" / "data"))
    if not (root / "phonondb-thermo" / "materials.jsonl.gz").is_file():
        pytest.skip(f"{root}/phonondb-thermo not found (set CLOUDPHYS_DATA)")
    from cloudphys.data.phonondb import load_phonondb_thermo

    ex = load_phonondb_thermo("val", stability=True, observables=["cv"], temperatures=[300.0])
    only_stable = load_phonondb_thermo("val", observables=["cv"], temperatures=[300.0])
    p = ex.targets["p_unstable"][:, 0]
    assert set(np.unique(p)) == {0.0, 1.0}
    assert len(ex) > len(only_stable) and int((p == 0).sum()) == len(only_stable)
    # the unstable materials' curves are missing labels; the stable ones' are those of the default loader
    assert np.isnan(ex.targets["cv"][p == 1]).all() and np.isfinite(ex.targets["cv"][p == 0]).all()
    stable_ids = [i for i, q in zip(ex.ids, p) if q == 0]
    assert stable_ids == only_stable.ids
    assert np.array_equal(ex.targets["cv"][p == 0], only_stable.targets["cv"])
    assert (ex.targets["min_freq_thz"][p == 1, 0] <= -0.1).all()
