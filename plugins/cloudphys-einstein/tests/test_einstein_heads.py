"""Einstein and Debye+Einstein heads: accuracy against mpmath, limits, the contract kit."""

from __future__ import annotations

import math

import mpmath as mp
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys.physics.contract import R_GAS
from cloudphys.physics.debye import DebyeHead
from cloudphys.testing import check_head, check_head_inputs, contract_tests, strategies as cst
from cloudphys_einstein.heads import DebyeEinsteinHead, EinsteinHead

mp.mp.dps = 40
R = mp.mpf(R_GAS)

# The whole contract battery, one test item per (head, check).
test_contract = contract_tests(EinsteinHead, DebyeEinsteinHead)


def einstein_ref(theta: float, T: float) -> dict[str, mp.mpf]:
    """One mode, per mole of modes (mpmath)."""
    theta, T = mp.mpf(theta), mp.mpf(T)
    if T == 0:
        return {"u": R * theta / 2, "cv": mp.mpf(0), "s": mp.mpf(0), "f": R * theta / 2}
    x = theta / T
    return {
        "u": R * theta * (mp.mpf(1) / 2 + 1 / mp.expm1(x)),
        "cv": R * (x / 2 / mp.sinh(x / 2)) ** 2,
        "s": R * (x / mp.expm1(x) - mp.log(-mp.expm1(-x))),
        "f": R * theta / 2 + R * T * mp.log(-mp.expm1(-x)),
    }


def debye3_ref(theta: float, T: float) -> dict[str, mp.mpf]:
    """Debye solid of one atom (3 modes), per mole (mpmath quadrature of the Debye function)."""
    theta, T = mp.mpf(theta), mp.mpf(T)
    zpe = mp.mpf(9) / 8 * R * theta
    if T == 0:
        return {"u": zpe, "cv": mp.mpf(0), "s": mp.mpf(0), "f": zpe}
    x = theta / T
    d3 = 3 / x**3 * mp.quad(lambda t: t**3 / mp.expm1(t), [0, min(x, 20), x] if x > 20 else [0, x])
    log_term = mp.log(-mp.expm1(-x))
    u = zpe + 3 * R * T * d3
    s = R * (4 * d3 - 3 * log_term)
    return {"u": u, "cv": 3 * R * (4 * d3 - 3 * x / mp.expm1(x)), "s": s, "f": u - T * s}


THETAS = [1.0, 7.5, 95.0, 300.0, 1234.0, 5000.0]
TEMPS = [0.0, 1e-3, 0.7, 5.0, 40.0, 300.0, 999.0, 5000.0, 1e5]
NS = [1.0, 2.0, 7.0]


def _errors(head, latents_of, ref_of, dtype):
    worst = {k: 0.0 for k in ("u", "cv", "s", "f")}
    for i, th in enumerate(THETAS):
        th2 = THETAS[(i + 2) % len(THETAS)]
        for n in NS:
            T = torch.tensor([TEMPS], dtype=dtype)
            out = head(latents=latents_of(th, th2, dtype), temperature=T, n_atoms=n)
            for j, t in enumerate(TEMPS):
                ref = ref_of(th, th2, t, n)
                for k, v in out.items():
                    scale = n * R_GAS * (t + max(th, th2)) if k in ("u", "f") else n * R_GAS
                    worst[k] = max(worst[k], abs(float(v[0, j]) - float(ref[k])) / scale)
    return worst


def _einstein_case():
    return (
        EinsteinHead(),
        lambda th, _th2, dtype: {"theta_E": torch.tensor([th], dtype=dtype)},
        lambda th, _th2, t, n: {k: 3 * n * v for k, v in einstein_ref(th, t).items()},
    )


def _debye_einstein_case():
    def ref(thd, the, t, n):
        a, o = debye3_ref(thd, t), einstein_ref(the, t)
        return {k: a[k] + 3 * (n - 1) * o[k] for k in a}

    return (
        DebyeEinsteinHead(),
        lambda th, th2, dtype: {"theta_D": torch.tensor([th], dtype=dtype), "theta_E": torch.tensor([th2], dtype=dtype)},
        ref,
    )


@pytest.mark.parametrize("case", [_einstein_case, _debye_einstein_case], ids=["einstein", "debye-einstein"])
@pytest.mark.parametrize(("dtype", "bound"), [(torch.float64, 1e-10), (torch.float32, 1e-5)])
def test_accuracy_against_mpmath(case, dtype, bound):
    head, latents_of, ref_of = case()
    worst = _errors(head, latents_of, ref_of, dtype)
    assert max(worst.values()) <= bound, worst


