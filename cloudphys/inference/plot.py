"""Figures of a :class:`~cloudphys.inference.result.Prediction`: one panel per observable (per mole of atoms).

Curves stay distinguishable past ten materials (10 colours × 4 line styles, 40 combinations before
any repeats), the legend sits outside the axes (in an empty panel slot when there is one and it
fits, else on the right), each label carries the material's
scalar latents (θ_D ...), ensembles get their central interval as a shaded band, heads with a
density of states get a DOS panel. When fewer materials are drawn than were given (more than
``max_items``, or failed inputs) the figure says so under the panels and the returned
:class:`PlotInfo` carries the same note (the CLI prints it on stderr).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .units import per_atom_unit

__all__ = ["PlotInfo", "plot_prediction", "STYLES", "MAX_ITEMS"]

#: Line styles cycled after each full round of colours.
STYLES = ("-", "--", ":", "-.")
#: Materials drawn by default (all of them go to the CSV).
MAX_ITEMS = 20
_SYMBOL = {"theta_D": r"$\theta_D$", "theta_E": r"$\theta_E$", "theta_max": r"$\theta_{max}$"}
_NAMES = {"u": "internal energy $u$ (with zero point)", "cv": "heat capacity $c_V$", "s": "entropy $s$",
          "f": "free energy $f = u - Ts$"}


@dataclass
class PlotInfo:
    """What :func:`plot_prediction` drew: file, materials shown of how many given, and the note."""

    path: Path
    shown: int
    total: int
    note: str | None
    figure: Any = None


def _latent_label(p: Any, s: Any) -> str:
    parts = []
    for k, v in s.latents.items():
        if np.ndim(v) != 0:
            continue
        sd = s.std(k)
        unit = p.quantities[k].unit
        txt = f"{_SYMBOL.get(k, k)} {float(v):.0f}" + (f"±{float(sd):.0f}" if sd is not None else "")
        parts.append(txt + (f" {unit}" if unit else ""))
    from ..outputs import clean_text

    name = s.name.replace("\\", "/").rsplit("/", 1)[-1] or s.name  # a path: its file name (and :LINE / @FRAME)
    name = clean_text(name)  # always drawable: surrogates and NUL escaped (docs/usage.md)
    name = name.replace("$", r"\$")  # a "$" in an id is text, never mathtext
    return f"{name} ({', '.join(parts)})" if parts else name


def plot_prediction(
    prediction: Any,
    path: str | Path,
    *,
    observables: Sequence[str] | None = None,
    max_items: int = MAX_ITEMS,
    dpi: int = 130,
) -> PlotInfo:
    """Draw ``prediction`` to ``path`` (PNG, PDF, SVG ... by suffix); see the module docstring.

    Raises ``ImportError`` with the install command when matplotlib is missing.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise ImportError("plotting needs matplotlib: pip install 'cloudphys[plot]' (or matplotlib)") from exc

    obs = list(observables or prediction.observables)
    ok = prediction.ok
    total = len(prediction)
    shown = ok[:max_items]
    notes = []
    if len(ok) > len(shown):
        notes.append(f"showing the first {len(shown)} of {len(ok)} predicted materials (all are in the CSV; "
                     f"raise max_items / --plot-max to draw more)")
    failed = total - len(ok)
    if failed:
        notes.append(f"{failed} of {total} input(s) failed and are not drawn: "
                     + ", ".join(list(prediction.errors)[:5]) + (" ..." if failed > 5 else ""))
    note = "; ".join(notes) or None
    has_dos = prediction.dos is not None and bool(shown)
    n_panels = len(obs) + (1 if has_dos else 0)
    ncols = 2 if n_panels in (2, 4) else min(n_panels, 3)
    nrows = -(-n_panels // ncols)
    fig = Figure(figsize=(4.4 * ncols, 3.3 * nrows + (0.5 if note else 0.2)))
    FigureCanvasAgg(fig)  # an Agg canvas of its own: no pyplot, no global backend switch
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    colours = [f"C{i}" for i in range(10)]
    handles, labels = [], []
    T = prediction.temperatures
    alpha = float(np.clip(0.3 / max(len(shown), 1) ** 0.5, 0.06, 0.25))  # many overlapping bands stay readable
    for k, s in enumerate(shown):
        style = {"color": colours[k % 10], "linestyle": STYLES[(k // 10) % len(STYLES)], "linewidth": 1.4}
        for ax, o in zip(axes, obs):
            y = s.values(o, "atom")
            (line,) = ax.plot(T, y, **style)
            band = s.interval(o, "atom")
            if band is not None:
                ax.fill_between(T, band[0], band[1], color=style["color"], alpha=alpha, linewidth=0)
        if has_dos:
            theta, g, sd = s.dos
            freq = theta / 47.99243073366221
            width = float(freq[1] - freq[0]) if len(freq) > 1 else 1.0
            axes[len(obs)].step(freq, g / width, where="mid", **style)
            if sd is not None:
                axes[len(obs)].fill_between(freq, np.maximum(g - sd, 0) / width, (g + sd) / width, step="mid",
                                            color=style["color"], alpha=alpha, linewidth=0)
        handles.append(line)
        labels.append(_latent_label(prediction, s))
    for ax, o in zip(axes, obs):
        q = prediction.quantities[o]
        unit = (per_atom_unit(q.unit) if q.extensive else q.unit.replace("*", "·")) or "dimensionless"
        ax.set_ylabel(f"{o} ({unit})")
        ax.set_xlabel("temperature (K)")
        ax.set_title(_NAMES.get(o, o))
        ax.grid(alpha=0.3)
    if has_dos:
        ax = axes[len(obs)]
        ax.set_xlabel("frequency (THz)")
        ax.set_ylabel("modes per atom per THz")
        ax.set_title("learned phonon DOS" + (" (band: ±1 std)" if prediction.is_ensemble else ""))
        ax.grid(alpha=0.3)
        ax.set_ylim(bottom=0)
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    band = f"; bands: central {prediction.level:.0%} interval of the {prediction.members}-member ensemble" \
        if prediction.is_ensemble else ""
    fig.suptitle(f"cloudphys {prediction.model or ''} (head {prediction.head}){band}", fontsize=10)
    if note:
        fig.text(0.01, 0.005, "note: " + note, fontsize=8, color="firebrick", ha="left", va="bottom", wrap=True)
    fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 0.97))
    if handles:
        legend_kw = dict(fontsize=7, frameon=False, title=f"{len(shown)} material(s)", title_fontsize=8)
        spare = axes[n_panels:]
        if len(spare) and len(handles) <= 12:  # an empty panel slot: the legend goes there, off every curve
            box = spare[0].get_position()
            fig.legend(handles, labels, loc="center", bbox_to_anchor=(box.x0 + box.width / 2, box.y0 + box.height / 2),
                       **{**legend_kw, "fontsize": 9, "title_fontsize": 9})
        else:
            fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), **legend_kw)
    from ..outputs import atomic_path

    path = Path(path)
    with atomic_path(path) as tmp:  # written beside, renamed into place: a crash leaves the old plot
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".").lower() or None)
    return PlotInfo(path=path, shown=len(shown), total=total, note=note, figure=fig)
