"""The phonon-DOS head: exact harmonic sums (mpmath), normalisation, configuration, learning a DOS
from thermodynamic labels alone, the contract kit."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch
from hypothesis import given, settings

from cloudphys.physics.contract import R_GAS
from cloudphys.physics.debye import DebyeHead
from cloudphys.physics.harmonic import oscillator_thermo
from cloudphys.testing import check_head_inputs, contract_tests
from cloudphys.testing import strategies as cst
from cloudphys_phonon_dos.head import K_PER_THZ, PhononDOSHead

mp.mp.dps = 40

# The contract battery for the default head (learned θ_max, 16 bins) and a configured one.
test_contract = contract_tests(PhononDOSHead, PhononDOSHead(bins=5, theta_max=800.0))


def mode_ref(theta, T):
    R = mp.mpf(R_GAS)
    theta, T = mp.mpf(theta), mp.mpf(T)
    if T == 0:
        return {"u": R * theta / 2, "cv": mp.mpf(0), "s": mp.mpf(0), "f": R * theta / 2}
    x = theta / T
    return {
        "u": R * theta * (mp.mpf(1) / 2 + 1 / mp.expm1(x)),
        "cv": R * (x / 2 / mp.sinh(x / 2)) ** 2,
        # ln(1 − e⁻ˣ) as log1p(−e⁻ˣ): log(−expm1(−x)) loses e⁻ˣ < 1e-40 at 40 digits.
        "s": R * (x / mp.expm1(x) - mp.log1p(-mp.exp(-x))),
        "f": R * theta / 2 + R * T * mp.log1p(-mp.exp(-x)),
    }


def _error(key, got, ref, n, energy_scale, dtype):
    """u, f relative to n·R·(T + θ_max); cv, s relative to min(|value|, n·R) (the value, and never
    weaker than the earlier n·R criterion) where the value is ≥ finfo(dtype).tiny, else absolute
    error ≤ tiny (0 if so, inf if not)."""
    diff = abs(mp.mpf(got) - ref)
    if key in ("u", "f"):
        return float(diff / energy_scale)
    tiny = torch.finfo(dtype).tiny
    if abs(ref) >= tiny:
        return float(diff / min(abs(ref), n * mp.mpf(R_GAS)))
    return 0.0 if diff <= tiny else math.inf


@pytest.mark.parametrize(("dtype", "bound"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_exact_harmonic_sums_against_mpmath(dtype, bound):
    # Accuracy at the inputs as the head sees them (rounded to dtype). The low temperatures put the
    # lowest bins at x = θ_k/T ≈ 20–700: cv and s at or near the smallest normal number of float32
    # (x ≈ 87–97) and of float64 (x ≈ 700).
    gen = torch.Generator().manual_seed(0)
    head = PhononDOSHead(bins=8)
    temps = [0.0, 1e-3, 0.25, 0.3, 0.9, 6.0, 45.0, 300.0, 1000.0, 1e5]
    worst = {k: 0.0 for k in ("u", "cv", "s", "f")}
    for theta_max, n in [(10.0, 1.0), (350.0, 3.0), (1900.0, 8.0), (10000.0, 2.0)]:
        w = torch.rand(8, generator=gen, dtype=torch.float64)
        w[3] = 0.0
        T = torch.tensor([temps], dtype=dtype)
        out = head(latents={"dos": w.to(dtype)[None], "theta_max": torch.tensor([theta_max], dtype=dtype)},
                   temperature=T, n_atoms=n)
        wm = [mp.mpf(float(v)) + mp.mpf("1e-12") for v in w.to(dtype).double()]
        g = [3 * n * v / sum(wm) for v in wm]
        thetas = [mp.mpf(float(torch.tensor(theta_max, dtype=dtype))) * (k + mp.mpf(1) / 2) / 8 for k in range(8)]
        for j, t in enumerate(T[0].tolist()):
            for key, val in out.items():
                ref = sum(gk * mode_ref(th, t)[key] for gk, th in zip(g, thetas))
                scale = n * R_GAS * (t + theta_max)
                worst[key] = max(worst[key], _error(key, float(val[0, j]), ref, n, scale, dtype))
    assert max(worst.values()) <= bound, worst


def test_normalised_to_3n_modes_and_scale_free():
    head = PhononDOSHead()
    w = torch.rand(3, 16, dtype=torch.float64)
    lat = {"dos": w, "theta_max": torch.tensor([100.0, 500.0, 2500.0], dtype=torch.float64)}
    n = torch.tensor([1.0, 4.0, 30.0], dtype=torch.float64)
    theta_k, g = head.density_of_states(lat, n)
    torch.testing.assert_close(g.sum(-1), 3 * n, rtol=1e-14, atol=0)
    assert bool((g >= 0).all())
    torch.testing.assert_close(theta_k[1], 500.0 * (torch.arange(16, dtype=torch.float64) + 0.5) / 16)
    T = torch.tensor([[0.0, 50.0, 300.0]], dtype=torch.float64)
    a = head(latents=lat, temperature=T, n_atoms=n)
    b = head(latents={**lat, "dos": 1e3 * w}, temperature=T, n_atoms=n)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-10, atol=0)  # scale-free up to ε = 1e-12


def test_zero_weights_give_a_flat_dos_and_one_hot_gives_an_einstein_solid():
    head = PhononDOSHead(bins=4, theta_max=800.0)
    T = torch.tensor([[0.0, 20.0, 300.0, 3000.0]], dtype=torch.float64)
    flat = head(latents={"dos": torch.zeros(1, 4, dtype=torch.float64)}, temperature=T, n_atoms=2)
    ones = head(latents={"dos": torch.ones(1, 4, dtype=torch.float64)}, temperature=T, n_atoms=2)
    for k in flat:
        torch.testing.assert_close(flat[k], ones[k], rtol=1e-12, atol=0)
    one_hot = torch.tensor([[0.0, 0.0, 1.0, 0.0]], dtype=torch.float64)
    out = head(latents={"dos": one_hot}, temperature=T, n_atoms=2)
    ref = oscillator_thermo(torch.tensor(500.0, dtype=torch.float64), T)  # centre of bin 3: 2.5/4·800 K
    for k in out:
        torch.testing.assert_close(out[k], 6.0 * ref[k], rtol=1e-10, atol=1e-9)
    assert K_PER_THZ == pytest.approx(6.62607015e-34 * 1e12 / 1.380649e-23, rel=1e-12)


def test_configuration_and_errors():
    head = PhononDOSHead(observables=["cv"], bins=10, theta_max=700.0)
    assert [s.name for s in head.latents] == ["dos"] and head.latent("dos").shape == (10,)
    assert head.describe()["latents"][0]["shape"] == [10]
    assert PhononDOSHead.describe()["latents"][0]["shape"] == [16]
    assert [s.name for s in PhononDOSHead().latents] == ["dos", "theta_max"]
    clone = PhononDOSHead(**head.get_config())
    assert clone.get_config() == {"observables": ["cv"], "bins": 10, "theta_max": 700.0}
    assert head.state_dict() == {} or all(not k for k in head.state_dict())  # nothing to save
    for bad in ({"bins": 0}, {"bins": 2.5}, {"bins": True}, {"theta_max": 1.0}, {"theta_max": 1e6}):
        with pytest.raises(ValueError, match="bins|theta_max"):
            PhononDOSHead(**bad)
    with pytest.raises(ValueError, match=r"latent 'dos' must have shape"):
        head(latents={"dos": torch.rand(2, 16)}, temperature=300.0, n_atoms=1)
    with pytest.raises(ValueError, match=r"invalid latent 'dos'"):
        head(latents={"dos": -torch.rand(2, 10)}, temperature=300.0, n_atoms=1)


def test_float32_and_bfloat16_inputs_compute_in_float32():
    head = PhononDOSHead()
    lat = {"dos": torch.rand(2, 16), "theta_max": torch.tensor([300.0, 900.0])}
    T = torch.tensor([[0.0, 300.0]])
    ref = head(latents={k: v.double() for k, v in lat.items()}, temperature=T.double(), n_atoms=3)
    low = head(latents={k: v.bfloat16() for k, v in lat.items()}, temperature=T.bfloat16(), n_atoms=3)
    assert low["cv"].dtype == torch.bfloat16
    rel = (low["cv"].double() - ref["cv"]).abs() / (9 * R_GAS)
    assert float(rel.max()) < 2e-2


def test_learns_a_debye_dos_from_heat_capacity_alone():
    """Fit the latents (through softplus / log, as an encoder's latent layer does) to Debye cv
    curves only: the heat capacity is reproduced and the fitted DOS grows like ω² as Debye's."""
    torch.manual_seed(0)
    T = torch.tensor([[20.0, 30, 40, 60, 80, 100, 150, 200, 300, 400, 600, 800, 1000]], dtype=torch.float64)
    theta_d = torch.tensor([180.0, 420.0], dtype=torch.float64)
    n = torch.tensor([2.0, 5.0], dtype=torch.float64)
    target = DebyeHead()(latents={"theta_D": theta_d}, temperature=T, n_atoms=n, observables=("cv",))["cv"]
    head = PhononDOSHead(observables=["cv"])
    z = torch.zeros(2, 16, dtype=torch.float64, requires_grad=True)
    log_tmax = torch.full((2,), math.log(600.0), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([z, log_tmax], lr=0.05)
    for _ in range(600):
        opt.zero_grad()
        lat = {"dos": torch.nn.functional.softplus(z), "theta_max": log_tmax.exp().clamp(10.0, 10000.0)}
        cv = head(latents=lat, temperature=T, n_atoms=n)["cv"]
        loss = ((cv - target) / n[:, None]).abs().mean()
        loss.backward()
        opt.step()
    assert float(loss.detach()) < 0.1  # mean absolute cv error, J/(K·mol-atom)
    lat = {"dos": torch.nn.functional.softplus(z).detach(), "theta_max": log_tmax.detach().exp()}
    theta_k, g = head.density_of_states(lat, n)
    share = g / g.sum(-1, keepdim=True)
    # Debye DOS ∝ θ² up to θ_D: mean mode temperature 3/4·θ_D, 1/8 of the modes below θ_D/2, none above θ_D.
    mean = (share * theta_k).sum(-1) / theta_d
    assert bool(((mean > 0.7) & (mean < 0.8)).all()), mean
    assert bool(((share * (theta_k < theta_d[:, None] / 2)).sum(-1) < 0.2).all())
    assert bool(((share * (theta_k > 1.1 * theta_d[:, None])).sum(-1) < 0.1).all())


@settings(max_examples=15, deadline=None)
@given(cst.head_inputs(PhononDOSHead(bins=6), max_batch=3))
def test_contract_at_hypothesis_points(inputs):
    check_head_inputs(PhononDOSHead(bins=6), *inputs, checks=["finite", "identities", "limits", "batch"])
