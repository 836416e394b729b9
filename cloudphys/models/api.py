"""The user's model: :class:`Model` wraps a loaded :class:`~cloudphys.training.model.ScopePhysicsModel`.

``Model.predict(structures, temperatures=...)`` takes pymatgen ``Structure``s, ASE ``Atoms``,
file paths, SCOPE strings or a list of them and returns a
:class:`~cloudphys.inference.result.Prediction` with every observable of the head, the latents,
per-cell and per-atom values with units, and (ensembles) calibrated spreads. The prediction core is
:func:`cloudphys.inference.predict.predict_with_members`; the ensemble spread is each member run on
the same tokens (converted, parsed and tokenized once for all; :mod:`cloudphys.inference.uncertainty`).

Differentiable use: :meth:`Model.tensors` encodes inputs once; :meth:`Model.forward_tensors` runs
encoder + head on those tensors with autograd on (gradients reach the temperatures, the latents and
the weights); :meth:`Model.latents` returns the latents as tensors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import DataError

__all__ = ["Model", "default_threads", "default_workers", "torch_threads"]


def _temperatures(temperatures: Any) -> np.ndarray:
    from ..inference.predict import parse_temperatures

    if isinstance(temperatures, str):
        return parse_temperatures(temperatures)
    return parse_temperatures(np.atleast_1d(np.asarray(temperatures, dtype=np.float64)))


#: Structures to convert from which :func:`default_workers` uses worker processes.
PARALLEL_FROM = 64


def default_workers(n_structures: int) -> int:
    """Worker processes for converting ``n_structures`` structures: 1 below :data:`PARALLEL_FROM`
    (starting processes costs more than it saves), else ``min(4, usable cores)``."""
    if n_structures < PARALLEL_FROM:
        return 1
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


def default_threads(n_items: int | None = None) -> int:
    """torch intra-op threads the CLI uses: 1 for fewer than 64 inputs (a small batch gains nothing
    from threads and suffers most from oversubscription on a loaded machine), else ``min(4, usable
    cores)``."""
    if n_items is not None and n_items < 64:
        return 1
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores))


class torch_threads:
    """``with torch_threads(n):`` torch's intra-op threads set to ``n`` inside the block and restored
    after it (``None``: untouched). The one place cloudphys changes torch's thread count."""

    def __init__(self, n: int | None) -> None:
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or n < 1):
            raise DataError(f"threads must be a whole number >= 1, got {n!r}")
        self.n, self.before = n, None

    def __enter__(self) -> "torch_threads":
        if self.n is not None:
            import torch

            self.before = torch.get_num_threads()
            torch.set_num_threads(self.n)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.before is not None:
            import torch

            torch.set_num_threads(self.before)


def _without_name(error: str | None, name: str) -> str | None:
    """An item's error without its leading ``NAME: `` (the id is beside it in every table and message)."""
    if error is None:
        return None
    return error[len(name) + 2:] if error.startswith(f"{name}: ") and len(error) > len(name) + 2 else error


