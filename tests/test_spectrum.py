"""The grid-independent DOS distance (issue 20): cloudphys.physics.spectrum."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cloudphys.physics.spectrum import cumulative_l1, equal_edges, histogram_cdf, wasserstein1

F64 = torch.float64


def _samples(mass: np.ndarray, edges: np.ndarray, per_bin: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A histogram as weighted points: ``per_bin`` equally spaced points in each bin (midpoint rule)."""
    xs, ws = [], []
    for k in range(len(mass)):
        xs.append(edges[k] + (np.arange(per_bin) + 0.5) / per_bin * (edges[k + 1] - edges[k]))
        ws.append(np.full(per_bin, mass[k] / per_bin))
    return np.concatenate(xs), np.concatenate(ws)


def test_agrees_with_scipy_wasserstein_distance():
    from scipy.stats import wasserstein_distance

    rng = np.random.default_rng(0)
    for _ in range(5):
        ka, kb = rng.integers(3, 50, size=2)
        ma, mb = rng.random(ka), rng.random(kb)
        ea = equal_edges(float(rng.uniform(3, 30)), int(ka), like=torch.zeros((), dtype=F64))
        eb = equal_edges(float(rng.uniform(3, 30)), int(kb), like=torch.zeros((), dtype=F64))
        ours = float(wasserstein1(torch.tensor(ma), ea, torch.tensor(mb), eb))
        xa, wa = _samples(ma, ea.numpy())
        xb, wb = _samples(mb, eb.numpy())
        ref = wasserstein_distance(xa, xb, wa, wb)
        # the samples are the midpoint rule on each bin: off by at most a few bin widths / per_bin
        width = max(float(ea[1]), float(eb[1]))
        assert ours == pytest.approx(ref, abs=width / 400)


def test_same_spectrum_on_two_grids_is_zero():
    # a DOS that is uniform on [2, 4] THz written on 8 bins of 1 THz and on 32 bins of 0.25 THz
    a = torch.zeros(8, dtype=F64)
    a[2:4] = 3.0
    b = torch.zeros(32, dtype=F64)
    b[8:16] = 0.75
    d = wasserstein1(a, equal_edges(8.0, 8, like=a), b, equal_edges(8.0, 32, like=a), per=6.0)
    assert float(d) == pytest.approx(0.0, abs=1e-14)
    # and on a grid with another upper edge (10 THz, 40 bins)
    c = torch.zeros(40, dtype=F64)
    c[8:16] = 0.75
    assert float(wasserstein1(a, equal_edges(8.0, 8, like=a), c, equal_edges(10.0, 40, like=a))) == pytest.approx(
        0.0, abs=1e-14)


def test_atom_at_zero_counts_as_modes_at_zero():
    # all 3 modes at 0 against all 3 spread uniformly on (0, 2]: W1 = mean frequency = 1 THz
    flat = torch.full((4,), 0.75, dtype=F64)
    e = equal_edges(2.0, 4, like=flat)
    d = wasserstein1(flat, e, torch.zeros(4, dtype=F64), e, atom_b=torch.tensor(3.0, dtype=F64), per=3.0)
    assert float(d) == pytest.approx(1.0, rel=1e-14)
    # an atom at the lower edge of a grid that starts above the other's
    d2 = wasserstein1(torch.ones(1, dtype=F64), torch.tensor([0.0, 1.0], dtype=F64), torch.zeros(1, dtype=F64),
                      torch.tensor([2.0, 3.0], dtype=F64), atom_b=torch.tensor(1.0, dtype=F64))
    assert float(d2) == pytest.approx(1.5, rel=1e-14)


def test_histogram_cdf_values():
    m = torch.tensor([1.0, 2.0, 3.0], dtype=F64)
    e = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=F64)
    x = torch.tensor([-1.0, 0.0, 0.5, 1.5, 3.0, 9.0], dtype=F64)
    np.testing.assert_allclose(histogram_cdf(x, m, e).numpy(), [0, 0, 0.5, 2.0, 6.0, 6.0])
    np.testing.assert_allclose(histogram_cdf(x, m, e, torch.tensor(1.0, dtype=F64)).numpy(), [0, 1, 1.5, 3, 7, 7])


