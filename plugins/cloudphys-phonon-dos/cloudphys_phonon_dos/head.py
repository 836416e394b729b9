"""The ``phonon-dos`` head: a coarse phonon density of states as the latent.

The latent ``dos`` is a vector of K non-negative weights w_k over K equal frequency bins on
(0, θ_max], expressed as mode temperatures θ = hν/k_B (1 THz ≙ 47.99 K). Bin k (k = 1…K) is
represented by its centre θ_k = (k − ½)·θ_max/K. The weights are normalised inside the head to
3·n modes per cell of n atoms,

    g_k = 3·n·(w_k + ε) / (Σ_j w_j + K·ε),   ε = 1e-12,

so any non-negative vector is a valid DOS (all zeros gives a flat one), the overall scale of w is
irrelevant, and values and gradients stay finite. (One limit: at all-zero weights ∂u/∂w_k is of
order 3·n·R·T/(K·ε), which leaves float32 for n·T ≳ 1e25 K, e.g. ten million atoms at 1e18 K.)
The thermodynamics are exact harmonic sums over the bins (units as in the Debye head, per mole of
cells):

    u = Σ_k g_k·u₁(θ_k, T),  cv = Σ_k g_k·cv₁(θ_k, T),  s = Σ_k g_k·s₁(θ_k, T),  f = Σ_k g_k·f₁(θ_k, T)

with the one-mode functions of :func:`cloudphys.physics.harmonic.oscillator_thermo` (u with the
zero-point energy, in J/mol; cv and s in J/(K·mol)). Since Σ g_k = 3n, cv → 3·n·R at high T.

θ_max is a second latent (``theta_max``, K) unless the head is built with a fixed
``theta_max=...``; the number of bins is ``bins`` (default 16). An encoder learns the DOS from
thermodynamic labels alone: nothing in the head needs DOS labels.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor

from cloudphys.physics import THERMODYNAMIC_OBSERVABLES, LatentSpec, PhysicsHead, oscillator_thermo, work_dtype

__all__ = ["PhononDOSHead", "EPS", "K_PER_THZ"]

#: Regulariser of the normalisation g_k ∝ w_k + ε (dimensionless weights).
EPS = 1e-12
#: Mode temperature of 1 THz: h·(1e12 Hz)/k_B in K.
K_PER_THZ = 47.99243073366221

DEFAULT_BINS = 16
THETA_MAX_BOUNDS = (10.0, 10000.0)


def _dos_spec(bins: int) -> LatentSpec:
    return LatentSpec(
        "dos", "", lower=0.0, upper=None, typical=1.0, shape=(bins,), scale="linear",
        description=f"unnormalised non-negative weights of {bins} equal frequency bins on (0, θ_max]",
    )


_THETA_MAX = LatentSpec(
    "theta_max", "K", lower=THETA_MAX_BOUNDS[0], upper=THETA_MAX_BOUNDS[1], typical=600.0, scale="log",
    description="upper edge of the frequency bins, as a mode temperature hν_max/k_B",
)


class PhononDOSHead(PhysicsHead):
    """Coarse phonon DOS (K weights up to θ_max, normalised to 3n modes): exact harmonic sums."""

    name = "phonon-dos"
    description = "coarse phonon DOS latent (K bins up to θ_max, 3n modes), exact harmonic sums"
    latents = (_dos_spec(DEFAULT_BINS), _THETA_MAX)
    observables = THERMODYNAMIC_OBSERVABLES

    def __init__(
        self, observables: Sequence[str] | None = None, bins: int = DEFAULT_BINS, theta_max: float | None = None
    ) -> None:
        super().__init__(observables)
        if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
            raise ValueError(f"head {self.name!r}: bins must be a positive integer, got {bins!r}")
        lo, hi = THETA_MAX_BOUNDS
        if theta_max is not None:
            theta_max = float(theta_max)
            if not lo <= theta_max <= hi:
                raise ValueError(f"head {self.name!r}: theta_max must lie in [{lo:g}, {hi:g}] K, got {theta_max!r}")
        self.bins = bins
        self.theta_max = theta_max
        # Per-instance declarations: the DOS length follows ``bins``; θ_max is a latent only
        # when it is not fixed by the config.
        dos = _dos_spec(bins)
        self.latents = (dos,) if theta_max is not None else (dos, _THETA_MAX)
        self.register_buffer(
            "centres", (torch.arange(bins, dtype=torch.float64) + 0.5) / bins, persistent=False
        )

    def get_config(self) -> dict[str, Any]:
        return {**super().get_config(), "bins": self.bins, "theta_max": self.theta_max}

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bins={self.bins}, theta_max={self.theta_max}"

    has_density_of_states = True

    def density_of_states(self, latents: dict[str, Tensor], n_atoms: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        """The normalised DOS: (bin-centre mode temperatures θ_k in K, modes g_k per cell).

        :param latents: ``{"dos": [B, K], "theta_max": [B]}`` (``theta_max`` only if not fixed).
        :param n_atoms: atoms per cell, a number or shape ``[B]``.
        :returns: two tensors of shape ``[B, K]``; ``g.sum(-1) == 3·n_atoms``.
        """
        weights = torch.as_tensor(latents["dos"])
        dtype, work = work_dtype(weights)
        n = torch.as_tensor(n_atoms, dtype=work, device=weights.device)
        theta_k = self._mode_temperatures(latents, weights.to(work))
        g = self._modes(weights.to(work), n.unsqueeze(-1) if n.ndim else n)
        return theta_k.to(dtype), g.to(dtype)

    def dos_histogram(self, latents: dict[str, Tensor], n_atoms: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        """The DOS as a histogram in THz: (bin edges ``[B, K+1]`` on (0, ν_max], modes per bin ``[B, K]``).

        The same modes as :meth:`density_of_states` (each bin's modes sit at its centre in the
        thermodynamic sums; as a histogram they are spread over the bin, which changes no sum of
        the bin's mass), for comparing spectra on other grids
        (:func:`cloudphys.physics.spectrum.wasserstein1`). ν_max = θ_max / 47.9924 K/THz.
        """
        weights = torch.as_tensor(latents["dos"])
        dtype, work = work_dtype(weights)
        w = weights.to(work)
        n = torch.as_tensor(n_atoms, dtype=work, device=w.device)
        g = self._modes(w, n.unsqueeze(-1) if n.ndim else n)
        if self.theta_max is not None:
            top = torch.full(w.shape[:-1], self.theta_max, dtype=work, device=w.device)
        else:
            top = torch.as_tensor(latents["theta_max"]).to(dtype=work, device=w.device).expand(w.shape[:-1])
        steps = torch.arange(self.bins + 1, dtype=work, device=w.device) / self.bins
        edges = (top / K_PER_THZ).unsqueeze(-1) * steps
        return edges.to(dtype), g.to(dtype)

    def _mode_temperatures(self, latents: dict[str, Tensor], weights: Tensor) -> Tensor:
        centres = self.centres.to(dtype=weights.dtype, device=weights.device)
        if self.theta_max is not None:
            return (self.theta_max * centres).expand_as(weights)
        theta_max = torch.as_tensor(latents["theta_max"]).to(dtype=weights.dtype, device=weights.device)
        return theta_max.unsqueeze(-1) * centres

    @staticmethod
    def _modes(weights: Tensor, n: Tensor) -> Tensor:
        shifted = weights + EPS
        # Normalise before scaling by 3n, so that large weights times n cannot overflow.
        return 3.0 * n * (shifted / shifted.sum(-1, keepdim=True))

    def compute(
        self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor, observables: tuple[str, ...]
    ) -> dict[str, Tensor]:
        weights = latents["dos"]
        if weights.shape[-1] != self.bins:
            raise ValueError(f"head {self.name!r}: latent 'dos' has {weights.shape[-1]} bins, expected {self.bins}")
        dtype, work = work_dtype(weights, temperature)
        weights, T, n = weights.to(work), temperature.to(work), n_atoms.to(work)
        theta_k = self._mode_temperatures(latents, weights)  # [..., K]
        g = self._modes(weights, n.unsqueeze(-1))  # [..., K], sums to 3n
        per_mode = oscillator_thermo(theta_k, T.unsqueeze(-1), observables)  # [..., K]
        return {k: (g * v).sum(-1).to(dtype) for k, v in per_mode.items()}
