"""How training deals out its data: seeded, length-grouped batches, extra training data, subsets.

:func:`batch_indices` deals out the (seeded, length-grouped) batches; :func:`load_extra` appends
``train.extra_data``; :func:`take` / :func:`concat` cut and join :class:`~cloudphys.data.Examples`.
Tokenizing and padding (what prediction shares) are :mod:`cloudphys.modeling.encoding`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.base import Examples
from ..errors import ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from ..plugins import PluginRegistry

__all__ = ["batch_indices", "composition_key", "concat", "formula_weights", "load_extra", "strings_dialect", "take"]


def batch_indices(
    n: int,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world: int = 1,
    lengths: Sequence[int] | np.ndarray | None = None,
    group: int = 50,
) -> Iterator[np.ndarray]:
    """Indices of each batch this rank processes.

    The order is a permutation drawn from ``(seed, epoch)`` alone (reproducible, resumable). With
    ``lengths`` (group by length), the permutation is cut into windows of ``group`` batches, each
    window sorted by length and cut into batches, and the batches shuffled: batches hold strings of
    similar length, so dynamic padding adds little. With ``world`` ranks each global batch of
    ``batch_size`` is dealt out ``batch[rank::world]``; a last global batch smaller than ``world`` is
    dropped so that every rank takes the same number of steps.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(n) if shuffle else np.arange(n)
    chunks = [order[start : start + batch_size] for start in range(0, n, batch_size)]
    if shuffle and lengths is not None:
        lens = np.asarray(lengths)
        window = batch_size * max(1, group)
        chunks = []
        for w in range(0, n, window):
            part = order[w : w + window]
            part = part[np.argsort(lens[part], kind="stable")]
            chunks += [part[s : s + batch_size] for s in range(0, len(part), batch_size)]
        chunks = [chunks[i] for i in rng.permutation(len(chunks))]
    for chunk in chunks:
        if world > 1:
            if len(chunk) < world:
                break
            chunk = chunk[rank::world]
        yield chunk


def composition_key(scope: str) -> str:
    """What polymorphs of one compound share in their SCOPE strings: the composition of the parsed
    record (:func:`cloudphys.scope.parse_cached`; elements sorted, exact fractions), e.g. ``Cl 1/2 Na 1/2``,
    whichever dialect or element order it is written in. A string that does not parse is keyed by
    its text after the last ``|`` (whitespace normalised; without a ``|``, the whole string)."""
    from ..errors import ScopeParseError
    from ..scope.dialects import parse_cached

    try:
        comp = parse_cached(scope).composition
    except ScopeParseError:
        _, sep, tail = scope.rpartition("|")
        return " ".join((tail if sep else scope).split())
    return " ".join(f"{element} {fraction}" for element, fraction in sorted(comp))


def formula_weights(scope: Sequence[str], alpha: float) -> np.ndarray | None:
    """``train.formula_weight``: per example m^-alpha, m the number of examples that share its
    composition (:func:`composition_key`), normalised to mean 1; ``None`` for ``alpha == 0``."""
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"train.formula_weight must be between 0 and 1, got {alpha}")
    if alpha == 0.0 or not len(scope):
        return None
    keys = [composition_key(s) for s in scope]
    _, inv, counts = np.unique(np.asarray(keys, dtype=object), return_inverse=True, return_counts=True)
    w = counts[inv].astype(np.float64) ** -alpha
    return w / w.mean()


def load_extra(entries: Sequence[Any], base: Examples, registry: PluginRegistry | None = None,
               base_name: str | None = None, geometry: bool = False) -> tuple[Examples, list[dict[str, Any]]]:
    """``base`` (a training split) with the examples of every ``train.extra_data`` entry appended.

    An entry is ``{name: DATASET, split: train, **params}`` (a registered labelled data set). Its
    examples must be on the temperature grid of ``base`` and in its SCOPE dialect (a
    :class:`~cloudphys.errors.DataError` naming the entry otherwise); observables one of them lacks
    are NaN there (missing labels, left out of the loss). An entry of the data set ``base`` comes
    from (``base_name``) adds only the examples whose ids are not in ``base`` already (e.g. the
    mildly unstable materials beside the stable ones). Returns the joined examples and one count
    per entry (``examples`` added, ``duplicates`` skipped). ``geometry``: ask every data set that
    takes the parameter for its structures' geometric features (an encoder that reads them).
    """
    if registry is None:
        from ..plugins import get_registry

        registry = get_registry()
    out, counts = base, []
    for i, entry in enumerate(entries):
        what = f"train.extra_data[{i}]"
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str):
            raise ConfigError(f"{what} must be a mapping with the 'name' of a labelled data set, got {entry!r}")
        params = dict(entry)
        name, split = params.pop("name"), params.pop("split", "train")
        spec = registry.dataset(name)
        if split not in spec.splits:
            raise ConfigError(f"{what} {name!r}: no split {split!r}; available: {', '.join(spec.splits)}")
        if geometry and "geometry" in spec.params:
            params.setdefault("geometry", True)
        ex = spec.load(split=split, **params)
        if not isinstance(ex, Examples):
            raise DataError(f"{what} {name!r} is unlabelled; extra training data need labels")
        if len(ex.temperatures) != len(out.temperatures) or not np.allclose(ex.temperatures, out.temperatures):
            raise DataError(f"{what} {name!r} has temperatures {[float(t) for t in ex.temperatures]} K, the training "
                            f"split {[float(t) for t in out.temperatures]} K; select the same grid (e.g. its "
                            "temperatures parameter)")
        mine, theirs = out.dialect or strings_dialect(out.scope), ex.dialect or strings_dialect(ex.scope)
        if mine != theirs:
            raise DataError(f"{what} {name!r} has {theirs}-dialect strings, the training split {mine}; "
                            f"give it dialect={mine} if it converts structures")
        skipped = 0
        if base_name is not None and name == base_name:
            seen = set(out.ids)
            fresh = np.array([i not in seen for i in ex.ids], dtype=bool)
            skipped = int((~fresh).sum())
            ex = take(ex, np.flatnonzero(fresh))
        out = concat(out, ex)
        counts.append({"source": dict(entry), "examples": len(ex), "duplicates": skipped})
    return out, counts


