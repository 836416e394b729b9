"""The physics-head contract: what a head declares and how it is called.

A head is a :class:`torch.nn.Module` subclass of :class:`PhysicsHead` that declares

* ``latents`` -- :class:`LatentSpec` per latent parameter the encoder must predict (name, unit,
  bounds, typical value, and a shape: ``()`` for a scalar per sample such as ``theta_D``, ``(K,)``
  for a vector such as a coarse phonon density of states);
* ``conditions`` -- the per-sample inputs it needs besides latents (``temperature`` in K,
  ``n_atoms`` atoms per cell; optionally ``n_atoms_primitive``, atoms per primitive cell, for a
  head whose per-atom values depend on it -- see :data:`CONDITIONS`);
* ``observables`` -- :class:`ObservableSpec` per output (name, unit, extensive or not).

Call convention (``forward``)::

    head(latents={"theta_D": theta}, temperature=T, n_atoms=n, observables=("cv", "u"))

``theta`` has shape ``[B, *latent.shape]``; ``T`` has shape ``[B]`` (one temperature per sample) or
``[B, nT]`` (a curve per sample); ``n`` is a number or has shape ``[B]``. Scalars are accepted and
broadcast against the others. Every returned tensor has the shape of
``T`` after broadcasting. Device and dtype follow the inputs; integer inputs (tensors or Python
numbers) are promoted to the floating dtype of the other inputs, or to torch's default dtype.

Range: every finite temperature from 0 to :func:`temperature_limit` (the power of two below √ of
the largest finite number of the working dtype: 2⁶³ ≈ 9.2e18 K in float32, 2⁵¹¹ ≈ 6.7e153 K in
float64) and ``n_atoms`` up to :func:`n_atoms_limit` (2³¹ ≈ 2.1e9 in float32) give finite
observables with finite gradients, element by element; larger values are rejected before
computing, with a ``ValueError`` naming the value and its index.

One module (about 460 lines) on purpose: the declarations, the call convention and the input
checks that enforce it are the contract together, read top to bottom by a head author;
``PhysicsHead.forward`` and :func:`check_inputs` share the limits defined here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Mapping, Sequence

import torch
from torch import Tensor, nn

from ..errors import PluginRegistrationError
from ..observables import ObservableSpec

__all__ = [
    "R_GAS",
    "LatentSpec",
    "ObservableSpec",
    "PhysicsHead",
    "CONDITIONS",
    "validate_head_class",
    "check_inputs",
    "OUTPUT_RTOL",
    "head_output_problems",
    "temperature_limit",
    "n_atoms_limit",
]

#: Molar gas constant in J/(K·mol) (CODATA 2018, exact).
R_GAS = 8.314462618

#: Conditions a head may declare: name → unit. ``n_atoms_primitive`` is optional: atoms per primitive
#: cell (intensive: ``predict`` takes it from each structure, ``cloudphys.scope.primitive_atoms``),
#: for a head that needs it (e.g. 3 acoustic modes per primitive cell); a call without it (or a head
#: that does not declare it) reads the given cell as primitive (``n_atoms_primitive = n_atoms``).
CONDITIONS: dict[str, str] = {
    "temperature": "K",
    "n_atoms": "atoms per cell",
    "n_atoms_primitive": "atoms per primitive cell",
}


@dataclass(frozen=True)
class LatentSpec:
    """A latent parameter a head needs.

    :param name: key in the ``latents`` mapping, e.g. ``"theta_D"``.
    :param unit: physical unit, e.g. ``"K"``; ``""`` for dimensionless.
    :param lower: smallest allowed value (``None``: unbounded below).
    :param upper: largest allowed value (``None``: unbounded above).
    :param typical: a typical value; latent layers initialise so that training starts here.
    :param shape: per-sample shape, ``()`` for a scalar, ``(K,)`` for a vector.
    :param scale: ``"log"`` (positive quantities spanning decades, e.g. temperatures) or
        ``"linear"``: how a latent layer should map an unconstrained number into the bounds.
    :param description: one line for docs and ``cloudphys plugins``.
    """

    name: str
    unit: str
    lower: float | None = None
    upper: float | None = None
    typical: float = 1.0
    shape: tuple[int, ...] = ()
    scale: str = "linear"
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"latent name must be an identifier, got {self.name!r}")
        if self.scale not in ("log", "linear"):
            raise ValueError(f"latent {self.name!r}: scale must be 'log' or 'linear', got {self.scale!r}")
        if self.lower is not None and self.upper is not None and not self.lower < self.upper:
            raise ValueError(f"latent {self.name!r}: lower bound {self.lower} must be below upper {self.upper}")
        if not math.isfinite(self.typical):
            raise ValueError(f"latent {self.name!r}: typical value must be finite, got {self.typical}")
        if (self.lower is not None and self.typical < self.lower) or (
            self.upper is not None and self.typical > self.upper
        ):
            raise ValueError(
                f"latent {self.name!r}: typical value {self.typical} outside [{self.lower}, {self.upper}]"
            )
        if self.scale == "log" and (self.lower is None or self.lower <= 0):
            raise ValueError(f"latent {self.name!r}: scale 'log' needs a positive lower bound")
        if not all(isinstance(d, int) and d > 0 for d in self.shape):
            raise ValueError(f"latent {self.name!r}: shape must be a tuple of positive ints, got {self.shape!r}")

    @property
    def size(self) -> int:
        """Number of scalars per sample."""
        return math.prod(self.shape)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "lower": self.lower,
            "upper": self.upper,
            "typical": self.typical,
            "shape": list(self.shape),
            "scale": self.scale,
            "description": self.description,
        }


class _class_or_instance_method:
    """Like ``classmethod``, but bound to the instance when called on one (so that a method
    reading declarations sees per-instance overrides such as ``self.latents``)."""

    def __init__(self, func: Any) -> None:
        self.__func__ = func
        self.__doc__ = getattr(func, "__doc__", None)

    def __get__(self, obj: Any, owner: type | None = None) -> Any:
        return self.__func__.__get__(owner if obj is None else obj, owner)


class PhysicsHead(nn.Module):
    """Base class of physics heads.

    Subclasses set the class attributes ``name``, ``latents``, ``observables`` (and
    ``conditions`` if they need fewer than both) and implement :meth:`compute`. Constructor
    keyword arguments are the head's parameters in a config; :meth:`get_config` returns them so
    that a head can be rebuilt with ``type(head)(**head.get_config())``.

    When a latent's shape depends on a constructor parameter (e.g. the number of bins of a
    vector-valued phonon density of states), ``__init__`` may set ``self.latents`` on the
    instance; the class attribute stays the default declaration (used for listings and
    registration checks). :meth:`forward`, :meth:`latent` and :meth:`describe` read the
    instance's declarations when called on an instance, so whatever builds the encoder's latent
    layer must read ``head.latents`` from the built head.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    latents: ClassVar[tuple[LatentSpec, ...]] = ()
    observables: ClassVar[tuple[ObservableSpec, ...]] = ()
    conditions: ClassVar[tuple[str, ...]] = ("temperature", "n_atoms")

    def __init__(self, observables: Sequence[str] | None = None) -> None:
        super().__init__()
        known = [o.name for o in type(self).observables]
        chosen = list(known if observables is None else observables)
        for o in chosen:
            if o not in known:
                raise ValueError(f"head {self.name!r} has no observable {o!r}; available: {', '.join(known)}")
        self.selected: tuple[str, ...] = tuple(chosen)

    # -- declarations ---------------------------------------------------------------------
    @_class_or_instance_method
    def latent(cls, name: str) -> LatentSpec:
        return _named(cls.latents, name)

    @_class_or_instance_method
    def observable(cls, name: str) -> ObservableSpec:
        return _named(cls.observables, name)

    def get_config(self) -> dict[str, Any]:
        """Constructor parameters (JSON-serialisable) that rebuild this head."""
        return {"observables": list(self.selected)}

    # -- optional capabilities (defaults; override where a head has them) --------------
    def fit_to_data(self, per_atom: Mapping[str, Any]) -> None:
        """Set head parameters from the training targets before training starts.

        :param per_atom: ``{observable: array [N, nT]}`` of training targets, per atom for
            extensive observables (J/mol or J/(K·mol) per atom). The default does nothing; a head
            with data-dependent constants (e.g. the ``direct`` head's output scales) overrides it.
        """
        return None

    def calibrate(self, latents: Mapping[str, Any], targets: Mapping[str, Any]) -> dict[str, Any] | None:
        """Calibrate the head on a held-out split after training (e.g. Platt scaling of a probability).

        :param latents: ``{latent: array [N, *shape]}`` the trained encoder gives on the validation split.
        :param targets: ``{observable: array [N, nT]}`` its labels (NaN: missing).
        :returns: a JSON-serialisable record of what was fitted (saved in the model's metadata), or
            ``None``: nothing to calibrate (the default). Whatever it sets must be part of
            :meth:`get_config` (or the head's tensors) so that it is saved with the model.
        """
        return None

    #: ``True`` for a head made of several heads (:class:`cloudphys.physics.multi.MultiHead`): its
    #: latents and observables are declared per instance, so registration checks only its name.
    composite: ClassVar[bool] = False

    #: ``True`` for a head that gives a phonon density of states (:meth:`density_of_states`).
    has_density_of_states: ClassVar[bool] = False

    def density_of_states(self, latents: Mapping[str, Tensor], n_atoms: Tensor | float = 1.0) -> tuple[Tensor, Tensor]:
        """``(θ_k in K, modes g_k per cell)``, each ``[B, K]`` with ``g.sum(-1) == 3·n_atoms``, for a head
        with ``has_density_of_states``; the default raises :class:`NotImplementedError`."""
        raise NotImplementedError(f"head {self.name!r} gives no density of states")

    @_class_or_instance_method
    def describe(cls) -> dict[str, Any]:
        """The head's declarations as plain data (for docs, listings and checkpoints)."""
        return {
            "name": cls.name,
            "description": cls.description or _first_line(cls.__doc__),
            "latents": [s.as_dict() for s in cls.latents],
            "conditions": {c: CONDITIONS[c] for c in cls.conditions},
            "observables": [s.as_dict() for s in cls.observables],
        }

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
        """Evaluate observables.

        :param latents: ``{name: tensor [B, *shape]}`` for every declared latent.
        :param temperature: K, shape ``[B]`` or ``[B, nT]`` (or a scalar).
        :param n_atoms: atoms per cell, a number or shape ``[B]``.
        :param observables: names to compute (default: those selected at construction).
        :param n_atoms_primitive: atoms per primitive cell, a number or shape ``[B]``; used only by a
            head that declares the condition (``compute`` then gets it as a keyword, checked and
            broadcast like ``n_atoms``, or ``None`` when not given: the given cell is read as a
            primitive cell); ignored by the other heads.
        :returns: ``{name: tensor}`` each of the broadcast temperature shape.
        """
        wanted = tuple(self.selected if observables is None else observables)
        known = {s.name for s in self.observables}
        for o in wanted:
            if o not in known:
                self._unknown(o)
        lat, T, n = check_inputs(self, latents, temperature, n_atoms)
        if "n_atoms_primitive" not in self.conditions:
            return self.compute(lat, T, n, wanted)
        return self.compute(lat, T, n, wanted, n_atoms_primitive=_primitive_atoms(n_atoms_primitive, n, T))

    def _unknown(self, name: str) -> None:
        known = ", ".join(s.name for s in self.observables)
        raise ValueError(f"head {self.name!r} has no observable {name!r}; available: {known}")

    def compute(
        self, latents: dict[str, Tensor], temperature: Tensor, n_atoms: Tensor, observables: tuple[str, ...]
    ) -> dict[str, Tensor]:
        """Compute ``observables`` from checked, broadcast inputs.

        ``latents[name]`` has shape ``[B, 1, *shape]`` when ``temperature`` is ``[B, nT]``
        and ``[B, *shape]`` when it is ``[B]``; ``n_atoms`` has the shape of ``temperature``'s
        batch dimensions broadcast the same way (``[B, 1]`` or ``[B]``).
        """
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"name={self.name!r}, observables={self.selected}"


