"""Reliability class 7 (numerics at the edges): every head, every finite temperature.

For the built-in heads and the heads of the two plugins in plugins/: any finite temperature up to
the contract's limit (2⁶³ ≈ 9.2e18 K in float32, 2⁵¹¹ in float64) gives finite values and
finite gradients, element by element (one extreme temperature never changes the others); larger
ones are rejected before computing with a ``ValueError`` naming the value; integer inputs give
floating outputs. See docs/reliability.md.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from cloudphys.physics.contract import n_atoms_limit, temperature_limit
from cloudphys.plugins import Registry, make_plugin_manager
from cloudphys.testing import strategies as cst

from conftest import require

HEADS = ("debye", "direct", "einstein", "debye-einstein", "phonon-dos")
DTYPES = (torch.float32, torch.float64)

_registry: Registry | None = None


def _head(name: str):
    global _registry
    if _registry is None:
        _registry = Registry(make_plugin_manager())
    require(
        name in _registry.heads,
        f"head {name!r} not installed (pip install ./plugins/cloudphys-einstein ./plugins/cloudphys-phonon-dos)",
    )
    return _registry.build_head(name)


def _temperatures(dtype: torch.dtype) -> st.SearchStrategy[float]:
    fi = torch.finfo(dtype)
    width = 32 if dtype == torch.float32 else 64
    limit = temperature_limit(dtype)
    return st.one_of(
        st.floats(0.0, float(fi.max), width=width),  # the whole finite range (mostly rejected)
        st.floats(-45.0, math.log10(limit)).map(lambda e: min(10.0**e, limit)),  # decades up to the limit
        st.sampled_from([0.0, float(fi.tiny), 1.0, 300.0, 1e16, limit]),
    )


def _call(head, lat, T, n):
    return head(latents=lat, temperature=T, n_atoms=n)


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("name", HEADS)
@settings(max_examples=30)
@given(data=st.data())
def test_every_finite_temperature_is_finite_with_finite_gradients_or_rejected(name, dtype, data):
    head = _head(name)
    B = data.draw(st.integers(1, 3), label="B")
    nT = data.draw(st.integers(1, 4), label="nT")
    temps = data.draw(st.lists(_temperatures(dtype), min_size=B * nT, max_size=B * nT), label="T")
    lat = {
        k: v.requires_grad_(True)
        for k, v in data.draw(cst.latents(head, batch=B, dtype=dtype), label="latents").items()
    }
    n = torch.tensor(data.draw(st.lists(st.integers(1, 1000), min_size=B, max_size=B), label="n_atoms"), dtype=dtype)
    T = torch.tensor(temps, dtype=dtype).reshape(B, nT).requires_grad_(True)
    limit = temperature_limit(dtype)
    if bool((T > limit).any()):
        with pytest.raises(ValueError, match=r"invalid temperature: .* \(must be finite, >= 0 and <= "):
            _call(head, lat, T, n)
        return
    out = _call(head, lat, T, n)
    for k, v in out.items():
        assert v.dtype == dtype and v.shape == T.shape
        assert bool(torch.isfinite(v).all()), (k, v, T)
        grads = torch.autograd.grad(v.sum(), [*lat.values(), T], retain_graph=True, allow_unused=True)
        for g in grads:
            assert g is None or bool(torch.isfinite(g).all()), (k, T)
    # Element by element: each temperature alone gives what it gave in the batch.
    for j in range(nT):
        alone = _call(head, {k: v.detach() for k, v in lat.items()}, T.detach()[:, j], n)
        for k, v in alone.items():
            torch.testing.assert_close(v, out[k].detach()[:, j], rtol=8 * torch.finfo(dtype).eps, atol=0.0)


@given(T=st.floats(1.0000000272564224e16, temperature_limit(torch.float32), width=32))
@example(T=1e16)
def test_float32_debye_at_1e16_K_and_beyond_leaves_the_other_temperatures_alone(T):
    """The reported case: one T ≥ 1e16 K in a float32 request gave inf/NaN and spoiled the rest."""
    head = _head("debye")
    theta = torch.tensor([300.0, 300.0])
    temps = torch.tensor([[300.0, T], [T, 1.0]])
    out = head(latents={"theta_D": theta}, temperature=temps, n_atoms=torch.tensor([2.0, 2.0]))
    ref = head(latents={"theta_D": theta}, temperature=torch.tensor([[300.0], [1.0]]), n_atoms=torch.tensor([2.0, 2.0]))
    for k, v in out.items():
        assert bool(torch.isfinite(v).all()), (k, v)
        torch.testing.assert_close(v[0, 0], ref[k][0, 0])
        torch.testing.assert_close(v[1, 1], ref[k][1, 0])
    # u → 3nRT and cv → 3nR (classical limit) at such temperatures
    torch.testing.assert_close(out["cv"][0, 1], torch.tensor(6 * 8.314462618), rtol=1e-5, atol=0.0)
    torch.testing.assert_close(out["u"][0, 1] / T, torch.tensor(6 * 8.314462618), rtol=1e-5, atol=0.0)


@pytest.mark.parametrize("name", HEADS)
def test_integer_inputs_are_promoted_to_floating_point(name):
    head = _head(name)
    ints = {s.name: torch.full((2, *s.shape), int(round(s.typical)), dtype=torch.int64) for s in head.latents}
    floats = {k: v.to(torch.get_default_dtype()) for k, v in ints.items()}
    T_int = torch.tensor([[0, 300], [10, 1000]])
    got = head(latents=ints, temperature=T_int, n_atoms=torch.tensor([1, 2]))
    ref = head(latents=floats, temperature=T_int.to(torch.get_default_dtype()), n_atoms=torch.tensor([1.0, 2.0]))
    for k, v in got.items():
        assert v.dtype == torch.get_default_dtype(), (k, v.dtype)
        torch.testing.assert_close(v, ref[k])
    # Python numbers, and an integer temperature with floating latents
    scalars = {
        s.name: (torch.full(s.shape, int(round(s.typical))) if s.shape else int(round(s.typical))) for s in head.latents
    }
    assert all(v.is_floating_point() for v in head(latents=scalars, temperature=300, n_atoms=2).values())
    f64 = {k: v.to(torch.float64) for k, v in ints.items()}
    assert all(v.dtype == torch.float64 for v in head(latents=f64, temperature=T_int, n_atoms=2).values())


@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
@pytest.mark.parametrize("bad", [math.inf, math.nan, -1.0, "above"])
def test_temperatures_outside_the_range_are_rejected_naming_the_value(dtype, bad):
    head = _head("debye")
    value = (
        float(torch.nextafter(torch.tensor(temperature_limit(dtype), dtype=dtype), torch.tensor(math.inf, dtype=dtype)))
        if bad == "above"
        else bad
    )
    T = torch.tensor([[300.0, value]], dtype=dtype)
    with pytest.raises(ValueError, match=r"invalid temperature: .* at index \[0, 1\]"):
        head(latents={"theta_D": torch.tensor([300.0], dtype=dtype)}, temperature=T, n_atoms=1)


def test_n_atoms_above_the_limit_is_rejected():
    head = _head("debye")
    with pytest.raises(ValueError, match="invalid n_atoms"):
        head(
            latents={"theta_D": torch.tensor([300.0])},
            temperature=torch.tensor([300.0]),
            n_atoms=torch.tensor([n_atoms_limit(torch.float32) * 2]),
        )