def concat(a: Examples, b: Examples) -> Examples:
    """The examples of ``a`` then ``b`` (same temperatures); a target one of them lacks is NaN there."""
    names = list(dict.fromkeys([*a.targets, *b.targets]))
    nt = len(a.temperatures)

    def target(ex: Examples, k: str) -> np.ndarray:
        return ex.targets[k] if k in ex.targets else np.full((len(ex), nt), np.nan)

    def prim(ex: Examples) -> np.ndarray:
        p = getattr(ex, "n_atoms_primitive", None)
        return np.full(len(ex), np.nan) if p is None else np.asarray(p, dtype=np.float64)

    both_none = getattr(a, "n_atoms_primitive", None) is None and getattr(b, "n_atoms_primitive", None) is None
    return Examples(
        geometry=_concat_geometry(a, b),
        **_concat_dos(a, b),
        ids=[*a.ids, *b.ids],
        scope=[*a.scope, *b.scope],
        n_atoms=np.concatenate([np.asarray(a.n_atoms, dtype=np.float64), np.asarray(b.n_atoms, dtype=np.float64)]),
        temperatures=a.temperatures,
        targets={k: np.concatenate([target(a, k), target(b, k)]) for k in names},
        units={**b.units, **a.units},
        dialect=a.dialect or b.dialect,
        n_atoms_primitive=None if both_none else np.concatenate([prim(a), prim(b)]),
    )


def _concat_geometry(a: Examples, b: Examples) -> np.ndarray | None:
    """The geometric features of ``a`` then ``b``: NaN rows where one side has none (``None`` if neither has)."""
    ga, gb = getattr(a, "geometry", None), getattr(b, "geometry", None)
    if ga is None and gb is None:
        return None
    width = (ga if ga is not None else gb).shape[1]
    rows = [g if g is not None else np.full((len(ex), width), np.nan) for ex, g in ((a, ga), (b, gb))]
    if rows[0].shape[1] != rows[1].shape[1]:
        raise DataError(f"geometric features of {rows[0].shape[1]} and {rows[1].shape[1]} columns cannot be joined")
    return np.concatenate(rows)


def _concat_dos(a: Examples, b: Examples) -> dict[str, Any]:
    """The DOS labels of ``a`` then ``b``: NaN rows where one side has none; both sides must have the
    same number of bins (a :class:`DataError` otherwise: one label grid per training split)."""
    da, db = getattr(a, "dos", None), getattr(b, "dos", None)
    if da is None and db is None:
        return {}
    k = (da if da is not None else db).shape[1]
    if da is not None and db is not None and da.shape[1] != db.shape[1]:
        raise DataError(f"the DOS labels of two training sources have {da.shape[1]} and {db.shape[1]} bins; "
                        "a training split holds DOS labels of one number of bins")

    def part(ex: Examples) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        d = getattr(ex, "dos", None)
        if d is None:
            return np.full((len(ex), k), np.nan), np.full(len(ex), np.nan), np.zeros(len(ex))
        return d, np.asarray(ex.dos_fmax_thz), np.asarray(ex.dos_atom)

    pa, pb = part(a), part(b)
    return {"dos": np.concatenate([pa[0], pb[0]]), "dos_fmax_thz": np.concatenate([pa[1], pb[1]]),
            "dos_atom": np.concatenate([pa[2], pb[2]])}


def take(ex: Examples, idx: np.ndarray) -> Examples:
    """The examples at positions ``idx`` (``train.limit``, ``train.exclude``)."""
    prim = getattr(ex, "n_atoms_primitive", None)
    dos = getattr(ex, "dos", None)
    geo = getattr(ex, "geometry", None)
    return Examples(
        geometry=None if geo is None else geo[idx],
        dos=None if dos is None else dos[idx],
        dos_fmax_thz=None if dos is None else np.asarray(ex.dos_fmax_thz)[idx],
        dos_atom=None if dos is None else np.asarray(ex.dos_atom)[idx],
        n_atoms_primitive=None if prim is None else np.asarray(prim)[idx],
        ids=[ex.ids[i] for i in idx],
        scope=[ex.scope[i] for i in idx],
        n_atoms=np.asarray(ex.n_atoms)[idx],
        temperatures=ex.temperatures,
        targets={k: v[idx] for k, v in ex.targets.items()},
        units=dict(ex.units),
        dialect=ex.dialect,
    )


def strings_dialect(scope: Sequence[str]) -> str:
    """The SCOPE dialect most of ``scope`` is written in: ``cloud`` (the symmetry section is a
    generator string, starting with ``0`` or ``1``) or ``default`` (a Hall symbol)."""
    cloud = sum(1 for s in scope if str(s).lstrip()[:1] in ("0", "1"))
    return "cloud" if cloud * 2 > len(scope) else "default"
