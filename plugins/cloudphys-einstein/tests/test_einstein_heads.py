"""Einstein and Debye+Einstein heads: accuracy against mpmath, limits, the contract kit."""

from __future__ import annotations

import math
from functools import lru_cache

import mpmath as mp
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys.physics.contract import R_GAS
from cloudphys.physics.debye import DebyeHead
from cloudphys.testing import check_head, check_head_inputs, contract_tests
from cloudphys.testing import strategies as cst
from cloudphys_einstein.heads import DebyeEinsteinHead, EinsteinHead

mp.mp.dps = 40
R = mp.mpf(R_GAS)

# The whole contract battery, one test item per (head, check).
test_contract = contract_tests(EinsteinHead, DebyeEinsteinHead)


def _log1m_exp(x: mp.mpf) -> mp.mpf:
    """ln(1 − e⁻ˣ), accurate at 40 digits also where e⁻ˣ is far below 1e-40 (log(−expm1(−x)) is not)."""
    return mp.log1p(-mp.exp(-x))


@lru_cache(maxsize=None)
def einstein_ref(theta: float, T: float) -> dict[str, mp.mpf]:
    """One mode, per mole of modes (mpmath)."""
    theta, T = mp.mpf(theta), mp.mpf(T)
    if T == 0:
        return {"u": R * theta / 2, "cv": mp.mpf(0), "s": mp.mpf(0), "f": R * theta / 2}
    x = theta / T
    return {
        "u": R * theta * (mp.mpf(1) / 2 + 1 / mp.expm1(x)),
        "cv": R * (x / 2 / mp.sinh(x / 2)) ** 2,
        "s": R * (x / mp.expm1(x) - _log1m_exp(x)),
        "f": R * theta / 2 + R * T * _log1m_exp(x),
    }


@lru_cache(maxsize=None)
def debye3_ref(theta: float, T: float) -> dict[str, mp.mpf]:
    """Debye solid of one atom (3 modes), per mole (mpmath quadrature of the Debye function)."""
    theta, T = mp.mpf(theta), mp.mpf(T)
    zpe = mp.mpf(9) / 8 * R * theta
    if T == 0:
        return {"u": zpe, "cv": mp.mpf(0), "s": mp.mpf(0), "f": zpe}
    x = theta / T
    d3 = 3 / x**3 * mp.quad(lambda t: t**3 / mp.expm1(t), [0, min(x, 20), x] if x > 20 else [0, x])
    log_term = _log1m_exp(x)
    u = zpe + 3 * R * T * d3
    s = R * (4 * d3 - 3 * log_term)
    return {"u": u, "cv": 3 * R * (4 * d3 - 3 * x / mp.expm1(x)), "s": s, "f": u - T * s}


THETAS = [1.0, 7.5, 95.0, 300.0, 1234.0, 5000.0]
TEMPS = [0.0, 1e-3, 0.7, 5.0, 40.0, 300.0, 999.0, 5000.0, 1e5]
NS = [1.0, 2.0, 7.0]
# θ/T over the whole range 1e-3 … 1e4, plus a dense window where e⁻ˣ, cv and s reach the
# smallest normal number of float32 (x ≈ 87–97) and float64 (x ≈ 700–720); T = 0 is added per case.
RATIOS = sorted(
    {float(r) for r in np.logspace(-3, 4, 71)}
    | {float(r) for r in np.arange(20.0, 121.0, 2.5)}
    | {300.0, 600.0, 700.0, 708.0, 715.0, 720.0, 745.0, 799.0, 801.0}
)
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


def _rounded(value: float, dtype: torch.dtype) -> float:
    """The input as the head sees it (the accuracy is measured at the rounded inputs)."""
    return float(torch.tensor(value, dtype=dtype))


