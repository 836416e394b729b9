"""Grid-independent distances between phonon densities of states (issue 20).

A histogram DOS is ``mass[..., K]`` (modes in each bin) over bin ``edges[..., K+1]`` (increasing,
e.g. frequencies in THz), optionally with a point mass ``atom`` at the lowest edge (phonondb-thermo's
``dos_nonpositive_modes``: the modes at or below 0 THz). Inside a bin the modes are spread
uniformly, so the cumulative DOS N(f) (modes up to f) is piecewise linear, constant below the first
edge (0, or ``atom`` from the first edge on) and above the last (the total).

:func:`cumulative_l1` is the exact integral ∫ |N_a(f) − N_b(f)| df over the union of the two grids'
ranges: both cumulative DOSes are linear between consecutive points of the merged edges, so each
piece is integrated in closed form (a trapezoid, or two triangles where the difference changes
sign). For two spectra with the same number of modes M this is M times the Wasserstein-1 (earth
mover's) distance of the per-mode distributions, which :func:`wasserstein1` returns: in the
frequency unit of the edges (THz), independent of either grid, 0 for one spectrum written on two
grids that both resolve it, and equal to s for a spectrum shifted by s. Both are differentiable in
torch (masses, atoms and edges; float64 ``gradcheck`` in ``tests/test_spectrum.py``), batched over
the leading dimensions, no Python loops over samples.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["cumulative_l1", "equal_edges", "histogram_cdf", "wasserstein1"]


def equal_edges(fmax: Tensor | float, bins: int, *, like: Tensor | None = None) -> Tensor:
    """Edges ``[..., bins+1]`` of ``bins`` equal bins on (0, fmax]; ``fmax`` a number or a tensor ``[...]``."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    if like is None and isinstance(fmax, Tensor) and fmax.is_floating_point():
        like = fmax
    dtype = like.dtype if like is not None else torch.get_default_dtype()
    device = like.device if like is not None else None
    fmax = torch.as_tensor(fmax, dtype=dtype, device=device)
    steps = torch.arange(bins + 1, dtype=dtype, device=fmax.device) / bins
    return fmax.unsqueeze(-1) * steps


def histogram_cdf(x: Tensor, mass: Tensor, edges: Tensor, atom: Tensor | None = None, *,
                  left_limit: bool = False) -> Tensor:
    """The cumulative DOS N(x) of a histogram (uniform inside each bin) at points ``x[..., P]``.

    :param mass: ``[..., K]`` modes per bin; :param edges: ``[..., K+1]`` increasing edges;
    :param atom: ``[...]`` point mass at ``edges[..., 0]`` (counted for x ≥ that edge) or ``None``.
    :param left_limit: the limit from the left (the atom counted for x > its edge only).
    """
    K = mass.shape[-1]
    if edges.shape[-1] != K + 1:
        raise ValueError(f"edges must have one more entry than mass ({K + 1}), got {edges.shape[-1]}")
    zero = torch.zeros_like(mass[..., :1])
    cum = torch.cat([zero, torch.cumsum(mass, -1)], -1)  # [..., K+1]: N at the edges (without the atom)
    e = edges.contiguous()
    idx = torch.searchsorted(e.detach(), x.detach().contiguous(), right=True) - 1  # bin of x, −1 below
    inside = (idx >= 0) & (idx < K)
    k = idx.clamp(0, K - 1)
    left = torch.gather(e, -1, k)
    width = torch.gather(e, -1, k + 1) - left
    width = torch.where(width > 0, width, torch.ones_like(width))
    frac = ((x - left) / width).clamp(0.0, 1.0)
    n = torch.gather(cum, -1, k) + frac * torch.gather(mass, -1, k)
    total = cum[..., -1:].expand_as(n)
    n = torch.where(inside, n, torch.where(idx >= K, total, torch.zeros_like(n)))
    if atom is not None:
        a = torch.as_tensor(atom, dtype=n.dtype, device=n.device).unsqueeze(-1)
        past = x > e[..., :1] if left_limit else x >= e[..., :1]
        n = n + torch.where(past, a, torch.zeros_like(a))
    return n


