"""The ``stability`` head: the probability that a crystal is dynamically unstable.

Dynamically unstable (harmonic approximation): the phonon spectrum has imaginary modes. In
phonondb-thermo a material is unstable when its lowest mesh frequency is at or below −0.1 THz
(``stable: false``); the data set's ``stability: true`` labels every material with ``p_unstable``
(1 unstable, 0 stable) and ``min_freq_thz``.

Latent: ``stability_logit`` z (log-odds, unbounded). Output ``p_unstable = sigmoid(a·z + b)``:
``calibration = [a, b]`` is fitted on the validation split after training (Platt scaling,
:meth:`StabilityHead.calibrate`) and saved in ``head.json``; ``[1, 0]`` before that. The
regression variant (``observables: [p_unstable, min_freq_thz]`` or ``[min_freq_thz]``) adds the
latent ``lowest_freq_thz``: the predicted lowest phonon frequency (THz, negative for imaginary).

Neither output depends on temperature: called without one, the head returns one value per item
(``[B]``); given a temperature (as every head of a model is), the value repeated along it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

from cloudphys.physics import LatentSpec, ObservableSpec, PhysicsHead

__all__ = ["StabilityHead", "platt_fit"]

_LOGIT = LatentSpec("stability_logit", "", typical=0.0, scale="linear",
                    description="log-odds that the crystal is dynamically unstable (before calibration)")
_LOWEST = LatentSpec("lowest_freq_thz", "THz", typical=0.0, scale="linear",
                     description="predicted lowest phonon frequency, THz (negative: imaginary)")


class StabilityHead(PhysicsHead):
    """P(dynamically unstable) (and optionally the lowest phonon frequency) of a crystal."""

    name: ClassVar[str] = "stability"
    description: ClassVar[str] = "probability that the crystal is dynamically unstable (imaginary phonon modes)"
    latents: ClassVar[tuple[LatentSpec, ...]] = (_LOGIT, _LOWEST)
    observables: ClassVar[tuple[ObservableSpec, ...]] = (
        ObservableSpec("p_unstable", "", False, "probability of imaginary phonon modes (harmonic)",
                       kind="probability"),
        ObservableSpec("min_freq_thz", "THz", False, "lowest phonon frequency (negative: imaginary)", kind="scalar"),
    )
    conditions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, observables: Sequence[str] | None = ("p_unstable",),
                 calibration: Sequence[float] = (1.0, 0.0)) -> None:
        super().__init__(observables)
        if not self.selected:
            raise ValueError(f"head {self.name!r}: choose at least one observable (p_unstable, min_freq_thz)")
        cal = [float(c) for c in calibration]
        if len(cal) != 2 or not all(np.isfinite(cal)) or not cal[0] > 0:
            raise ValueError(f"head {self.name!r}: calibration must be [a > 0, b] (p = sigmoid(a*z + b)), "
                             f"got {list(calibration)!r}")
        self.calibration = (cal[0], cal[1])
        # instance declarations: a latent and an observable only for the outputs chosen
        self.latents = tuple(s for s in (_LOGIT, _LOWEST)  # type: ignore[misc]
                             if s is _LOGIT and "p_unstable" in self.selected
                             or s is _LOWEST and "min_freq_thz" in self.selected)
        self.observables = tuple(o for o in type(self).observables if o.name in self.selected)  # type: ignore[misc]

    def get_config(self) -> dict[str, Any]:
        return {"observables": list(self.selected), "calibration": list(self.calibration)}

    def compute(self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor,
                observables: tuple[str, ...]) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        for o in observables:
            if o == "p_unstable":
                if "stability_logit" not in latents:
                    raise ValueError(f"head {self.name!r} was built without p_unstable (observables "
                                     f"{list(self.selected)})")
                z = latents["stability_logit"]
                dtype = z.dtype if z.dtype in (torch.float32, torch.float64) else torch.float32
                a, b = self.calibration
                v = torch.sigmoid(a * z.to(dtype) + b).to(z.dtype)
            else:
                if "lowest_freq_thz" not in latents:
                    raise ValueError(f"head {self.name!r} was built without min_freq_thz (observables "
                                     f"{list(self.selected)})")
                v = latents["lowest_freq_thz"]
            v = v.to(temperature.dtype) if v.dtype != temperature.dtype else v
            out[o] = torch.broadcast_to(v, torch.broadcast_shapes(v.shape, temperature.shape))
        return out

    def calibrate(self, latents: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, Any] | None:
        """Platt scaling on a held-out split: fit ``a, b`` of ``sigmoid(a·z + b)`` to its labels."""
        if "p_unstable" not in self.selected or "p_unstable" not in targets or "stability_logit" not in latents:
            return None
        z = np.asarray(latents["stability_logit"], dtype=np.float64).reshape(-1)
        y = np.asarray(targets["p_unstable"], dtype=np.float64)
        y = y[:, 0] if y.ndim == 2 else y.reshape(-1)
        ok = np.isfinite(z) & np.isfinite(y)
        if ok.sum() < 10 or len(np.unique(y[ok])) < 2:
            return None
        a, b = platt_fit(z[ok], y[ok])
        self.calibration = (a, b)
        return {"method": "platt", "a": a, "b": b, "n": int(ok.sum()), "positives": int(y[ok].sum())}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, observables={self.selected}, calibration={list(self.calibration)}"


def platt_fit(z: np.ndarray, y: np.ndarray, iterations: int = 100) -> tuple[float, float]:
    """``(a, b)`` minimising the log loss of ``sigmoid(a·z + b)`` against labels ``y`` ∈ {0, 1}
    (Newton's method with backtracking in float64, Platt's smoothed targets; ``a`` kept positive)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n_pos, n_neg = float(y.sum()), float(len(y) - y.sum())
    t = np.where(y > 0.5, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))

    def loss(a: float, b: float) -> float:
        x = a * z + b  # log(1 + e^x) - t·x, without overflow
        return float(np.mean(np.logaddexp(0.0, x) - t * x))

    a, b = 1.0, 0.0
    current = loss(a, b)
    for _ in range(iterations):
        p = 0.5 * (1.0 + np.tanh(0.5 * (a * z + b)))  # sigmoid without overflow
        g = np.array([np.mean((p - t) * z), np.mean(p - t)])
        w = p * (1 - p) + 1e-12
        h = np.array([[np.mean(w * z * z), np.mean(w * z)], [np.mean(w * z), np.mean(w)]]) + 1e-9 * np.eye(2)
        step = np.linalg.solve(h, g)
        scale = 1.0
        while scale > 1e-8:
            na, nb = a - scale * step[0], b - scale * step[1]
            new = loss(na, nb)
            if new <= current:
                break
            scale *= 0.5
        else:
            break
        done = current - new < 1e-14
        a, b, current = na, nb, new
        if done:
            break
    return float(max(a, 1e-3)), float(b)