def _error(
    key: str, got: float, ref: mp.mpf, n: float, energy_scale: float, dtype: torch.dtype, relative: bool = True
) -> float:
    """Error of one value. u and f (they pass through zero): relative to n·R·(T + θ). cv and s:
    relative to min(|value|, n·R), i.e. relative to the value and never weaker than the earlier
    check relative to n·R, wherever the value is at least the smallest normal number of ``dtype``;
    below that (it underflows to a subnormal or 0) the absolute error must be ≤ finfo.tiny,
    reported as 0 if so and as inf if not. ``relative=False``: cv and s relative to n·R only."""
    diff = abs(mp.mpf(got) - ref)
    if key in ("u", "f"):
        return float(diff / energy_scale)
    if not relative:
        return float(diff / (n * R))
    tiny = torch.finfo(dtype).tiny
    if abs(ref) >= tiny:
        return float(diff / min(abs(ref), n * R))
    return 0.0 if diff <= tiny else math.inf


def _errors(head, latents_of, ref_of, dtype, rows, relative=True):
    """Worst error per observable over ``rows`` = [(θ, θ₂, n, [T, ...]), ...] (θ₂ for the second latent)."""
    worst = {k: 0.0 for k in ("u", "cv", "s", "f")}
    for th, th2, n, temps in rows:
        th, th2 = _rounded(th, dtype), _rounded(th2, dtype)
        T = torch.tensor([temps], dtype=dtype)
        out = head(latents=latents_of(th, th2, dtype), temperature=T, n_atoms=n)
        for j, t in enumerate(T[0].tolist()):
            ref = ref_of(th, th2, t, n)
            for k, v in out.items():
                assert v.dtype == dtype
                scale = n * R_GAS * (t + max(th, th2))
                worst[k] = max(worst[k], _error(k, float(v[0, j]), ref[k], n, scale, dtype, relative))
    return worst


def _check(head, latents_of, ref_of, dtype, rows):
    worst = _errors(head, latents_of, ref_of, dtype, rows)
    assert max(worst.values()) <= TOL[dtype], worst


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
        lambda th, th2, dtype: {
            "theta_D": torch.tensor([th], dtype=dtype),
            "theta_E": torch.tensor([th2], dtype=dtype),
        },
        ref,
    )


CASES = pytest.mark.parametrize("case", [_einstein_case, _debye_einstein_case], ids=["einstein", "debye-einstein"])
DTYPES = pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])


@CASES
@DTYPES
def test_accuracy_against_mpmath_on_a_grid(case, dtype):
    head, latents_of, ref_of = case()
    rows = [(th, THETAS[(i + 2) % len(THETAS)], n, TEMPS) for i, th in enumerate(THETAS) for n in NS]
    _check(head, latents_of, ref_of, dtype, rows)


@DTYPES
def test_einstein_accuracy_over_the_whole_ratio_range(dtype):
    # x = θ_E/T from 1e-3 to 1e4 and T = 0: cv and s relative to themselves (the old cut at x = 50
    # returned 0, a 100 % error, for x ≥ 50).
    head, latents_of, ref_of = _einstein_case()
    rows = [(th, th, n, [th / r for r in RATIOS] + [0.0]) for th in (1.0, 300.0, 4999.0) for n in (1.0, 7.0)]
    _check(head, latents_of, ref_of, dtype, rows)


@DTYPES
def test_debye_einstein_accuracy_over_the_whole_ratio_range(dtype):
    # θ_E/T from 1e-3 to 1e4 (every other point of the sweep: the Debye reference is a quadrature),
    # with θ_D below and above θ_E.
    head, latents_of, ref_of = _debye_einstein_case()
    ratios = RATIOS[::2]
    rows = [(thd, the, 5.0, [the / r for r in ratios] + [0.0]) for thd, the in ((300.0, 75.0), (40.0, 1200.0))]
    _check(head, latents_of, ref_of, dtype, rows)


