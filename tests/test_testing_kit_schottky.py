"""The head test kit on a head without zero-point energy and without a classical limit.

The two-level Schottky head is the worked example of docs/plugins.md; the code block there is run
here as it is written (so the documentation cannot rot). u(0) = 0: the kit's relative checks of u
and f need the absolute floor of their scale (``cloudphys.testing.tolerances.ENERGY_FLOOR_K``).
"""

from __future__ import annotations

import math
import re
import types
from pathlib import Path

import pytest
import torch

from cloudphys.physics import R_GAS
from cloudphys.testing import CHECKS, HeadCheckError, check_head, check_head_inputs, contract_tests

DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _doc_module() -> types.ModuleType:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(r"<!-- example: schottky_head.py -->\n```python\n(.*?)```", text, re.S)
    assert match, "docs/plugins.md lost its Schottky example"
    module = types.ModuleType("schottky_head")
    exec(compile(match.group(1), str(DOC), "exec"), module.__dict__)  # our own documentation
    return module


SchottkyHead = _doc_module().SchottkyHead

# the documented one-liner, with the option passed through to check_head
test_contract = contract_tests(SchottkyHead, checks=("limits", "identities"), classical_limit=False)


def test_schottky_head_passes_every_check_without_the_classical_limit() -> None:
    report = check_head(SchottkyHead(), classical_limit=False)
    assert report.passed == list(CHECKS)


def test_the_classical_limit_is_the_only_check_it_fails() -> None:
    with pytest.raises(HeadCheckError) as info:
        check_head(SchottkyHead())
    failures = info.value.failures
    assert failures and all(f.startswith("[limits]") and "at T = 1e+07 K" in f for f in failures)


def test_point_checks_at_zero_temperature_and_zero_energy() -> None:
    head = SchottkyHead()
    lat = {"delta": torch.tensor([1.0, 50.0, 5000.0], dtype=torch.float64)}
    T = torch.tensor([[0.0, 1e-3, 0.3, 20.0, 4000.0]], dtype=torch.float64).expand(3, -1)
    out = head(latents=lat, temperature=T, n_atoms=torch.tensor([1.0, 2.0, 24.0], dtype=torch.float64))
    assert torch.equal(out["u"][:, 0], torch.zeros(3, dtype=torch.float64))  # u(0) = 0: no zero-point energy
    report = check_head_inputs(head, lat, T, torch.tensor([1.0, 2.0, 24.0]), classical_limit=False)
    assert report.passed == ["finite", "dtype", "batch", "identities", "limits"]


def test_schottky_values_against_the_closed_form() -> None:
    """u = nRΔ/(1 + e^x), cv = nR x² e^x/(1 + e^x)², s = nR(ln(1 + e^-x) + x/(1 + e^x)), x = Δ/T,
    evaluated independently in math (float64); the Schottky peak sits at T ≈ 0.4168 Δ."""
    head = SchottkyHead()
    delta, n = 120.0, 3.0
    temps = [5.0, 50.0, 0.4168 * delta, 300.0, 1e4]
    out = head(latents={"delta": torch.tensor([delta], dtype=torch.float64)},
               temperature=torch.tensor([temps], dtype=torch.float64), n_atoms=n)
    for j, t in enumerate(temps):
        x = delta / t
        u = n * R_GAS * delta / (1.0 + math.exp(x))
        cv = n * R_GAS * x * x * math.exp(x) / (1.0 + math.exp(x)) ** 2
        s = n * R_GAS * (math.log1p(math.exp(-x)) + x / (1.0 + math.exp(x)))
        for name, ref in (("u", u), ("cv", cv), ("s", s), ("f", u - t * s)):
            assert float(out[name][0, j]) == pytest.approx(ref, rel=1e-12, abs=1e-12 * n * R_GAS * delta)
    cv = out["cv"][0]
    assert float(cv[2]) > float(cv[1]) and float(cv[2]) > float(cv[3])  # the peak
    assert float(out["s"][0, -1]) == pytest.approx(n * R_GAS * math.log(2.0), rel=1e-4)  # saturates at nR ln 2


def test_the_floor_does_not_hide_a_wrong_energy_at_zero_temperature() -> None:
    """A head whose f misses u at T = 0 by 0.1·R per atom (Δ = 100 K row) still fails ``limits``."""

    class Broken(SchottkyHead):
        name = "schottky-broken"

        def compute(self, latents, temperature, n_atoms, observables):  # type: ignore[no-untyped-def]
            out = super().compute(latents, temperature, n_atoms, observables)
            if "f" in out:
                out["f"] = out["f"] + 1e-3 * R_GAS * n_atoms * latents["delta"]
            return out

    with pytest.raises(HeadCheckError) as info:
        check_head(Broken(), checks=["limits"], classical_limit=False)
    assert any("= u at T = 0" in f for f in info.value.failures)
