"""Several heads on one encoder: :class:`MultiHead` (config ``heads:``, registered as ``multi``).

A config may name a list of heads instead of one::

    heads:
      - name: phonon-dos          # each entry: a head section (name + the head's parameters) ...
        observables: [cv, s, u]
        bins: 16
        weight: 1.0               # ... and its loss weight (default 1)
      - name: stability           # plugins/cloudphys-stability: p_unstable
        weight: 0.5

``load_config`` turns the list into the head section ``{name: multi, heads: [...]}``: one
:class:`MultiHead` holding the heads, which is itself a :class:`~cloudphys.physics.PhysicsHead`, so
training, saving (``head.json`` lists the heads with their parameters and weights), loading (every
entry is held to its head's config schema and bounds, as a single head is) and prediction treat it as
they treat one head. Its latents are the heads' latents together and its observables their
observables together; a latent or observable name that two heads declare is refused (the encoder
makes one value per name, and an output column must say whose it is).

Training: each head's loss is the mean over its own observables, and the heads' losses are weighted
by ``weight`` (:meth:`MultiHead.observable_weights`). Labels are masked per item and observable
(NaN: missing), so an item labelled for one head only teaches that head: a dynamically unstable
material (no trustworthy curves) still teaches a stability head, and never the thermodynamic loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from torch import Tensor, nn

from ..errors import ConfigError
from ..hookspecs import hookimpl
from .contract import CONDITIONS, PhysicsHead, _class_or_instance_method

__all__ = ["MultiHead", "head_entries"]

#: The default: one Debye head (``multi`` built without parameters, e.g. by registry-wide checks).
_DEFAULT_HEADS: tuple[dict[str, Any], ...] = ({"name": "debye"},)


def head_entries(heads: Any, registry: Any = None) -> list[tuple[str, dict[str, Any], float]]:
    """``heads:`` (a list of head sections with an optional ``weight``) as ``[(name, params, weight)]``,
    every entry checked against its head's config schema and bounds (:class:`ConfigError` naming the
    entry otherwise)."""
    from ..config.validate import plugin_section

    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    if isinstance(heads, (str, bytes)) or not isinstance(heads, Sequence) or not heads:
        raise ConfigError(f"heads must be a non-empty list of head sections ({{name: HEAD, ...}}), got {heads!r:.80}")
    out: list[tuple[str, dict[str, Any], float]] = []
    for i, raw in enumerate(heads):
        what = f"heads[{i}]"
        if isinstance(raw, str):
            raw = {"name": raw}
        if not isinstance(raw, Mapping):
            raise ConfigError(f"{what} must be a head section {{name: HEAD, ...}}, got {raw!r:.80}")
        raw = dict(raw)
        weight = raw.pop("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not (0.0 <= float(weight) < 1e6):
            raise ConfigError(f"{what}.weight must be a number >= 0, got {weight!r}")
        if raw.get("name") == MultiHead.name:
            raise ConfigError(f"{what}: a head list cannot hold another head list ('{MultiHead.name}')")
        try:
            section = plugin_section("head", raw, registry.heads)
        except ConfigError as exc:
            raise ConfigError(f"{what}: {exc}") from None
        out.append((section.name, dict(section.params), float(weight)))
    if all(w == 0 for _, _, w in out):
        raise ConfigError("heads: every head has weight 0 (nothing would be learnt)")
    return out


class MultiHead(PhysicsHead):
    """Several physics heads on one encoder's latents (see the module docstring).

    :param heads: head sections, each ``{name: HEAD, weight: W, **HEAD's parameters}``.
    """

    name: ClassVar[str] = "multi"
    description: ClassVar[str] = "several heads on one encoder (config `heads:`), each with its loss weight"
    composite: ClassVar[bool] = True
    conditions: ClassVar[tuple[str, ...]] = tuple(CONDITIONS)

    def __init__(self, heads: Any = _DEFAULT_HEADS) -> None:
        nn.Module.__init__(self)
        from ..plugins import get_registry

        registry = get_registry()
        entries = head_entries(heads, registry)
        self.heads = nn.ModuleList(registry.build_head(name, **params) for name, params, _ in entries)
        self.names: tuple[str, ...] = tuple(name for name, _, _ in entries)
        self.weights: tuple[float, ...] = tuple(w for _, _, w in entries)
        latents, observables, owner, lat_owner = [], [], {}, {}
        for i, head in enumerate(self.heads):
            for spec in head.latents:
                if spec.name in lat_owner:
                    raise ConfigError(f"heads {self.names[lat_owner[spec.name]]!r} and {self.names[i]!r} both declare "
                                      f"the latent {spec.name!r}; a head list needs distinct latent names")
                lat_owner[spec.name] = i
                latents.append(spec)
            for spec in head.observables:
                if spec.name in owner:
                    raise ConfigError(f"heads {self.names[owner[spec.name]]!r} and {self.names[i]!r} both give the "
                                      f"observable {spec.name!r}; a head list needs distinct observable names")
                owner[spec.name] = i
                observables.append(spec)
        self.latents = tuple(latents)  # type: ignore[misc]
        self.observables = tuple(observables)  # type: ignore[misc]
        used = {c for h in self.heads for c in h.conditions}
        self.conditions = tuple(c for c in CONDITIONS if c in used)  # type: ignore[misc]
        self._owner: dict[str, int] = owner
        self.selected = tuple(o for h in self.heads for o in h.selected)
        self.has_density_of_states = any(h.has_density_of_states for h in self.heads)  # type: ignore[misc]

    # -- declarations ---------------------------------------------------------------------
    def get_config(self) -> dict[str, Any]:
        return {"heads": [{"name": n, **h.get_config(), "weight": w}
                          for n, h, w in zip(self.names, self.heads, self.weights)]}

    @_class_or_instance_method
    def describe(cls) -> dict[str, Any]:
        out = PhysicsHead.describe.__func__(cls)  # type: ignore[attr-defined]
        if isinstance(cls, MultiHead):
            out["heads"] = [{**h.describe(), "weight": w} for h, w in zip(cls.heads, cls.weights)]
        return out

    def head_of(self, observable: str) -> PhysicsHead:
        """The head that gives ``observable``."""
        if observable not in self._owner:
            self._unknown(observable)
        return self.heads[self._owner[observable]]

    def observable_weights(self) -> dict[str, float]:
        """Loss weight per selected observable: ``weight / (the head's selected observables)``, so that
        the training loss is Σ_heads weight · (mean loss over the head's observables) / Σ weight."""
        out: dict[str, float] = {}
        for head, w in zip(self.heads, self.weights):
            for o in head.selected:
                out[o] = w / len(head.selected)
        return out

    # -- capabilities, delegated ----------------------------------------------------------
    def fit_to_data(self, per_atom: Mapping[str, Any]) -> None:
        for head in self.heads:
            mine = {k: v for k, v in per_atom.items() if k in {s.name for s in head.observables}}
            if mine:
                head.fit_to_data(mine)

    def calibrate(self, latents: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, Any] | None:
        done = {}
        for name, head in zip(self.names, self.heads):
            own = {s.name for s in head.observables}
            rec = head.calibrate({s.name: latents[s.name] for s in head.latents if s.name in latents},
                                 {k: v for k, v in targets.items() if k in own})
            if rec is not None:
                done[name] = rec
        return done or None

    def density_of_states(self, latents: Mapping[str, Tensor], n_atoms: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        for head in self.heads:
            if head.has_density_of_states:
                return head.density_of_states(latents, n_atoms)
        return super().density_of_states(latents, n_atoms)

    # -- evaluation -----------------------------------------------------------------------
    def forward(
        self,
        latents: Mapping[str, Tensor],
        temperature: Tensor | float | None = None,
        n_atoms: Tensor | float | None = 1,
        observables: Sequence[str] | None = None,
        *,
        n_atoms_primitive: Tensor | float | None = None,
    ) -> dict[str, Tensor]:
        """Each head on its own latents and observables (each head checks its inputs); outputs in the
        order asked for. A per-item observable has the temperature's shape like a curve."""
        wanted = tuple(self.selected if observables is None else observables)
        for o in wanted:
            if o not in self._owner:
                self._unknown(o)
        if not isinstance(latents, Mapping):
            raise TypeError(f"latents must be a mapping name -> tensor, got {type(latents).__name__}")
        got: dict[str, Tensor] = {}
        extra = {} if n_atoms_primitive is None else {"n_atoms_primitive": n_atoms_primitive}
        for i, head in enumerate(self.heads):
            mine = tuple(o for o in wanted if self._owner[o] == i)
            if not mine:
                continue
            missing = [s.name for s in head.latents if s.name not in latents]
            if missing:
                raise ValueError(f"head {self.names[i]!r} needs latents {missing}; got {sorted(latents)}")
            got.update(head(latents={s.name: latents[s.name] for s in head.latents}, temperature=temperature,
                            n_atoms=n_atoms, observables=mine, **extra))
        return {o: got[o] for o in wanted}

    def compute(self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor,
                observables: tuple[str, ...], **kw: Any) -> dict[str, Tensor]:
        """Not used: :meth:`forward` calls each head (which checks and broadcasts its own inputs)."""
        return self.forward(latents, temperature, n_atoms, observables, **kw)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, heads={list(self.names)}, weights={list(self.weights)}"


@hookimpl
def register_heads(register: Any) -> None:
    register(MultiHead)