class Model:
    """A trained cloudphys model (single or ensemble) with a user's verbs.

    :param core: the loaded :class:`~cloudphys.training.model.ScopePhysicsModel`.
    :param name: registered name or the directory it came from.
    :param calibration: the ensemble's stored calibration (``uncertainty.json``), if any.
    :param spec: the :class:`~cloudphys.models.registry.ModelSpec` of a shipped model.
    """

    def __init__(self, core: Any, *, name: str = "", path: str | Path | None = None,
                 calibration: dict[str, Any] | None = None, spec: Any = None) -> None:
        from ..inference.uncertainty import member_models

        self.core = core.eval()
        self.name = name or (str(path) if path else "")
        self.path = None if path is None else Path(path)
        self.calibration = calibration
        self.spec = spec
        self._members = member_models(core)

    # -- the wrapped torch module ------------------------------------------------------------
    def __getattr__(self, name: str) -> Any:
        """Anything else (``meta``, ``encoder``, ``tokenizer``, ``parameters`` ...) is the core module's."""
        if name.startswith("__") or name in ("core", "_members"):
            raise AttributeError(name)
        return getattr(self.core, name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The core module's forward: ``(observables, latents)`` tensors (see :meth:`forward_tensors`)."""
        return self.core(*args, **kwargs)

    # -- what it is -------------------------------------------------------------------------
    @property
    def head(self) -> Any:
        return self.core.head

    @property
    def members(self) -> int:
        """Ensemble size (1 for a single model)."""
        return len(self._members) if self._members else 1

    @property
    def is_ensemble(self) -> bool:
        return self._members is not None and len(self._members) >= 2

    @property
    def generator_table(self) -> Path | None:
        """CLOUD's generator table shipped with a cloud-dialect model (``generator.json``), if any."""
        if self.path is None:
            return None
        f = self.path / "generator.json"
        return f if f.is_file() else None

    @property
    def observables(self) -> list[str]:
        """Every observable the head gives."""
        return [o.name for o in self.head.observables]

    @property
    def card(self) -> str | None:
        """The model card (shipped models)."""
        return None if self.spec is None else self.spec.card

    def __repr__(self) -> str:
        kind = f"{self.members}-member ensemble" if self.is_ensemble else "single model"
        cal = "" if not self.is_ensemble else (f", spread calibrated (scale {self.calibration['scale']:.3g})"
                                              if self.calibration else ", spread uncalibrated")
        return f"<cloudphys Model {self.name!r}: head {self.head.name}, {kind}{cal}; observables {self.observables}>"

    # -- prediction -------------------------------------------------------------------------
    def predict(
        self,
        structures: Any,
        temperatures: Any = 300.0,
        *,
        observables: Sequence[str] | None = None,
        device: str = "auto",
        batch_size: int = 256,
        workers: int | None = None,
        dialect: str | None = None,
        allow_disordered: bool = False,
        threads: int | str | None = None,
        symprec: float | str = "auto",
        angle_tolerance: float = 5.0,
    ) -> Any:
        """Predict every input at ``temperatures`` (K: a number, a list, or ``"start:stop:step"``).

        :param structures: pymatgen Structure, ase Atoms, a path (CIF, POSCAR, extxyz, traj, ASE
            JSON, CSV/JSON-lines of many), a SCOPE string, an ``(id, object)`` pair, or a list mixing
            them (what one input is: :func:`cloudphys.inputs.read_inputs`, the same rule everywhere).
        :param observables: which of the head's observables (default: all, e.g. u, cv, s, f).
        :param symprec: spglib's distance tolerance (Å) for reading the symmetry of structures, or
            ``"auto"`` (default): the published 0.01 Å for structures that satisfy their symmetry
            exactly, looser (up to 0.2 Å) for noisy ones such as ML-relaxed structures
            (:mod:`cloudphys.scope.symmetry`). Items whose symmetry is far lower than at a looser
            tolerance carry ``symmetry_warning``.
        :param angle_tolerance: spglib's angle tolerance in degrees.
        :param workers: processes converting structures to SCOPE strings (``None``: :func:`default_workers`,
            1 for fewer than :data:`PARALLEL_FROM` structures to convert); results keep the input order.
        :param allow_disordered: convert partial-occupancy structures as CLOUD's converter does (see
            :func:`cloudphys.scope.from_structure`); refused by default.
        :param threads: torch's intra-op threads for this call only (restored afterwards): a number,
            ``"auto"`` (:func:`default_threads` of the number of inputs; what the CLI uses), or ``None``
            (default: torch's setting is left alone -- a library never changes it behind your back).
        :returns: a :class:`~cloudphys.inference.result.Prediction`; inputs that fail keep their
            place with an ``error`` (nothing is dropped, nothing raises per input).
        """
        from ..inference.predict import predict_with_members, read_items
        from ..inference.result import ItemInfo, Prediction, quantities_from_head
        from ..inference.uncertainty import DEFAULT_LEVEL, member_std
        from ..scope.symmetry import check_tolerances

        symprec, angle_tolerance = check_tolerances(symprec, angle_tolerance)  # before any input is read
        T = _temperatures(temperatures)
        obs = list(observables) if observables is not None else self.observables
        unknown = [o for o in obs if o not in self.observables]
        if unknown:
            raise DataError(f"observable(s) {unknown} not given by head {self.head.name!r}; "
                            f"it gives {self.observables}")
        T_all = np.append(T, 0.0)  # one extra column: the zero-point energy u(T = 0)
        items = read_items(structures)  # what one input is, and what a list is: cloudphys.inputs decides
        # A SCOPE string given without n_atoms describes no cell: with intensive encoder inputs its
        # per-atom prediction is well defined, so it is predicted for one atom (per cell stays unknown).
        per_atom = self._intensive_inputs()
        per_atom_only = {k for k, it in enumerate(items)
                         if per_atom and it.error is None and it.scope is not None and it.n_atoms is None}
        if workers is None:
            workers = default_workers(sum(1 for it in items if it.error is None and it.scope is None))
        if threads == "auto":
            threads = default_threads(len(items))
        elif isinstance(threads, str):
            raise DataError(f"threads must be a whole number >= 1, 'auto' or None, got {threads!r}")
        # a model that ships CLOUD's generator table converts structures without the data directory
        kw = dict(observables=obs, dialect=dialect, batch_size=batch_size, device=device, workers=workers,
                  generator_table=self.generator_table, strings_per_atom=per_atom, allow_disordered=allow_disordered,
                  symprec=symprec, angle_tolerance=angle_tolerance)
        # the members read the same tokens: converted, parsed and tokenized once for all of them, and
        # each member's encoder runs once per batch
        with torch_threads(threads):
            mean, per = predict_with_members(self.core, self._members if self.is_ensemble else (), items, T_all,
                                             **kw)
        spreads = None
        dos = self._dos(mean.latents, mean.n_atoms)
        if self.is_ensemble:
            spreads = member_std([{**p.observables, **p.latents} for p in per])
            if dos is not None:
                member_dos = [self._dos(p.latents, p.n_atoms) for p in per]
                dos["modes_std"] = member_std([d for d in member_dos if d is not None])["modes"]
        errors = [it.error for it in items]  # a member's non-finite value marks the item too
        bad = np.asarray([e is not None for e in errors])
        obs_arr = {k: v[:, :-1].copy() for k, v in mean.observables.items()}
        zero = mean.observables["u"][:, -1].copy() if "u" in mean.observables else None
        lats = {k: v.copy() for k, v in mean.latents.items()}
        if spreads is not None:
            spreads = {k: (v[:, :-1] if k in obs_arr else v) for k, v in spreads.items()}
        extra = [zero] if zero is not None else []
        for arr in [*obs_arr.values(), *lats.values(), *(spreads or {}).values(), *extra]:
            arr[bad] = np.nan
        infos = [ItemInfo(name=mean.ids[k], source=mean.sources[k], scope=mean.scope[k],
                          n_atoms=(None if (k in per_atom_only or not np.isfinite(mean.n_atoms[k]))
                                   else float(mean.n_atoms[k])),
                          error=_without_name(errors[k], mean.ids[k]),
                          symmetry_warning=getattr(items[k], "symmetry_warning", None))
                 for k in range(len(items))]
        cal = self.calibration if self.is_ensemble else None
        geometry = None
        if self.core.reads_geometry:  # the rows the model read (from the SCOPE cache where it had them)
            from ..encoders.geometry import N_GEOMETRIC_FEATURES

            geometry = np.full((len(items), N_GEOMETRIC_FEATURES), np.nan)
            for k, it in enumerate(items):
                if errors[k] is None and getattr(it, "geometry", None) is not None:
                    geometry[k] = it.geometry
        return Prediction(
            temperatures=T, items=infos, observables=obs_arr, quantities=quantities_from_head(self.head), latents=lats,
            member_std=spreads, scale=float(cal["scale"]) if cal else 1.0,
            level=float(cal.get("level", DEFAULT_LEVEL)) if cal else DEFAULT_LEVEL, calibration=cal, dos=dos,
            zero_point=zero, model=self.name, head=self.head.name, members=self.members, geometry=geometry,
        )

    def predict_structure(self, structure: Any, temperatures: Any = 300.0, **kwargs: Any) -> Any:
        """One input → its :class:`~cloudphys.inference.result.StructurePrediction` (matgl's verb)."""
        return self.predict([structure], temperatures, **kwargs)[0]

    def _intensive_inputs(self) -> bool:
        """Whether the encoder's inputs never see the cell size (composition feature layout >= 2, or none)."""
        cfg = getattr(self.core.encoder, "config", None)
        if cfg is None or not getattr(cfg, "composition_features", False):
            return True
        return int(getattr(cfg, "feature_layout", 1) or 1) >= 2

    def _dos(self, latents: dict[str, np.ndarray], n_atoms: np.ndarray) -> dict[str, np.ndarray] | None:
        if not self.head.has_density_of_states or not latents:
            return None
        fn = self.head.density_of_states
        import torch

        with torch.no_grad():
            lat = {k: torch.as_tensor(np.nan_to_num(v, nan=1.0)) for k, v in latents.items()}
            n = torch.as_tensor(np.nan_to_num(n_atoms, nan=1.0))
            theta, g = fn(lat, n)
            hist = getattr(self.head, "dos_histogram", None)
            edges = hist(lat, n)[0].numpy().astype(np.float64) if callable(hist) else None
        bad = ~np.isfinite(n_atoms)
        theta, g = theta.numpy().astype(np.float64), g.numpy().astype(np.float64)
        theta[bad], g[bad] = np.nan, np.nan
        out = {"theta_K": theta, "modes": g}
        if edges is not None:  # the bins as a histogram in THz (Prediction.total_dos)
            edges[bad] = np.nan
            out["edges_THz"] = edges
        return out

    # -- differentiable path ----------------------------------------------------------------
    def tensors(self, structures: Any, *, device: str = "cpu") -> dict[str, Any]:
        """Encode inputs once: ``{"input_ids", "attention_mask", "features", "n_atoms", "names"}`` tensors.

        Raises :class:`DataError` naming every input that cannot be used (a differentiable batch
        cannot hold holes).
        """
        from ..data.base import Examples
        from ..modeling.encoding import collate, encode

        pred = self.predict(structures, [0.0], observables=self.observables[:1])
        if pred.errors:
            raise DataError("cannot encode: " + "; ".join(f"{k}: {v}" for k, v in pred.errors.items()))
        # the structures' geometric features (encoder.geometric_features): the rows the prediction read
        geometry = pred.geometry if self.core.reads_geometry else None
        ex = Examples(ids=[it.name for it in pred.items], scope=[str(it.scope) for it in pred.items],  # type: ignore[misc]
                      n_atoms=np.asarray([it.n_atoms for it in pred.items], dtype=np.float64),
                      temperatures=np.zeros(1), geometry=geometry)
        enc = encode(ex, self.core)
        batch = collate(enc, np.arange(len(enc)), int(self.core.tokenizer.pad_token_id), device)
        return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
                "features": batch["features"], "n_atoms": batch["n_atoms"], "names": list(enc.ids),
                "n_atoms_primitive": batch["n_atoms_primitive"]}  # atoms per primitive cell (issue 12)

    def latents(self, structures: Any) -> dict[str, Any]:
        """Latents ``{name: tensor [B, *shape]}`` with autograd on (θ_D in K, ...)."""
        b = structures if isinstance(structures, dict) and "input_ids" in structures else self.tensors(structures)
        return self.core.latents(b["input_ids"], b["attention_mask"], b["features"])

    def forward_tensors(self, batch: dict[str, Any], temperature: Any,
                        observables: Sequence[str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``(observables {name: [B, nT]} per mole of cells, latents)`` as tensors with gradients.

        :param batch: from :meth:`tensors`.
        :param temperature: K, a tensor ``[nT]`` or ``[B, nT]`` (``requires_grad`` works: Cv = ∂u/∂T).
        """
        import torch

        T = torch.as_tensor(temperature, dtype=torch.float32, device=batch["input_ids"].device)
        if T.ndim == 1:
            T = T.expand(batch["input_ids"].shape[0], -1)
        return self.core(batch["input_ids"], batch["attention_mask"], T, batch["n_atoms"], batch["features"],
                         list(observables) if observables else self.observables,
                         n_atoms_primitive=batch.get("n_atoms_primitive"))