def test_gradcheck_float64():
    torch.manual_seed(1)
    a = torch.rand(3, 5, dtype=F64, requires_grad=True)
    b = torch.rand(3, 7, dtype=F64, requires_grad=True)
    # generic edges (no ties between the grids: the distance is smooth there)
    ea = torch.cumsum(torch.rand(3, 6, dtype=F64) + 0.1, -1).requires_grad_()
    eb = torch.cumsum(torch.rand(3, 8, dtype=F64) + 0.1, -1).requires_grad_()
    atom = torch.rand(3, dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *t: wasserstein1(t[0], t[1], t[2], t[3], atom_a=t[4], per=3.0),
                                    (a, ea, b, eb, atom))
    assert torch.autograd.gradcheck(lambda *t: wasserstein1(t[0], t[1], t[2], t[3], atom_a=t[4]),
                                    (a, ea, b, eb, atom))


def test_gradient_finite_at_identical_spectra():
    a = torch.rand(6, dtype=F64, requires_grad=True)
    e = equal_edges(5.0, 6, like=a)
    wasserstein1(a, e, a.detach(), e).backward()
    assert torch.isfinite(a.grad).all()


def test_float32_close_to_float64():
    rng = np.random.default_rng(3)
    ma, mb = rng.random((4, 16)), rng.random((4, 64))
    fa, fb = rng.uniform(5, 20, 4), rng.uniform(5, 20, 4)

    def run(dtype):
        t = lambda v: torch.tensor(v, dtype=dtype)  # noqa: E731
        return wasserstein1(t(ma), equal_edges(t(fa), 16), t(mb), equal_edges(t(fb), 64)).double()

    torch.testing.assert_close(run(torch.float32), run(F64), rtol=1e-5, atol=1e-5)


def test_shapes_broadcast_and_bad_edges():
    a = torch.rand(2, 3, 4, dtype=F64)
    e = equal_edges(torch.rand(2, 3, dtype=F64) + 1, 4)
    b = torch.rand(1, 1, 9, dtype=F64)
    eb = equal_edges(torch.tensor([[3.0]], dtype=F64), 9)
    assert wasserstein1(a, e, b, eb).shape == (2, 3)
    with pytest.raises(ValueError, match="one more entry"):
        histogram_cdf(torch.zeros(1), torch.ones(3), torch.ones(3))
    with pytest.raises(ValueError, match="positive integer"):
        equal_edges(1.0, 0)


# -- hypothesis properties ------------------------------------------------------------------

def _spectrum(draw):
    k = draw(st.integers(1, 12))
    mass = draw(st.lists(st.floats(0.0, 10.0), min_size=k, max_size=k))
    mass[draw(st.integers(0, k - 1))] += 0.5  # at least some modes
    fmax = draw(st.floats(0.5, 40.0))
    m = torch.tensor(mass, dtype=F64)
    return m / m.sum(), equal_edges(fmax, k, like=m)


spectra = st.composite(_spectrum)()


@settings(max_examples=60, deadline=None)
@given(spectra, spectra)
def test_symmetric_and_nonnegative(p, q):
    d_pq = float(wasserstein1(*p, *q))
    d_qp = float(wasserstein1(*q, *p))
    assert d_pq >= 0
    assert d_pq == pytest.approx(d_qp, rel=1e-12, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(spectra)
def test_zero_on_identical(p):
    assert float(wasserstein1(*p, *p)) == pytest.approx(0.0, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(spectra, spectra, spectra)
def test_triangle_inequality(p, q, r):
    pq, qr, pr = (float(wasserstein1(*x, *y)) for x, y in ((p, q), (q, r), (p, r)))
    assert pr <= pq + qr + 1e-10 * (1 + pq + qr)


@settings(max_examples=60, deadline=None)
@given(st.floats(0.01, 50.0), st.floats(0.0, 30.0), st.floats(0.01, 10.0))
def test_shift_of_a_delta_is_the_shift(width, start, shift):
    # all modes in one narrow bin [start, start + width], and the same bin moved by ``shift``
    one = torch.ones(1, dtype=F64)
    e = torch.tensor([start, start + width], dtype=F64)
    assert float(wasserstein1(one, e, one, e + shift)) == pytest.approx(shift, rel=1e-9)
    assert float(cumulative_l1(3 * one, e, 3 * one, e + shift)) == pytest.approx(3 * shift, rel=1e-9)


@settings(max_examples=40, deadline=None)
@given(spectra, st.floats(0.0, 5.0))
def test_shift_of_any_spectrum_is_the_shift(p, shift):
    mass, edges = p
    assert float(wasserstein1(mass, edges, mass, edges + shift)) == pytest.approx(shift, rel=1e-9, abs=1e-12)
