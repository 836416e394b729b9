"""Direct regression as a head (built-in plugin ``direct``): no physics, the latent *is* the value.

Like CLOUD's fine-tuning baseline, the encoder predicts the observable itself. Each observable
``o`` has a latent ``z_o`` (dimensionless, unbounded) and

    o = (center_o + scale_o · z_o) · (n_atoms if o is extensive else 1)

so ``z_o`` is the standardised per-atom value; ``center``/``scale`` (per atom, in the observable's
unit) are head parameters, set from the training targets by :meth:`DirectHead.fit_to_data` and
saved with the checkpoint. **Temperature handling:** the prediction does not depend on
temperature — the head suits single-temperature data (CLOUD's Cv at 300 K); on a curve it returns
one constant per material, which is exactly why a physics head is needed there.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from ..hookspecs import hookimpl
from ..observables import THERMODYNAMIC_OBSERVABLES, ObservableSpec
from .contract import LatentSpec, PhysicsHead

__all__ = ["DirectHead"]

_OBS = (
    *THERMODYNAMIC_OBSERVABLES,
    ObservableSpec("y", "", False, "any intensive scalar target (e.g. a refractive index)"),
)


class DirectHead(PhysicsHead):
    """Direct regression: the encoder predicts each observable (temperature-independent)."""

    name = "direct"
    description = "direct regression of an observable (no physics; temperature-independent)"
    latents = tuple(
        LatentSpec(f"z_{o.name}", "", typical=0.0, description=f"standardised per-atom {o.name}") for o in _OBS
    )
    observables = _OBS

    def __init__(
        self,
        observables: Sequence[str] | None = ("cv",),
        center: Mapping[str, float] | None = None,
        scale: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(observables)
        # Only the selected observables need a latent (per-instance declaration).
        self.latents = tuple(spec for spec in type(self).latents if spec.name[2:] in self.selected)
        self.observables = tuple(spec for spec in type(self).observables if spec.name in self.selected)
        self.center = {k: float(v) for k, v in (center or {}).items()}
        self.scale = {k: float(v) for k, v in (scale or {}).items()}
        for k, v in self.scale.items():
            if not v > 0:
                raise ValueError(f"direct head: scale of {k!r} must be > 0, got {v}")

    def get_config(self) -> dict[str, Any]:
        return {"observables": list(self.selected), "center": dict(self.center), "scale": dict(self.scale)}

    def fit_to_data(self, per_atom: Mapping[str, np.ndarray]) -> None:
        """Set ``center``/``scale`` from per-atom training targets (NaN = missing)."""
        for name, values in per_atom.items():
            v = np.asarray(values, dtype=np.float64)
            v = v[np.isfinite(v)]
            if name not in {o.name for o in self.observables} or v.size == 0:
                continue
            self.center[name] = float(v.mean())
            sd = float(v.std())
            self.scale[name] = sd if sd > 0 else 1.0

    def compute(
        self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor, observables: tuple[str, ...]
    ) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for o in observables:
            if o not in self.selected:
                raise ValueError(
                    f"direct head was built for observables {list(self.selected)}; it has no latent for {o!r}"
                )
            z = latents[f"z_{o}"]
            v = self.center.get(o, 0.0) + self.scale.get(o, 1.0) * z
            if self.observable(o).extensive:
                v = v * n_atoms
            out[o] = torch.broadcast_to(v, torch.broadcast_shapes(v.shape, temperature.shape))
        return out


@hookimpl
def register_heads(register):
    register(DirectHead)
