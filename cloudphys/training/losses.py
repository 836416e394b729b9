"""The training loss (the evaluation metrics, shared with prediction, are
:mod:`cloudphys.modeling.metrics`, re-exported here).

Every observable's error is taken per atom (extensive observables divided by ``n_atoms``) and
divided by the training split's per-atom spread (:func:`target_stats`), so observables of different
units weigh alike. :func:`loss` is the torch loss of a batch (backpropagated in training);
:func:`loss_value` evaluates the *same* function on numpy predictions (validation, ensembles), in
float64. Missing labels (non-finite targets) are left out of both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..errors import ConfigError, DataError
from ..modeling.metrics import metrics_from_predictions, per_atom

__all__ = ["LOSSES", "check_loss_weights", "dos_roughness", "dos_w1", "effective_weights", "loss", "loss_value",
           "metrics_from_predictions", "per_atom", "target_stats"]

#: Loss kinds of ``train.loss``.
LOSSES = ("l1", "mse", "huber")


def target_stats(enc: Any, head: Any) -> dict[str, Any]:
    """Training-target statistics of an :class:`~cloudphys.modeling.encoding.Encoded` split:
    per-observable per-atom spread (the loss scale) and the means per temperature (for MAD)."""
    stats: dict[str, Any] = {"temperatures": enc.temperatures.tolist(), "observables": {}}
    for name, y in enc.targets.items():
        spec = head.observable(name)
        ext = spec.extensive
        pa = per_atom(y, enc.n_atoms, ext)
        finite = np.isfinite(pa)
        if not finite.any():
            raise DataError(f"training split has no label for observable {name!r}")
        sd = float(np.nanstd(pa))
        kind = getattr(spec, "kind", "curve")
        if kind == "probability":  # cross-entropy: no scale; labels must be probabilities
            bad = finite & ((pa < 0) | (pa > 1))
            if bad.any():
                raise DataError(f"observable {name!r} is a probability but the training split has labels outside "
                                f"[0, 1] (e.g. {float(pa[bad][0])!r})")
            sd = 1.0
        stats["observables"][name] = {
            "extensive": bool(ext),
            "scale_per_atom": sd if sd > 0 else 1.0,
            "mean": [float(v) if np.isfinite(v) else None
                     for v in np.nanmean(np.where(np.isfinite(y), y, np.nan), axis=0)],
            "mean_per_atom": [float(v) if np.isfinite(v) else None for v in np.nanmean(pa, axis=0)],
        }
        if kind != "curve":  # (curves' statistics stay as they were)
            stats["observables"][name]["kind"] = kind
    return stats


def loss(
    pred: Mapping[str, Tensor], targets: Mapping[str, Tensor], n_atoms: Tensor, stats: Mapping[str, Any], kind: str,
    weights: Mapping[str, float] | None = None, example_weights: Tensor | None = None,
) -> Tensor:
    """Mean over observables of the mean ``kind`` loss of the scaled per-atom errors.

    With ``weights`` (``train.loss_weights``: observable -> weight, unlisted ones 1) the mean over
    observables is the weighted mean Σ w_o·L_o / Σ w_o; without, the plain mean.

    :param pred: ``{observable: [B, nT]}`` predictions (per cell for extensive observables).
    :param targets: ``{observable: [B, nT]}`` labels; non-finite entries are missing labels.
    :param n_atoms: ``[B]`` atoms per cell.
    :param stats: :func:`target_stats` of the training split.
    :param kind: ``l1``, ``mse`` or ``huber`` (δ = 1 in units of the training spread); an observable of
        kind ``probability`` (``stats`` say so) takes the binary cross-entropy instead.
    :param example_weights: ``[B]`` weights of the examples (``train.formula_weight``): each
        observable's mean is then the weighted mean over the labelled entries; ``None``: all 1.
    """
    total = None
    wsum = 0.0
    n = n_atoms.unsqueeze(-1)
    for name, target in targets.items():
        info = stats["observables"][name]
        mask = torch.isfinite(target)
        if info.get("kind") == "probability":  # binary cross-entropy, whatever train.loss says
            eps = 1e-6 if pred[name].dtype == torch.float32 else 1e-12
            p = pred[name].clamp(eps, 1.0 - eps)
            y = torch.where(mask, target, torch.zeros_like(target))
            per = -(y * torch.log(p) + (1.0 - y) * torch.log1p(-p))
            per = torch.where(mask, per, torch.zeros_like(per))
        else:
            err = pred[name] - target
            if info["extensive"]:
                err = err / n
            err = err / info["scale_per_atom"]
            err = torch.where(mask, err, torch.zeros_like(err))
            if kind == "l1":
                per = err.abs()
            elif kind == "mse":
                per = err * err
            elif kind == "huber":
                per = torch.nn.functional.huber_loss(err, torch.zeros_like(err), reduction="none", delta=1.0)
            else:
                raise DataError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")
        if example_weights is None:
            term = per.sum() / mask.sum().clamp_min(1)
        else:
            w_ex = example_weights.to(per.dtype).unsqueeze(-1)
            term = (per * w_ex).sum() / (mask * w_ex).sum().clamp_min(1e-12)
        if weights:
            w = float(weights.get(name, 1.0))
            term = term * w
            wsum += w
        total = term if total is None else total + term
    if total is None:
        raise DataError("batch has no target the head can predict")
    if weights:
        if wsum <= 0:
            raise DataError(f"train.loss_weights {dict(weights)} give every observable of the batch "
                            f"({', '.join(targets)}) the weight 0")
        return total / wsum
    return total / len(targets)


def check_loss_weights(weights: Mapping[str, float], observables: Any) -> None:
    """``train.loss_weights`` against the observables trained on: every key one of them, and at least
    one of them with a positive weight (:class:`~cloudphys.errors.ConfigError` naming the key otherwise)."""
    if not weights:
        return
    observables = list(observables)
    for name in weights:
        if name not in observables:
            raise ConfigError(f"train.loss_weights names {name!r}, which this run does not train on "
                              f"(its observables: {', '.join(observables)})")
    if all(float(weights.get(o, 1.0)) == 0 for o in observables):
        raise ConfigError(f"train.loss_weights {dict(weights)} give every observable the weight 0: "
                          "nothing would be learnt")


def dos_roughness(head: Any, latents: Mapping[str, Tensor], n_atoms: Tensor) -> Tensor:
    """The smoothness prior of ``train.dos_smoothness``: mean over the batch of
    ``K · Σ_k (p_{k+1} − p_k)²``, where ``p_k = g_k / 3n`` is the fraction of the modes in bin ``k`` of
    the head's density of states (:meth:`~cloudphys.physics.contract.PhysicsHead.density_of_states`,
    ``K`` bins in order of frequency). It is 0 for a flat DOS, of order 1 for a spread-out spectrum
    with a few peaks and ``2K`` for all modes in one inner bin; the factor ``K`` makes it about as
    large for any number of bins. Float32 or wider, differentiable in the latents."""
    _, g = head.density_of_states(latents, n_atoms)
    p = g / g.sum(-1, keepdim=True)
    diff = p[..., 1:] - p[..., :-1]
    return p.shape[-1] * (diff * diff).sum(-1).mean()


def dos_w1(head: Any, latents: Mapping[str, Tensor], n_atoms: Tensor, labels: Mapping[str, Tensor],
           reduce: bool = True, example_weights: Tensor | None = None) -> Tensor:
    """The DOS term of ``train.dos_weight``: the Wasserstein-1 distance per mode (THz) between the head's
    DOS (``head.dos_histogram``: bins on (0, ν_max]) and the labels of the batch, each on its own grid
    (:func:`cloudphys.physics.spectrum.wasserstein1` with ``per = 3·n_atoms``; the labels' modes at or
    below 0 THz a point mass at 0), computed in float64.

    :param labels: ``{"mass": [B, K'], "fmax_thz": [B], "atom": [B]}`` (:func:`~cloudphys.modeling.encoding.collate`);
        rows with a non-finite label are left out.
    :param example_weights: ``[B]`` weights (``train.formula_weight``): the mean is then weighted.
    :returns: the mean over the labelled materials (0, still connected to the graph, if none), or
        with ``reduce=False`` the per-material distances ``[B]`` (NaN where unlabelled).
    """
    from ..physics.spectrum import equal_edges, wasserstein1

    edges, g = head.dos_histogram(latents, n_atoms)
    mass = labels["mass"].double()
    fmax = labels["fmax_thz"].double()
    ok = torch.isfinite(mass).all(-1) & torch.isfinite(fmax) & (fmax > 0)
    safe_mass = torch.where(ok.unsqueeze(-1), mass, torch.zeros_like(mass))
    safe_fmax = torch.where(ok, fmax, torch.ones_like(fmax))
    atom = torch.where(ok, labels["atom"].double(), torch.zeros_like(fmax))
    n = n_atoms.double()
    # a label without its full 3n modes (never in phonondb-thermo) is rescaled to them
    total = safe_mass.sum(-1) + atom
    scale = torch.where(total > 0, 3.0 * n / total.clamp_min(1e-300), torch.ones_like(total))
    d = wasserstein1(g.double(), edges.double(), safe_mass * scale.unsqueeze(-1),
                     equal_edges(safe_fmax, mass.shape[-1]), atom_b=atom * scale, per=3.0 * n)
    if not reduce:
        return torch.where(ok, d, torch.full_like(d, float("nan")))
    d = torch.where(ok, d, torch.zeros_like(d))
    if example_weights is None:
        mean = d.sum() / ok.sum().clamp_min(1)
    else:
        w_ex = torch.where(ok, example_weights.double(), torch.zeros_like(d))
        mean = (d * w_ex).sum() / w_ex.sum().clamp_min(1e-12)
    return mean.to(g.dtype if g.dtype != torch.float16 else torch.float32)


def loss_value(preds: Mapping[str, np.ndarray], enc: Any, stats: Mapping[str, Any], kind: str,
               weights: Mapping[str, float] | None = None) -> float:
    """:func:`loss` (float64) of numpy predictions ``{observable: [N, nT]}`` on an ``Encoded`` split."""
    def as_t(a: Any) -> Tensor:
        return torch.from_numpy(np.asarray(a, dtype=np.float64))

    value = loss({k: as_t(preds[k]) for k in enc.targets}, {k: as_t(v) for k, v in enc.targets.items()},
                 as_t(enc.n_atoms), stats, kind, weights)
    return float(value)


def effective_weights(head: Any, weights: Mapping[str, float] | None) -> dict[str, float] | None:
    """The per-observable weights of the loss: ``train.loss_weights`` times, for a head list
    (:class:`~cloudphys.physics.multi.MultiHead`), each head's ``weight`` shared among its observables.
    A single head: ``train.loss_weights`` as they are (``None`` when empty)."""
    per_head = getattr(head, "observable_weights", None)
    if not callable(per_head):
        return dict(weights) if weights else None
    own = per_head()
    return {o: w * float((weights or {}).get(o, 1.0)) for o, w in own.items()}