def _abs_integral(d0: Tensor, d1: Tensor, h: Tensor) -> Tensor:
    """∫₀ʰ |d(t)| dt for d linear from d0 to d1 (finite gradients where d0 = d1 = 0)."""
    same = d0 * d1 >= 0
    trap = 0.5 * h * (d0.abs() + d1.abs())
    den = d0.abs() + d1.abs()
    safe = torch.where(same, torch.ones_like(den), den)
    cross = 0.5 * h * (d0 * d0 + d1 * d1) / safe
    return torch.where(same, trap, cross)


def cumulative_l1(
    mass_a: Tensor, edges_a: Tensor, mass_b: Tensor, edges_b: Tensor,
    atom_a: Tensor | None = None, atom_b: Tensor | None = None,
) -> Tensor:
    """∫ |N_a(f) − N_b(f)| df (modes × frequency unit), exact, over the union of both grids' ranges.

    Shapes: ``mass_*[..., K_*]``, ``edges_*[..., K_*+1]`` (leading dimensions broadcast), atoms ``[...]``.
    """
    lead = torch.broadcast_shapes(mass_a.shape[:-1], edges_a.shape[:-1], mass_b.shape[:-1], edges_b.shape[:-1])
    ma, ea = mass_a.expand(*lead, mass_a.shape[-1]), edges_a.expand(*lead, edges_a.shape[-1])
    mb, eb = mass_b.expand(*lead, mass_b.shape[-1]), edges_b.expand(*lead, edges_b.shape[-1])
    pts, _ = torch.sort(torch.cat([ea, eb], -1), -1)  # the merged breakpoints: N_a − N_b is linear between
    lo, hi = pts[..., :-1], pts[..., 1:]
    # a CDF jumps only at an atom's edge: each piece [p_i, p_{i+1}] takes the value at p_i (atom
    # counted) and the limit from the left at p_{i+1}, so the difference is linear on the piece
    d0 = histogram_cdf(lo, ma, ea, atom_a) - histogram_cdf(lo, mb, eb, atom_b)
    d1 = (histogram_cdf(hi, ma, ea, atom_a, left_limit=True)
          - histogram_cdf(hi, mb, eb, atom_b, left_limit=True))
    return _abs_integral(d0, d1, hi - lo).sum(-1)


def wasserstein1(
    mass_a: Tensor, edges_a: Tensor, mass_b: Tensor, edges_b: Tensor,
    atom_a: Tensor | None = None, atom_b: Tensor | None = None, per: Tensor | float | None = None,
) -> Tensor:
    """The Wasserstein-1 distance between two histogram spectra, in the unit of the edges.

    ``per=None``: each spectrum is first normalised to unit mass (its bins plus its atom), the exact
    W1 of the two distributions. ``per`` given (e.g. 3·n_atoms for a phonon DOS in modes per cell):
    :func:`cumulative_l1` divided by it -- the W1 per mode when both spectra hold ``per`` modes.
    """
    if per is None:
        ta = mass_a.sum(-1) + (0 if atom_a is None else atom_a)
        tb = mass_b.sum(-1) + (0 if atom_b is None else atom_b)
        ta, tb = ta.clamp_min(torch.finfo(mass_a.dtype).tiny), tb.clamp_min(torch.finfo(mass_b.dtype).tiny)
        mass_a, mass_b = mass_a / ta.unsqueeze(-1), mass_b / tb.unsqueeze(-1)
        atom_a = None if atom_a is None else atom_a / ta
        atom_b = None if atom_b is None else atom_b / tb
        return cumulative_l1(mass_a, edges_a, mass_b, edges_b, atom_a, atom_b)
    return cumulative_l1(mass_a, edges_a, mass_b, edges_b, atom_a, atom_b) / per
