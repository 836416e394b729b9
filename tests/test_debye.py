"""The reference Debye head: accuracy against mpmath, scipy and torchquad; identities; limits."""

from __future__ import annotations

import math
from functools import lru_cache

import mpmath
import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import cloudphys
from cloudphys.physics import R_GAS, DebyeHead, gauss_legendre
from cloudphys.physics.debye import DEBYE_X_CUT, debye_integral

# Tolerances by dtype (relative; u and f relative to n·R·(T + θ)).
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}
RATIOS = np.logspace(-3, 4, 71)  # θ/T


@lru_cache(maxsize=None)
def reference(theta: float, T: float, n: float = 1.0) -> dict[str, float]:
    """Debye thermodynamics by mpmath at 40 digits (direct integration, no cut-off)."""
    with mpmath.workdps(40):
        R = mpmath.mpf(R_GAS)
        th, t, nn = mpmath.mpf(theta), mpmath.mpf(T), mpmath.mpf(n)
        zpe = mpmath.mpf(9) / 8 * nn * R * th
        if t == 0:
            return {"u": float(zpe), "cv": 0.0, "s": 0.0, "f": float(zpe)}
        x = th / t
        j = mpmath.quad(lambda y: y**3 / mpmath.expm1(y), [0, x] if x <= 40 else [0, 20, 40, x])
        d3 = 3 * j / x**3
        u = zpe + 3 * nn * R * t * d3
        # Cv from its own integral (not the by-parts form the head uses)
        i4 = mpmath.quad(lambda y: y**4 * mpmath.exp(-y) / mpmath.expm1(-y) ** 2, [0, x] if x <= 40 else [0, 20, 40, x])
        cv = 9 * nn * R * i4 / x**3
        s = nn * R * (4 * d3 - 3 * mpmath.log(-mpmath.expm1(-x)))
        return {"u": float(u), "cv": float(cv), "s": float(s), "f": float(u - t * s)}


def _rel_errors(out: dict[str, torch.Tensor], thetas, temps, n: float) -> dict[str, float]:
    errs = {}
    for k in ("u", "cv", "s", "f"):
        got = out[k].double().numpy()
        ref = np.array([reference(float(a), float(b), n)[k] for a, b in zip(thetas, temps)])
        if k in ("u", "f"):
            scale = n * R_GAS * (np.asarray(temps) + np.asarray(thetas))
        else:
            scale = np.where(ref != 0, np.abs(ref), 1.0)
        errs[k] = float(np.max(np.abs(got - ref) / scale))
    return errs


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("theta", [1.0, 300.0, 2500.0])
def test_accuracy_against_mpmath(dtype, theta):
    temps = [theta / r for r in RATIOS] + [0.0]
    thetas = [theta] * len(temps)
    head = DebyeHead()
    out = head(
        latents={"theta_D": torch.tensor(thetas, dtype=dtype)},
        temperature=torch.tensor(temps, dtype=dtype),
        n_atoms=3,
    )
    for v in out.values():
        assert v.dtype == dtype
    errs = _rel_errors(out, thetas, temps, 3.0)
    for k, e in errs.items():
        assert e <= TOL[dtype], f"{k}: max relative error {e:.3g} > {TOL[dtype]:g} ({dtype})"


def test_exact_values_at_zero_temperature():
    head = DebyeHead()
    theta = torch.tensor([1.0, 345.0, 4999.0], dtype=torch.float64)
    n = torch.tensor([1.0, 2.0, 7.0], dtype=torch.float64)
    out = head(latents={"theta_D": theta}, temperature=torch.zeros(3, dtype=torch.float64), n_atoms=n)
    zpe = 9.0 / 8.0 * n * R_GAS * theta
    assert torch.equal(out["cv"], torch.zeros(3, dtype=torch.float64))
    assert torch.equal(out["s"], torch.zeros(3, dtype=torch.float64))
    torch.testing.assert_close(out["u"], zpe, rtol=1e-15, atol=0)
    torch.testing.assert_close(out["f"], zpe, rtol=1e-15, atol=0)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_gradients_finite_everywhere(dtype):
    theta0 = 300.0
    temps = [theta0 / r for r in RATIOS] + [0.0]
    theta = torch.full((len(temps),), theta0, dtype=dtype, requires_grad=True)
    T = torch.tensor(temps, dtype=dtype, requires_grad=True)
    out = DebyeHead()(latents={"theta_D": theta}, temperature=T, n_atoms=2)
    for k, v in out.items():
        assert torch.isfinite(v).all(), k
        g_theta, g_T = torch.autograd.grad(v.sum(), (theta, T), retain_graph=True)
        assert torch.isfinite(g_theta).all(), f"d{k}/dtheta not finite"
        assert torch.isfinite(g_T).all(), f"d{k}/dT not finite"
    # gradients at T = 0 equal their limits: dU/dθ = 9/8·n·R, dCv/dT = dS/dT = dU/dT = 0
    gu_theta, gu_T = torch.autograd.grad(out["u"][-1], (theta, T), retain_graph=True)
    assert gu_theta[-1].item() == pytest.approx(9 / 8 * 2 * R_GAS, rel=1e-6)
    assert gu_T[-1].item() == 0.0


