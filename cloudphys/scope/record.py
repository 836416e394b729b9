"""The dialect-free SCOPE record: space group, Wyckoff sites, composition."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import ScopeError
from . import _grammar as G
from .canonical import canonical_letters, element_order_key
from .generators import DIALECTS, symmetry_tokens

if TYPE_CHECKING:  # pragma: no cover
    from os import PathLike

__all__ = ["DIALECTS", "ScopeRecord", "WyckoffSite"]

@dataclass(frozen=True, order=True)
class WyckoffSite:
    """One Wyckoff position: multiplicity in the conventional cell and letter (``4a``)."""

    multiplicity: int
    letter: str

    def __post_init__(self) -> None:
        if not isinstance(self.multiplicity, int) or isinstance(self.multiplicity, bool) or self.multiplicity < 1:
            raise ScopeError(f"Wyckoff multiplicity must be a positive integer, got {self.multiplicity!r}")
        if self.letter not in G.WYCKOFF_LETTERS:
            raise ScopeError(f"Wyckoff letter must be one of a-z or A, got {self.letter!r}")

    def __str__(self) -> str:
        return f"{self.multiplicity}{self.letter}"


def _as_fraction(value: Any, element: str) -> Fraction:
    if isinstance(value, Fraction):
        frac = value
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            frac = Fraction(value)
        except (ValueError, ZeroDivisionError, OverflowError) as exc:
            raise ScopeError(f"amount of {element} is not a number: {value!r}") from exc
    else:
        raise ScopeError(f"amount of {element} must be a Fraction, int, float or str, got {type(value).__name__}")
    if not 0 <= frac <= 1:
        raise ScopeError(f"amount of {element} must be a fraction of the atoms in [0, 1], got {value!r}")
    return frac


@dataclass(frozen=True)
class ScopeRecord:
    """What a SCOPE string says about a crystal, independent of the dialect it is written in.

    :param spacegroup: international space-group number, 1..230.
    :param sites: the distinct Wyckoff positions occupied, in order of first appearance over the
        structure's sites (multiplicities refer to the conventional cell).
    :param composition: ``(element, fraction of the atoms)`` pairs in pymatgen's element order (the
        order of first appearance over the sites). Fractions are exact (:class:`~fractions.Fraction`);
        a record parsed from a string holds the 2-decimal amounts the string shows.

    Records are immutable and hashable. :meth:`canonical` gives the one record of the crystal
    (Wyckoff letters chosen under the space group's Euclidean normalizer, sites and elements in a
    fixed order; see :mod:`cloudphys.scope.canonical`); the ``default`` dialect always renders it.
    ``parse(record.render("cloud")) == record.rounded()``, ``parse(record.render()) ==
    record.canonical().rounded()``; ``parse(s).render("cloud") == s`` for every valid cloud string
    and ``parse(s).render() == s`` for every canonical default string ``s``.
    Ints, floats and strings given as amounts are converted to fractions.
    """

    spacegroup: int
    sites: tuple[WyckoffSite, ...]
    composition: tuple[tuple[str, Fraction], ...]

    def __post_init__(self) -> None:
        sg = self.spacegroup
        if not isinstance(sg, int) or isinstance(sg, bool) or not 1 <= sg <= 230:
            raise ScopeError(f"space-group number must be an integer in 1..230, got {sg!r}")
        sites = tuple(s if isinstance(s, WyckoffSite) else WyckoffSite(*s) for s in self.sites)
        if not sites:
            raise ScopeError("a SCOPE record needs at least one Wyckoff site")
        if len(set(sites)) != len(sites):
            raise ScopeError(f"Wyckoff sites must be distinct, got {' '.join(map(str, sites))}")
        comp_in = self.composition.items() if isinstance(self.composition, Mapping) else self.composition
        comp = []
        for pair in comp_in:
            element, amount = pair
            if element not in G.ELEMENT_SET:
                raise ScopeError(f"unknown element symbol {element!r} (an element, or X for a dummy species)")
            comp.append((element, _as_fraction(amount, element)))
        if not comp:
            raise ScopeError("a SCOPE record needs at least one element")
        if len({e for e, _ in comp}) != len(comp):
            raise ScopeError(f"elements must be distinct, got {[e for e, _ in comp]}")
        object.__setattr__(self, "sites", sites)
        object.__setattr__(self, "composition", tuple(comp))

    # -- views ---------------------------------------------------------------------------
    @property
    def elements(self) -> tuple[str, ...]:
        """Element symbols in composition order."""
        return tuple(e for e, _ in self.composition)

    @property
    def sites_per_primitive_cell(self) -> Fraction:
        """Σ multiplicity of the record's distinct sites per primitive cell (multiplicities count the
        conventional cell). Intensive: the same for every cell the crystal is written in. A lower
        bound of the atoms per primitive cell (a letter occupied by two orbits counts once)."""
        return Fraction(sum(s.multiplicity for s in self.sites), G.lattice_points(self.spacegroup))

    @property
    def point_group_order(self) -> int:
        """Order of the crystal's point group (1 for P1 … 48 for m-3m)."""
        return G.general_multiplicity(self.spacegroup) // G.lattice_points(self.spacegroup)

    @property
    def is_centrosymmetric(self) -> bool:
        """Whether the space group holds the inversion."""
        return G.centrosymmetric(self.spacegroup)

    @property
    def site_symmetry_orders(self) -> tuple[int, ...]:
        """Order of each site's site-symmetry group: general-position multiplicity / multiplicity."""
        general = G.general_multiplicity(self.spacegroup)
        return tuple(general // s.multiplicity for s in self.sites)

    def canonical(self) -> ScopeRecord:
        """The canonical record of the same crystal (``self`` if it is canonical already).

        Sites: the Wyckoff letters relabelled by the element of the space group's Euclidean
        normalizer that makes their sorted tuple smallest in ITA order, in that order; composition:
        elements by atomic number (``X`` last). Amounts are kept exactly.
        """
        pairs = canonical_letters(self.spacegroup, [s.letter for s in self.sites])
        mult = {s.letter: s.multiplicity for s in self.sites}
        sites = tuple(WyckoffSite(mult[old], new) for old, new in pairs)
        comp = tuple(sorted(self.composition, key=lambda pair: element_order_key(pair[0])))
        if sites == self.sites and comp == self.composition:
            return self
        return ScopeRecord(self.spacegroup, sites, comp)

    @property
    def is_canonical(self) -> bool:
        """Whether this record is its own :meth:`canonical` form."""
        return self.canonical() is self

    def rounded(self) -> ScopeRecord:
        """This record with every amount rounded to 2 decimals, as a string shows it."""
        comp = tuple((e, G.amount_fraction(G.format_amount(float(a)))) for e, a in self.composition)
        if comp == self.composition:
            return self
        return ScopeRecord(self.spacegroup, self.sites, comp)  # type: ignore[arg-type]

    # -- text ----------------------------------------------------------------------------
    def symmetry_tokens(
        self, dialect: str = "default", generator_table: str | PathLike[str] | Mapping[Any, str] | None = None
    ) -> tuple[str, ...]:
        """Tokens of the symmetry section in ``dialect``."""
        return symmetry_tokens(self.spacegroup, dialect, generator_table)

    def render(
        self,
        dialect: str = "default",
        generator_table: str | PathLike[str] | Mapping[Any, str] | None = None,
        *,
        canonical: bool | None = None,
    ) -> str:
        """The SCOPE string ``symmetry tokens | Wyckoff sites | composition`` in ``dialect``.

        :param dialect: ``"default"`` (Hall-symbol tokens from spglib, self-contained) or
            ``"cloud"`` (identical to CLOUD's published converter).
        :param generator_table: for ``"cloud"``: CLOUD's ``generator.json`` as a path or a mapping
            space-group number → generator string; defaults to ``$CLOUDPHYS_GENERATOR_TABLE``.
            Missing → :class:`~cloudphys.errors.ScopeError`.
        :param canonical: render :meth:`canonical` instead of the record as it is. Default: ``True``
            for ``"default"`` (one string per crystal), ``False`` for ``"cloud"`` (the record as
            CLOUD's converter writes it: sites and elements in order of first appearance).
        """
        sym = self.symmetry_tokens(dialect, generator_table)
        rec = self.canonical() if (dialect == "default" if canonical is None else canonical) else self
        wyck = " ".join(f"{s.multiplicity}{s.letter}" for s in rec.sites)
        comp = " ".join(f"{e} {G.format_amount(float(a))}" for e, a in rec.composition)
        return f"{' '.join(sym)} | {wyck} | {comp}"

    def __str__(self) -> str:
        return self.render()

    @classmethod
    def from_parts(
        cls, spacegroup: int, sites: Iterable[tuple[int, str] | WyckoffSite], composition: Iterable[tuple[str, Any]]
    ) -> ScopeRecord:
        """Build a record from plain tuples, e.g.
        ``from_parts(225, [(4, "a"), (4, "b")], [("Na", 0.5), ("Cl", 0.5)])``."""
        return cls(spacegroup, tuple(sites), tuple(composition))  # type: ignore[arg-type]