def _named(specs: Iterable[Any], name: str) -> Any:
    """The spec called ``name`` among ``specs`` (``KeyError`` if none)."""
    for spec in specs:
        if spec.name == name:
            return spec
    raise KeyError(name)


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0] if lines else ""


def _work(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _max_exponent(dtype: torch.dtype) -> int:
    return math.frexp(float(torch.finfo(_work(dtype)).max))[1]  # 128 (float32), 1024 (float64)


def temperature_limit(dtype: torch.dtype) -> float:
    """Largest temperature (K) heads accept for inputs of ``dtype``: a power of two below
    √(largest finite number), exactly representable (2⁶³ in float32, 2⁵¹¹ in float64).

    Half types compute in float32 and use its limit (their own range may still overflow).
    """
    return 2.0 ** (_max_exponent(dtype) // 2 - 1)


def n_atoms_limit(dtype: torch.dtype) -> float:
    """Largest ``n_atoms`` heads accept for inputs of ``dtype``: 2³¹ in float32, 2²⁵⁵ in float64."""
    return 2.0 ** (_max_exponent(dtype) // 4 - 1)


def _as_tensor(x: Tensor | float, like: Tensor | None) -> Tensor:
    """``x`` as a floating tensor: integer tensors/numbers take ``like``'s dtype or the default."""
    if isinstance(x, Tensor):
        if x.is_floating_point():
            return x
        dtype = like.dtype if like is not None else torch.get_default_dtype()
        return x.to(dtype)
    if like is not None:
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return torch.as_tensor(x, dtype=torch.get_default_dtype())


def _float_ref(*xs: Any) -> Tensor | None:
    for x in xs:
        if isinstance(x, Tensor) and x.is_floating_point():
            return x
    return None


def check_inputs(
    head_cls: type[PhysicsHead] | PhysicsHead,
    latents: Mapping[str, Tensor],
    temperature: Tensor | float | None,
    n_atoms: Tensor | float | None,
) -> tuple[dict[str, Tensor], Tensor, Tensor]:
    """Validate and broadcast a head's inputs (see :meth:`PhysicsHead.compute` for shapes).

    ``head_cls`` is a head class or a built head (whose instance declarations then apply).

    Raises ``ValueError`` naming the offending value for NaN or negative temperatures,
    ``n_atoms`` ≤ 0 or NaN, and latents outside their declared bounds or non-finite.
    """
    if not isinstance(latents, Mapping):
        raise TypeError(f"latents must be a mapping name -> tensor, got {type(latents).__name__}")
    missing = [s.name for s in head_cls.latents if s.name not in latents]
    if missing:
        raise ValueError(f"head {head_cls.name!r} needs latents {missing}; got {sorted(latents)}")
    if temperature is None:
        if "temperature" in head_cls.conditions:
            raise ValueError(f"head {head_cls.name!r} needs a temperature (K)")
        # a head whose outputs do not depend on temperature (e.g. a probability per item): the
        # outputs then have one value per sample ([B]) -- given a temperature, its shape
        temperature = 0.0
    # The first floating input fixes the dtype; integers (tensors or numbers) are promoted to it.
    ref = _float_ref(temperature, *(latents[s.name] for s in head_cls.latents), n_atoms)
    T = _as_tensor(temperature, ref)
    if T.ndim > 2:
        raise ValueError(f"temperature must have shape [B] or [B, nT], got {tuple(T.shape)}")
    _check_values("temperature", T, lower=0.0, upper=temperature_limit(T.dtype), strict=False,
                  unit=" K", dtype=T.dtype)

    values: dict[str, Tensor] = {}
    sizes: list[tuple[str, int]] = []
    if T.ndim >= 1:
        sizes.append(("temperature", T.shape[0]))
    for spec in head_cls.latents:
        v = _as_tensor(latents[spec.name], T)
        base = v.ndim - len(spec.shape)
        if base not in (0, 1) or tuple(v.shape[base:]) != spec.shape:
            raise ValueError(
                f"latent {spec.name!r} must have shape [B, *{spec.shape}] or {spec.shape}, got {tuple(v.shape)}"
            )
        _check_values(f"latent {spec.name!r}", v, lower=spec.lower, upper=spec.upper, strict=False)
        values[spec.name] = v
        if base == 1:
            sizes.append((f"latent {spec.name!r}", v.shape[0]))

    n = _as_tensor(1 if n_atoms is None else n_atoms, T).to(T.dtype)
    if n.ndim > 1:
        raise ValueError(f"n_atoms must be a number or have shape [B], got {tuple(n.shape)}")
    _check_values("n_atoms", n, lower=0.0, upper=n_atoms_limit(T.dtype), strict=True, dtype=T.dtype)
    if n.ndim == 1:
        sizes.append(("n_atoms", n.shape[0]))

    # Samples run along dim 0; a 2-D temperature adds a curve dimension.
    B = max((size for _, size in sizes), default=1)
    for what, size in sizes:
        if size not in (1, B):
            raise ValueError(f"{what} has batch size {size} but the batch has {B}")
    if T.ndim == 0:
        T = T.expand(B)
    elif T.shape[0] != B:
        T = T.expand(B, *T.shape[1:])
    curve = T.ndim == 2
    out: dict[str, Tensor] = {}
    for spec in head_cls.latents:
        v = values[spec.name]
        v = v.expand(B, *spec.shape)
        out[spec.name] = v.unsqueeze(1) if curve else v
    n = n.expand(B)
    if curve:
        n = n.unsqueeze(1)
    return out, T, n


def _primitive_atoms(value: Tensor | float | None, n: Tensor, T: Tensor) -> Tensor | None:
    """``n_atoms_primitive`` checked like ``n_atoms`` and broadcast to ``n``'s shape (None stays None)."""
    if value is None:
        return None
    p = _as_tensor(value, T).to(T.dtype)
    if p.ndim > 1:
        raise ValueError(f"n_atoms_primitive must be a number or have shape [B], got {tuple(p.shape)}")
    _check_values("n_atoms_primitive", p, lower=0.0, upper=n_atoms_limit(T.dtype), strict=True, dtype=T.dtype)
    B = n.shape[0]
    if p.ndim == 1 and p.shape[0] not in (1, B):
        raise ValueError(f"n_atoms_primitive has batch size {p.shape[0]} but the batch has {B}")
    p = p.expand(B)
    return p.unsqueeze(1) if n.ndim == 2 else p


def _check_values(
    what: str,
    x: Tensor,
    lower: float | None = None,
    upper: float | None = None,
    strict: bool = False,
    unit: str = "",
    dtype: torch.dtype | None = None,
) -> None:
    """Raise ``ValueError`` naming ``what`` if ``x`` holds NaN/inf or leaves its bounds.

    ``dtype`` (given for the dtype-dependent range limits) is named in the message.
    """
    if torch.jit.is_scripting() or x.numel() == 0:
        return
    xd = x.detach()
    bad = ~torch.isfinite(xd)
    if lower is not None:
        bad |= (xd <= lower) if strict else (xd < lower)
    if upper is not None:
        bad |= xd > upper
    if bool(bad.any()):
        idx = tuple(int(i) for i in torch.nonzero(bad)[0]) if xd.ndim else ()
        value = float(xd[idx]) if xd.ndim else float(xd)
        bounds = []
        if lower is not None:
            bounds.append(f"{'>' if strict else '>='} {lower:g}")
        if upper is not None:
            bounds.append(f"<= {upper:.3g}{unit}")
        need = "finite" + (", " + " and ".join(bounds) if bounds else "")
        if dtype is not None:
            need += f" in {str(dtype).removeprefix('torch.')}; larger values need float64 inputs"
            if dtype == torch.float64:
                need = need.split(";")[0]
        where = f" at index {list(idx)}" if idx else ""
        raise ValueError(f"invalid {what}: {value!r}{where} (must be {need})")


def validate_head_class(head_cls: Any, plugin: str = "<unknown>") -> None:
    """Check a head class's declarations; raise :class:`PluginRegistrationError` naming ``plugin``."""
    if not isinstance(head_cls, type) or not issubclass(head_cls, PhysicsHead):
        raise PluginRegistrationError(plugin, f"register_heads expects a PhysicsHead subclass, got {head_cls!r}")
    label = getattr(head_cls, "__qualname__", repr(head_cls))
    name = getattr(head_cls, "name", "")
    if not isinstance(name, str) or not name:
        raise PluginRegistrationError(plugin, f"head class {label} declares no 'name'")
    if getattr(head_cls, "composite", False):  # several heads in one (physics.multi): declared per instance
        if head_cls.compute is PhysicsHead.compute:
            raise PluginRegistrationError(plugin, f"head {name!r} does not implement compute()")
        return
    if not head_cls.latents:
        raise PluginRegistrationError(plugin, f"head {name!r} declares no latents")
    if not head_cls.observables:
        raise PluginRegistrationError(plugin, f"head {name!r} declares no observables")
    for spec in head_cls.latents:
        if not isinstance(spec, LatentSpec):
            raise PluginRegistrationError(plugin, f"head {name!r}: latents must be LatentSpec, got {spec!r}")
    for spec in head_cls.observables:
        if not isinstance(spec, ObservableSpec):
            raise PluginRegistrationError(plugin, f"head {name!r}: observables must be ObservableSpec, got {spec!r}")
    for kind, specs in (("latent", head_cls.latents), ("observable", head_cls.observables)):
        names = [s.name for s in specs]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise PluginRegistrationError(plugin, f"head {name!r}: duplicate {kind} names {sorted(dup)}")
    unknown = [c for c in head_cls.conditions if c not in CONDITIONS]
    if unknown:
        raise PluginRegistrationError(
            plugin, f"head {name!r}: unknown conditions {unknown}; known: {sorted(CONDITIONS)}"
        )
    if head_cls.compute is PhysicsHead.compute:
        raise PluginRegistrationError(plugin, f"head {name!r} does not implement compute()")


#: Tolerance of the run-time output check (:func:`head_output_problems`), relative to the scale
#: ``3·n·R`` (cv, s) or ``3·n·R·T + |u| + T·|s|`` (f = u − T·s); generous (100× the heads' accuracy
#: target) so that a correct head is never refused, tight enough that a wrong formula is.
OUTPUT_RTOL: dict[torch.dtype, float] = {torch.float64: 1e-8, torch.float32: 1e-3, torch.bfloat16: 5e-2,
                                         torch.float16: 1e-2}


def head_output_problems(
    head: Any,
    outputs: Any,
    temperature: Tensor,
    n_atoms: Tensor,
    observables: Sequence[str],
) -> tuple[str | None, list[str | None]]:
    """Check what a head returned against its contract, at run time (every prediction, any plugin).

    :param outputs: the head's return value for a batch of ``B`` items at ``nT`` temperatures.
    :param temperature: ``[B, nT]`` K; :param n_atoms: ``[B]`` atoms per cell.
    :param observables: the observables asked for.
    :returns: ``(problem of the whole batch, [problem of item b])``: the batch fails when ``outputs``
        is not a mapping, lacks an observable asked for, or holds a value that is not a ``[B, nT]``
        floating tensor; an item fails when one of its values is NaN/inf, ``cv < 0`` or ``s < 0``
        (beyond round-off), or ``f ≠ u − T·s`` beyond :data:`OUTPUT_RTOL` of its dtype. ``None``: fine.
    """
    T = temperature
    B = int(T.shape[0])
    items: list[str | None] = [None] * B
    if not isinstance(outputs, Mapping):
        return f"returned a {type(outputs).__name__}, not a mapping of observables", items
    missing = [o for o in observables if o not in outputs]
    if missing:
        return f"returned no {', '.join(map(repr, missing))} (asked for {', '.join(observables)})", items
    for o in observables:
        v = outputs[o]
        if not isinstance(v, Tensor) or not v.is_floating_point():
            return f"returned {o!r} as {type(v).__name__} {getattr(v, 'dtype', '')}, not a floating tensor", items
        if tuple(v.shape) != tuple(T.shape):
            return f"returned {o!r} of shape {tuple(v.shape)}, expected {tuple(T.shape)} (items x temperatures)", items
    vals = {o: outputs[o].detach().double() for o in observables}
    Td = T.detach().double()
    n = n_atoms.detach().double().reshape(-1, 1)
    cv_scale = 3.0 * n * R_GAS

    def note(b: int, text: str) -> None:
        if items[b] is None:
            items[b] = text

    for o, v in vals.items():
        bad = ~torch.isfinite(v)
        for b in torch.nonzero(bad.any(dim=1)).flatten().tolist():
            j = int(torch.nonzero(bad[b]).flatten()[0])
            note(b, f"{o} is {float(v[b, j])} at {float(Td[b, j]):g} K (not finite)")
    for o in observables:
        spec = _spec_or_none(head, o)
        if spec is not None and getattr(spec, "kind", "curve") == "probability":
            out = (vals[o] < 0.0) | (vals[o] > 1.0)
            for b in torch.nonzero(out.any(dim=1)).flatten().tolist():
                j = int(torch.nonzero(out[b]).flatten()[0])
                note(b, f"{o} = {float(vals[o][b, j]):.6g} is not a probability (outside [0, 1])")
    for o in ("cv", "s"):
        if o in vals:
            rtol = OUTPUT_RTOL.get(outputs[o].dtype, 1e-3)
            neg = vals[o] < -rtol * cv_scale
            for b in torch.nonzero(neg.any(dim=1)).flatten().tolist():
                j = int(torch.nonzero(neg[b]).flatten()[0])
                note(b, f"{o} = {float(vals[o][b, j]):.6g} < 0 at {float(Td[b, j]):g} K ({o} is never negative)")
    if {"u", "s", "f"} <= set(vals):
        u, s_, f = vals["u"], vals["s"], vals["f"]
        dtype = max((outputs[o].dtype for o in ("u", "s", "f")), key=lambda d: OUTPUT_RTOL.get(d, 1e-3))
        rtol = OUTPUT_RTOL.get(dtype, 1e-3)
        scale = cv_scale * Td + u.abs() + Td * s_.abs()
        off = (f - (u - Td * s_)).abs() > rtol * scale
        off &= torch.isfinite(u) & torch.isfinite(s_) & torch.isfinite(f)
        for b in torch.nonzero(off.any(dim=1)).flatten().tolist():
            j = int(torch.nonzero(off[b]).flatten()[0])
            note(b, f"f = {float(f[b, j]):.6g} but u - T*s = {float(u[b, j] - Td[b, j] * s_[b, j]):.6g} at "
                    f"{float(Td[b, j]):g} K (f = u - T*s is violated beyond the {dtype} tolerance {rtol:g})")
    return None, items


def _spec_or_none(head: Any, name: str) -> Any:
    """``head.observable(name)``, or ``None`` for a head that does not declare it."""
    try:
        return head.observable(name)
    except Exception:
        return None