def test_einstein_limits_and_units():
    head = EinsteinHead()
    theta = torch.tensor([200.0, 200.0], dtype=torch.float64)
    out = head(latents={"theta_E": theta}, temperature=torch.tensor([0.0, 1e6], dtype=torch.float64), n_atoms=4)
    assert float(out["u"][0]) == pytest.approx(3 * 4 * R_GAS * 200.0 / 2, rel=1e-15)  # zero-point energy
    assert float(out["cv"][0]) == 0.0 and float(out["s"][0]) == 0.0 and float(out["f"][0]) == float(out["u"][0])
    x = 200.0 / 1e6  # Dulong-Petit with its first correction: cv = 3nR(1 − x²/12 + ...)
    assert float(out["cv"][1]) == pytest.approx(3 * 4 * R_GAS * (1 - x * x / 12), rel=1e-13)
    # Low T: cv ≈ 3nR x² e^-x (exponential freeze-out, not T³).
    T = torch.tensor([10.0], dtype=torch.float64)
    cv = float(head(latents={"theta_E": torch.tensor([200.0], dtype=torch.float64)}, temperature=T, n_atoms=1)["cv"])
    assert cv == pytest.approx(3 * R_GAS * 400.0 * math.exp(-20.0), rel=1e-7)


def test_debye_einstein_reduces_to_debye_for_one_atom():
    T = torch.tensor([[0.0, 3.0, 50.0, 300.0, 2000.0]], dtype=torch.float64)
    theta_d = torch.tensor([321.0], dtype=torch.float64)
    de = DebyeEinsteinHead()(latents={"theta_D": theta_d, "theta_E": torch.tensor([77.0], dtype=torch.float64)}, temperature=T, n_atoms=1)
    d = DebyeHead()(latents={"theta_D": theta_d}, temperature=T, n_atoms=1)
    for k in d:
        torch.testing.assert_close(de[k], d[k], rtol=1e-14, atol=1e-12)


def test_debye_einstein_t3_law_and_mode_split():
    # Far below both temperatures the acoustic Debye T³ law dominates: cv = 12π⁴/5·R·(T/θ_D)³.
    head = DebyeEinsteinHead()
    lat = {"theta_D": torch.tensor([300.0], dtype=torch.float64), "theta_E": torch.tensor([600.0], dtype=torch.float64)}
    cv = float(head(latents=lat, temperature=torch.tensor([3.0], dtype=torch.float64), n_atoms=5)["cv"])
    assert cv == pytest.approx(12 * math.pi**4 / 5 * R_GAS * (3.0 / 300.0) ** 3, rel=1e-6)
    # Zero-point energy: 9/8·R·θ_D (acoustic) + 3(n−1)·R·θ_E/2 (optical).
    u0 = float(head(latents=lat, temperature=torch.tensor([0.0], dtype=torch.float64), n_atoms=5)["u"])
    assert u0 == pytest.approx(R_GAS * (9 / 8 * 300.0 + 12 * 300.0), rel=1e-14)


def test_debye_einstein_rejects_fewer_than_one_atom():
    head = DebyeEinsteinHead()
    lat = {"theta_D": torch.tensor([300.0, 300.0]), "theta_E": torch.tensor([500.0, 500.0])}
    with pytest.raises(ValueError, match=r"n_atoms 0.5.*>= 1"):
        head(latents=lat, temperature=300.0, n_atoms=torch.tensor([2.0, 0.5]))


def test_rebuilds_from_config_with_quadrature_order():
    head = DebyeEinsteinHead(observables=["cv"], order=60)
    clone = DebyeEinsteinHead(**head.get_config())
    assert clone.get_config() == {"observables": ["cv"], "order": 60} and clone.acoustic.order == 60
    report = check_head(clone, samples=2)
    assert "identities" in report.passed


@settings(max_examples=20, deadline=None)
@given(cst.head_inputs(DebyeEinsteinHead(), max_batch=3), st.sampled_from([EinsteinHead, DebyeEinsteinHead]))
def test_contract_at_hypothesis_points(inputs, cls):
    head = cls()
    lat = {s.name: inputs.latents[s.name] for s in head.latents}  # inputs drawn for θ_D and θ_E
    check_head_inputs(head, lat, inputs.temperature, inputs.n_atoms, checks=["finite", "identities", "limits"])
