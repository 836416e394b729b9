"""The head-author kit (cloudphys.testing): the battery passes correct heads, catches each kind of
broken head with the right check, strategies stay in bounds, vector latents, pytest plugin."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys.physics.contract import LatentSpec, PhysicsHead
from cloudphys.physics.debye import DebyeHead
from cloudphys.physics.harmonic import oscillator_thermo
from cloudphys.testing import (
    CHECKS,
    HeadCheckError,
    check_head,
    check_head_inputs,
    contract_tests,
    latent_grid,
)
from cloudphys.testing import (
    strategies as cst,
)


class ToyEinstein(PhysicsHead):
    """A correct head: 3n modes at one temperature θ (test-local, registered nowhere)."""

    name = "toy-einstein"
    latents = (LatentSpec("theta", "K", lower=1.0, upper=3000.0, typical=300.0, scale="log"),)
    observables = DebyeHead.observables

    def compute(self, latents, temperature, n_atoms, observables):
        per = oscillator_thermo(latents["theta"], temperature, observables)
        return {k: 3.0 * n_atoms.to(v.dtype) * v for k, v in per.items()}


class ToyHistogram(PhysicsHead):
    """A correct vector-latent head: K weights (bins set per instance) at fixed mode temperatures."""

    name = "toy-histogram"
    latents = (LatentSpec("w", "", lower=0.0, typical=1.0, shape=(4,)),)
    observables = DebyeHead.observables

    def __init__(self, observables=None, bins: int = 4):
        super().__init__(observables)
        self.bins = bins
        self.latents = (LatentSpec("w", "", lower=0.0, typical=1.0, shape=(bins,)),)

    def get_config(self):
        return {**super().get_config(), "bins": self.bins}

    def compute(self, latents, temperature, n_atoms, observables):
        w = latents["w"] + 1e-12
        g = 3.0 * n_atoms.unsqueeze(-1) * w / w.sum(-1, keepdim=True)
        theta = 100.0 * torch.arange(1, self.bins + 1, dtype=w.dtype, device=w.device)
        per = oscillator_thermo(theta, temperature.unsqueeze(-1), observables)
        return {k: (g.to(v.dtype) * v).sum(-1) for k, v in per.items()}


# -- correct heads pass --------------------------------------------------------------------------
@pytest.mark.parametrize("head", [DebyeHead, DebyeHead(order=60), "debye", ToyEinstein(), ToyHistogram(bins=7)])
def test_correct_heads_pass_every_check(head):
    report = check_head(head)
    assert report.passed == list(CHECKS)


def test_subset_of_observables_and_no_classical_limit():
    report = check_head(ToyEinstein(observables=["cv"]), classical_limit=False, samples=2)
    assert set(report.passed) == set(CHECKS)


# -- broken heads fail the right check -----------------------------------------------------------
class WrongCv(ToyEinstein):
    def compute(self, latents, temperature, n_atoms, observables):
        out = super().compute(latents, temperature, n_atoms, observables)
        if "cv" in out:
            out["cv"] = out["cv"] * (1.0 + 1e-3 * torch.tanh(temperature / 100.0))
        return out


class NaiveAtZero(ToyEinstein):
    """The textbook formula without the T = 0 treatment: value fine, gradient NaN at T = 0."""

    def compute(self, latents, temperature, n_atoms, observables):
        x = latents["theta"] / temperature
        out = super().compute(latents, temperature, n_atoms, observables)
        out["u"] = 3.0 * n_atoms * 8.314462618 * latents["theta"] * (0.5 + 1.0 / torch.expm1(x))
        return out


class SloppyFloat32(ToyEinstein):
    def compute(self, latents, temperature, n_atoms, observables):
        if temperature.dtype == torch.float32:
            latents = {"theta": latents["theta"].to(torch.bfloat16).to(torch.float32)}
        return super().compute(latents, temperature, n_atoms, observables)


class MixesBatch(ToyEinstein):
    def compute(self, latents, temperature, n_atoms, observables):
        theta = latents["theta"]
        theta = 0.999 * theta + 0.001 * theta.mean(0, keepdim=True)
        return super().compute({"theta": theta}, temperature, n_atoms, observables)


class TwoNR(ToyEinstein):
    def compute(self, latents, temperature, n_atoms, observables):
        return {k: v * 2.0 / 3.0 for k, v in super().compute(latents, temperature, n_atoms, observables).items()}


class EntropyOffset(ToyEinstein):
    """s + c and f − c·T: every identity holds, but s(T = 0) ≠ 0 (third law)."""

    def compute(self, latents, temperature, n_atoms, observables):
        out = super().compute(latents, temperature, n_atoms, observables)
        c = 0.5 * n_atoms
        if "s" in out:
            out["s"] = out["s"] + c
        if "f" in out:
            out["f"] = out["f"] - c * temperature
        return out


class IgnoresSelection(ToyEinstein):
    def compute(self, latents, temperature, n_atoms, observables):
        return super().compute(latents, temperature, n_atoms, ("u", "cv", "s", "f"))


class BadConfig(ToyEinstein):
    def get_config(self):
        return {**super().get_config(), "colour": "blue"}


class _DoubleGrad(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, g):
        return 2.0 * g


class WrongBackward(ToyEinstein):
    def compute(self, latents, temperature, n_atoms, observables):
        return super().compute({"theta": _DoubleGrad.apply(latents["theta"])}, temperature, n_atoms, observables)


class CubedRatio(ToyEinstein):
    """The pre-fix Debye bug: (T/θ)³·(θ/T)³ is inf·0 = NaN in float32 once T/θ ≳ 1e13."""

    def compute(self, latents, temperature, n_atoms, observables):
        out = super().compute(latents, temperature, n_atoms, observables)
        r = temperature / latents["theta"]
        out["u"] = out["u"] * (r**3 * (1.0 / r) ** 3)
        return out


@pytest.mark.parametrize(
    ("head", "check", "message"),
    [
        (CubedRatio(), "range", "u (torch.float32) is nan"),
        (WrongCv(), "identities", "cv = du/dT"),
        (NaiveAtZero(), "finite", "du/dtemperature"),
        (SloppyFloat32(), "dtype", "torch.float32 vs float64"),
        (MixesBatch(), "batch", "one sample vs batch"),
        (TwoNR(), "limits", "-> 3nR"),
        (EntropyOffset(), "limits", "s at T = 0"),
        (IgnoresSelection(), "shapes", "returned"),
        (BadConfig(), "declarations", "get_config()"),
        (WrongBackward(), "gradcheck", "gradcheck"),
    ],
)
def test_broken_head_is_caught_by_the_right_check(head, check, message):
    with pytest.raises(HeadCheckError) as info:
        check_head(head, samples=2)
    failed = {f.split("]")[0].lstrip("[") for f in info.value.failures}
    assert check in failed, info.value
    assert any(message in f for f in info.value.failures if f.startswith(f"[{check}]")), info.value
    assert info.value.head == "toy-einstein"
    assert "toy-einstein" in str(info.value)


def test_failures_are_specific():
    # A wrong classical limit alone leaves the identities, dtype and batch checks green.
    report = check_head(TwoNR(), checks=["identities", "dtype", "batch", "finite", "gradcheck"], samples=2)
    assert len(report.passed) == 5
    with pytest.raises(ValueError, match="unknown checks"):
        check_head(ToyEinstein(), checks=["nonsense"])
    with pytest.raises(TypeError, match="PhysicsHead"):
        check_head(42)


# -- the latent grid and strategies --------------------------------------------------------------
def test_latent_grid_covers_bounds_and_typical():
    grid = latent_grid(ToyHistogram(bins=5), samples=4, seed=1)
    w = grid["w"]
    assert w.shape[1:] == (5,) and w.dtype == torch.float64
    assert bool((w >= 0).all()) and bool((w == 0).all(-1).any()) and bool((w == 1).all(-1).any())
    assert bool(((w == 0).any(-1) & (w > 0).any(-1)).any())  # sparse random rows
    theta = latent_grid(ToyEinstein())["theta"]
    assert float(theta.min()) == 1.0 and float(theta.max()) == 3000.0 and 300.0 in theta.tolist()
    assert torch.equal(latent_grid(ToyEinstein(), seed=3)["theta"], latent_grid(ToyEinstein(), seed=3)["theta"])


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_strategies_stay_in_declared_bounds(data):
    head = ToyHistogram(bins=3)
    lat = data.draw(cst.latents(head, batch=2))
    assert lat["w"].shape == (2, 3) and bool((lat["w"] >= 0).all())
    theta = data.draw(cst.latent_values(DebyeHead.latents[0]))
    assert theta.shape == () and 1.0 <= float(theta) <= 5000.0
    T = data.draw(cst.temperatures(max_value=100.0, shape=(4,)))
    assert T.shape == (4,) and bool(((T >= 0) & (T <= 100.0)).all())
    inputs = data.draw(cst.head_inputs(head, curve=True))
    out = head(**inputs.as_kwargs())
    assert out["cv"].shape == inputs.temperature.shape


@settings(max_examples=15, deadline=None)
@given(cst.head_inputs(ToyHistogram(bins=6)))
def test_check_head_inputs_at_hypothesis_points(inputs):
    report = check_head_inputs(ToyHistogram(bins=6), *inputs)
    assert set(report.passed) == {"finite", "dtype", "batch", "identities", "limits"}


@settings(max_examples=10, deadline=None)
@given(cst.head_inputs(DebyeHead(), max_batch=3))
def test_check_head_inputs_on_debye(inputs):
    check_head_inputs(DebyeHead(), *inputs, checks=["finite", "identities", "limits"])


def test_check_head_inputs_catches_a_bad_point():
    with pytest.raises(HeadCheckError, match="identities"):
        check_head_inputs(WrongCv(), {"theta": torch.tensor([200.0])}, torch.tensor([[150.0, 300.0]]), 3)


# -- vector latents in the contract --------------------------------------------------------------
def test_vector_latents_follow_instance_declarations():
    head = ToyHistogram(bins=6)
    assert head.latent("w").shape == (6,)
    assert head.describe()["latents"][0]["shape"] == [6]
    assert ToyHistogram.describe()["latents"][0]["shape"] == [4]  # the class default
    json.dumps(head.describe())
    out = head(latents={"w": torch.rand(3, 6)}, temperature=torch.tensor([[0.0, 300.0]]), n_atoms=2)
    assert out["u"].shape == (3, 2)
    with pytest.raises(ValueError, match=r"latent 'w' must have shape"):
        head(latents={"w": torch.rand(3, 4)}, temperature=300.0, n_atoms=2)
    with pytest.raises(ValueError, match=r"invalid latent 'w'.*index \[1, 2\]"):
        w = torch.rand(3, 6)
        w[1, 2] = -1.0
        head(latents={"w": w}, temperature=300.0, n_atoms=2)


# -- one-line suites and the pytest plugin -------------------------------------------------------
test_contract_one_line = contract_tests(ToyEinstein, ToyHistogram(bins=3), samples=2)


def test_contract_tests_makes_one_item_per_head_and_check():
    fn = contract_tests("debye", ToyEinstein, checks=("finite", "limits"))
    (mark,) = [m for m in fn.pytestmark if m.name == "parametrize"]
    ids = [p.id for p in mark.args[1]]
    assert ids == ["debye-finite", "debye-limits", "toy-einstein-finite", "toy-einstein-limits"]
    with pytest.raises(ValueError):
        contract_tests()


def test_pytest_plugin_is_registered_and_runs_the_battery(tmp_path):
    (tmp_path / "test_mine.py").write_text(
        textwrap.dedent(
            """
            from cloudphys.physics.debye import DebyeHead

            def test_contract(check_head):
                report = check_head(DebyeHead(), checks=["finite", "identities"])
                assert report.passed == ["finite", "identities"]

            def test_strategies_fixture(head_strategies):
                assert hasattr(head_strategies, "head_inputs")

            def test_samples_option(request, check_head):
                assert request.config.getoption("--cloudphys-samples") == 2
                assert check_head.keywords == {"samples": 2}
            """
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "--cloudphys-samples", "2", str(tmp_path / "test_mine.py")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