@CASES
@DTYPES
def test_gradients_finite_over_the_whole_ratio_range(case, dtype):
    head, latents_of, _ = case()
    theta0 = 300.0
    temps = [theta0 / r for r in RATIOS] + [0.0]
    T = torch.tensor(temps, dtype=dtype, requires_grad=True)
    latents = {
        k: v.expand(len(temps)).clone().requires_grad_(True) for k, v in latents_of(theta0, theta0, dtype).items()
    }
    out = head(latents=latents, temperature=T, n_atoms=3)
    for k, v in out.items():
        assert torch.isfinite(v).all(), k
        grads = torch.autograd.grad(v.sum(), (*latents.values(), T), retain_graph=True)
        for name, g in zip((*latents, "T"), grads):
            assert torch.isfinite(g).all(), f"d{k}/d{name} not finite ({dtype})"
    # At T = 0 the gradients are their limits: dU/dθ = zero-point energy per K, dU/dT = dCv/dT = 0.
    grads = torch.autograd.grad(out["u"][-1], (*latents.values(), T), retain_graph=True)
    assert float(grads[-1][-1]) == 0.0
    (dcv,) = torch.autograd.grad(out["cv"][-1], T)
    assert float(dcv[-1]) == 0.0
    if head.name == "einstein":
        assert float(grads[0][-1]) == pytest.approx(3 * 3 * R_GAS / 2, rel=1e-6)


def test_einstein_identities_are_relatively_accurate_at_low_temperature():
    # Cv = ∂U/∂T and S = −∂F/∂T by autograd, relative to the values, down to where they underflow.
    head = EinsteinHead()
    theta = torch.tensor(300.0, dtype=torch.float64)
    ratios = [r for r in RATIOS if r <= 700.0]
    T = torch.tensor([300.0 / r for r in ratios], dtype=torch.float64, requires_grad=True)
    out = head(latents={"theta_E": theta.expand(len(ratios))}, temperature=T, n_atoms=2)
    (du,) = torch.autograd.grad(out["u"].sum(), T, retain_graph=True)
    (df,) = torch.autograd.grad(out["f"].sum(), T)
    torch.testing.assert_close(du, out["cv"], rtol=1e-11, atol=0)
    torch.testing.assert_close(-df, out["s"], rtol=1e-11, atol=0)


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
    de = DebyeEinsteinHead()(
        latents={"theta_D": theta_d, "theta_E": torch.tensor([77.0], dtype=torch.float64)}, temperature=T, n_atoms=1
    )
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


@DTYPES
def test_debye_einstein_splits_modes_per_primitive_cell(dtype):
    """``n_atoms_primitive`` = p: a cell of n atoms holds n/p primitive cells, each with 3 acoustic
    (Debye) and 3(p − 1) optical (Einstein) modes, against mpmath; per-atom values depend on p alone."""
    head = DebyeEinsteinHead()

    def at(p):
        def latents_of(th, th2, dt):
            return {"theta_D": torch.tensor([th], dtype=dt), "theta_E": torch.tensor([th2], dtype=dt)}

        def ref_of(thd, the, t, n):
            a, o = debye3_ref(thd, t), einstein_ref(the, t)
            return {k: n / p * a[k] + 3 * (n - n / p) * o[k] for k in a}

        class Head(torch.nn.Module):  # the head with the condition bound
            def forward(self, **kw):
                return head(**kw, n_atoms_primitive=p)

        return Head(), latents_of, ref_of

    for p in (1.0, 2.0, 5.0):
        model, latents_of, ref_of = at(p)
        rows = [(th, THETAS[(i + 3) % len(THETAS)], n, TEMPS) for i, th in enumerate(THETAS) for n in (p, 4 * p)]
        _check(model, latents_of, ref_of, dtype, rows)
    lat = {"theta_D": torch.tensor([300.0], dtype=dtype), "theta_E": torch.tensor([500.0], dtype=dtype)}
    T = torch.tensor([[0.0, 20.0, 300.0]], dtype=dtype)
    one = {k: v / 2 for k, v in head(latents=lat, temperature=T, n_atoms=2.0, n_atoms_primitive=2.0).items()}
    eight = {k: v / 8 for k, v in head(latents=lat, temperature=T, n_atoms=8.0, n_atoms_primitive=2.0).items()}
    for k in one:
        torch.testing.assert_close(eight[k], one[k], rtol=TOL[dtype], atol=0.0)
    with pytest.raises(ValueError, match=r"n_atoms_primitive 0.5.*>= 1"):
        head(latents=lat, temperature=300.0, n_atoms=2.0, n_atoms_primitive=torch.tensor([0.5]))
    assert head.describe()["conditions"]["n_atoms_primitive"] == "atoms per primitive cell"