def test_gradcheck_float64():
    theta = torch.tensor([50.0, 300.0, 1200.0, 300.0], dtype=torch.float64, requires_grad=True)
    T = torch.tensor([10.0, 290.0, 5000.0, 2.0], dtype=torch.float64, requires_grad=True)
    head = DebyeHead()

    def f(th, t):
        out = head(latents={"theta_D": th}, temperature=t, n_atoms=2)
        return tuple(out[k] for k in ("u", "cv", "s", "f"))

    assert torch.autograd.gradcheck(f, (theta, T), eps=1e-3, atol=1e-6, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:To copy construct:UserWarning")
def test_integral_matches_scipy_and_torchquad():
    from scipy.integrate import quad
    from torchquad import GaussLegendre

    uppers = [1e-3, 0.1, 1.0, 5.0, 17.0, 49.0]
    got = debye_integral(torch.tensor(uppers, dtype=torch.float64))
    before = torch.get_default_dtype()
    gl = GaussLegendre()
    for u, g in zip(uppers, got.tolist()):
        ref, _ = quad(lambda t: t**3 / math.expm1(t), 0.0, u, epsabs=0, epsrel=1e-13)
        assert g == pytest.approx(ref, rel=1e-12)
        domain = torch.tensor([[0.0, u]], dtype=torch.float64)
        tq = gl.integrate(
            lambda t: t[:, 0] ** 3 / torch.expm1(t[:, 0]), dim=1, N=201, integration_domain=domain, backend="torch"
        )
        assert g == pytest.approx(float(tq), rel=1e-11)
    assert torch.get_default_dtype() == before


def test_cut_off_tail_is_negligible():
    # J(∞) = π⁴/15; the head integrates to DEBYE_X_CUT only.
    j = debye_integral(torch.tensor([DEBYE_X_CUT], dtype=torch.float64)).item()
    assert j == pytest.approx(math.pi**4 / 15, rel=1e-15)


@pytest.mark.parametrize("order", [1, 4, 13, 40])
def test_gauss_legendre_polynomial_exactness(order):
    nodes, weights = gauss_legendre(order, torch.float64)
    for degree in range(2 * order):
        exact = 1.0 / (degree + 1)  # ∫₀¹ tᵈ dt
        assert float((weights * nodes**degree).sum()) == pytest.approx(exact, rel=1e-12, abs=1e-15)
    # degree 2N is not exact: the rule is Gauss, not something higher
    approx = float((weights * nodes ** (2 * order)).sum())
    assert abs(approx - 1.0 / (2 * order + 1)) > 1e-16


def test_nodes_cached_per_dtype_and_device():
    a = gauss_legendre(24, torch.float32)
    b = gauss_legendre(24, torch.float32)
    c = gauss_legendre(24, torch.float64)
    assert a[0] is b[0] and a[1] is b[1]
    assert c[0].dtype == torch.float64 and c[0] is not a[0]


# ---- hypothesis properties ------------------------------------------------------------
thetas = st.floats(1.0, 5000.0)
temps = st.floats(0.0, 1e5)
ns = st.integers(1, 200)


def _eval(theta, T, n=1, dtype=torch.float64, obs=("u", "cv", "s", "f")):
    head = DebyeHead()
    return head(
        latents={"theta_D": torch.tensor([theta], dtype=dtype)},
        temperature=torch.tensor([T], dtype=dtype),
        n_atoms=n,
        observables=obs,
    )


@given(thetas, temps, ns)
@example(5000.0, 0.0, 1)
@example(1.0, 1e5, 200)
def test_cv_bounds(theta, T, n):
    cv = _eval(theta, T, n)["cv"].item()
    assert 0.0 <= cv <= 3 * n * R_GAS * (1 + 1e-12)


@given(thetas, st.floats(0.0, 1e4), st.floats(1e-3, 1e3))
def test_cv_increases_with_temperature(theta, T, dT):
    a = _eval(theta, T, obs=("cv",))["cv"].item()
    b = _eval(theta, T + dT, obs=("cv",))["cv"].item()
    assert b >= a - 1e-12 * 3 * R_GAS


@given(st.floats(1.0, 2000.0), st.floats(0.01, 5e3), st.floats(1.0, 2.5))
def test_cv_scale_invariance(theta, T, lam):
    a = _eval(theta, T, obs=("cv",))["cv"].item()
    b = _eval(theta * lam, T * lam, obs=("cv",))["cv"].item()
    assert b == pytest.approx(a, rel=1e-9, abs=1e-12)


@given(thetas, st.floats(1e-4, 0.02))
def test_t_cubed_law(theta, ratio):
    T = ratio * theta
    cv = _eval(theta, T, obs=("cv",))["cv"].item()
    law = 12 * math.pi**4 / 5 * R_GAS * ratio**3
    assert cv == pytest.approx(law, rel=1e-9)


@given(thetas, st.floats(10.0, 1e4))
def test_dulong_petit(theta, ratio):
    x = 1.0 / ratio
    cv = _eval(theta, ratio * theta, n=2, obs=("cv",))["cv"].item()
    # high-T series: Cv/3nR = 1 − x²/20 + O(x⁴)
    assert cv / (6 * R_GAS) == pytest.approx(1 - x * x / 20, abs=x**4 + 1e-13)


@given(thetas, st.floats(0.5, 2e4), ns)
def test_thermodynamic_identities_by_autograd(theta, T, n):
    Tt = torch.tensor([T], dtype=torch.float64, requires_grad=True)
    out = DebyeHead()(latents={"theta_D": torch.tensor([theta], dtype=torch.float64)}, temperature=Tt, n_atoms=n)
    (du,) = torch.autograd.grad(out["u"].sum(), Tt, retain_graph=True)
    (df,) = torch.autograd.grad(out["f"].sum(), Tt)
    scale = 3 * n * R_GAS
    assert du.item() == pytest.approx(out["cv"].item(), abs=1e-9 * scale)
    assert -df.item() == pytest.approx(out["s"].item(), abs=1e-9 * scale * (1 + math.log1p(T / theta)))
    assert out["f"].item() == pytest.approx(
        out["u"].item() - T * out["s"].item(), rel=1e-10, abs=1e-9 * n * R_GAS * (T + theta)
    )


@settings(max_examples=25)
@given(st.lists(st.tuples(thetas, temps, ns), min_size=1, max_size=12))
def test_batched_equals_one_at_a_time(rows):
    th = torch.tensor([r[0] for r in rows], dtype=torch.float64)
    T = torch.tensor([r[1] for r in rows], dtype=torch.float64)
    n = torch.tensor([float(r[2]) for r in rows], dtype=torch.float64)
    batched = DebyeHead()(latents={"theta_D": th}, temperature=T, n_atoms=n)
    for i, (a, b, c) in enumerate(rows):
        single = _eval(a, b, c)
        for k in batched:
            assert batched[k][i].item() == pytest.approx(single[k].item(), rel=1e-13, abs=1e-12)


# float32 vs float64 at the same (unrounded) inputs. u and cv meet the 1e-5 target (largest seen over
# 1.2e6 random points: 1.8e-6, 2.2e-6). s does not: near θ/T ≈ 16.7 its ln(1 − e⁻ˣ) = log(−expm1(−x))
# rounds to 0 or one ulp once e⁻ˣ < 6e-8 (1.08e-5 seen); f reaches 8.6e-6 at θ/T ≈ 4e-5, outside
# [1e-3, 1e4] but drawn here. Those two keep 2e-5.
FLOAT32_RTOL = {"u": 1e-5, "cv": 1e-5, "s": 1e-5, "f": 1e-5}


@given(thetas, temps, ns)
def test_float32_agrees_with_float64(theta, T, n):
    a = _eval(theta, T, n, torch.float64)
    b = _eval(theta, T, n, torch.float32)
    for k in a:
        scale = n * R_GAS * (T + theta) if k in ("u", "f") else max(abs(a[k].item()), 1e-30)
        assert abs(b[k].double().item() - a[k].item()) <= FLOAT32_RTOL[k] * scale + 1e-30, k


# ---- shapes, dtypes, API ---------------------------------------------------------------
def test_curve_broadcasting():
    head = cloudphys.load_head("debye", observables=["cv", "u"])
    theta = torch.tensor([100.0, 400.0])
    T = torch.tensor([[1.0, 10.0, 100.0], [5.0, 50.0, 500.0]])
    out = head(latents={"theta_D": theta}, temperature=T, n_atoms=torch.tensor([1.0, 4.0]))
    assert set(out) == {"cv", "u"}
    assert out["cv"].shape == (2, 3)
    for b in range(2):
        for j in range(3):
            single = _eval(float(theta[b]), float(T[b, j]), float([1.0, 4.0][b]), torch.float32, ("cv",))["cv"]
            assert out["cv"][b, j].item() == pytest.approx(single.item(), rel=1e-6)


def test_scalar_inputs_and_dtype_follow_inputs():
    head = DebyeHead()
    out = head(latents={"theta_D": torch.tensor(300.0, dtype=torch.float64)}, temperature=300.0)
    assert out["cv"].dtype == torch.float64 and out["cv"].shape == (1,)
    bf = head(
        latents={"theta_D": torch.tensor([300.0], dtype=torch.bfloat16)},
        temperature=torch.tensor([300.0], dtype=torch.bfloat16),
    )
    assert bf["cv"].dtype == torch.bfloat16
    assert bf["cv"].float().item() == pytest.approx(_eval(300.0, 300.0)["cv"].item(), rel=1e-2)


def test_no_global_state_changed():
    before = (torch.get_default_dtype(), torch.get_default_device())
    _eval(300.0, 10.0)
    cloudphys.load_head("debye")(latents={"theta_D": torch.tensor([3.0])}, temperature=torch.tensor([2.0]))
    assert (torch.get_default_dtype(), torch.get_default_device()) == before


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"temperature": torch.tensor([-1.0])}, "temperature"),
        ({"temperature": torch.tensor([float("nan")])}, "temperature"),
        ({"temperature": torch.tensor([10.0]), "n_atoms": 0}, "n_atoms"),
        ({"temperature": torch.tensor([10.0]), "n_atoms": -2.0}, "n_atoms"),
        ({"temperature": torch.tensor([10.0]), "theta": 0.0}, "theta_D"),
        ({"temperature": torch.tensor([10.0]), "theta": -5.0}, "theta_D"),
        ({"temperature": torch.tensor([10.0]), "theta": float("nan")}, "theta_D"),
    ],
)
def test_bad_inputs_raise_value_error_naming_the_value(kwargs, needle):
    theta = kwargs.pop("theta", 300.0)
    with pytest.raises(ValueError, match=needle) as info:
        DebyeHead()(latents={"theta_D": torch.tensor([theta])}, **kwargs)
    assert "invalid" in str(info.value)


def test_unknown_observable_and_missing_latent():
    with pytest.raises(ValueError, match="no observable 'heat'"):
        DebyeHead(observables=["heat"])
    with pytest.raises(ValueError, match="theta_D"):
        DebyeHead()(latents={"theta": torch.tensor([1.0])}, temperature=torch.tensor([1.0]))


def test_describe_and_config_round_trip():
    head = DebyeHead(observables=["cv"], order=32)
    again = DebyeHead(**head.get_config())
    assert again.selected == ("cv",) and again.order == 32
    d = DebyeHead.describe()
    assert d["latents"][0]["name"] == "theta_D" and d["latents"][0]["unit"] == "K"
    assert {o["name"] for o in d["observables"]} == {"u", "cv", "s", "f"}
