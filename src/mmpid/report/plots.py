"""The report's figures, drawn with matplotlib's object API (no pyplot, no global state).

Each function takes :class:`~mmpid.report.results.LayerResults` and returns a
``matplotlib.figure.Figure``; :func:`figure_png` turns one into PNG bytes. matplotlib is
imported only when a figure is drawn. One colour per atom, the same in every figure.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from mmpid.report.results import BIT_ATOMS, LayerResults, interval_label, level_text
from mmpid.report.tables import correction_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "ATOM_COLORS",
    "ATOM_LABELS",
    "atoms_by_layer",
    "contribution_by_layer",
    "figure_png",
    "last_layer_atoms",
]

# Okabe-Ito colours (safe for colour-blind readers); image and text keep their colour in the
# contribution plot too.
ATOM_COLORS: dict[str, str] = {
    "redundancy": "#009E73",
    "unique_image": "#E69F00",
    "unique_text": "#0072B2",
    "synergy": "#CC79A7",
    "contribution_image": "#E69F00",
    "contribution_text": "#0072B2",
}
ATOM_LABELS: dict[str, str] = {
    "redundancy": "Redundancy $R$",
    "unique_image": r"Unique to image $U_{\mathrm{image}}$",
    "unique_text": r"Unique to text $U_{\mathrm{text}}$",
    "synergy": "Synergy $S$",
    "contribution_image": r"Image contribution $C_{\mathrm{image}}$",
    "contribution_text": r"Text contribution $C_{\mathrm{text}}$",
}
_SHORT = {"redundancy": "$R$", "unique_image": r"$U_{\mathrm{image}}$",
          "unique_text": r"$U_{\mathrm{text}}$", "synergy": "$S$"}
_NEG = "#D55E00"  # the colour that flags a negative value
_DPI = 130




def _new_figure(**kwargs: Any) -> Figure:
    from matplotlib.figure import Figure

    return Figure(layout="constrained", **kwargs)


def _integer_ticks(ax: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes (rendered by the Agg backend)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def atoms_by_layer(results: LayerResults) -> Figure:
    """R, U_image, U_text and S across layers: one panel per atom.

    Each panel shows the bias-corrected value (solid, with its bootstrap interval as a band),
    the plug-in value (dotted) and the permutation-null mean (dashed grey), in bits, with a zero
    line; negative corrected values are marked, not clamped.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layers = np.asarray(results.layers, dtype=float)
    fig = _new_figure(figsize=(11, 7.2))
    axes = fig.subplots(2, 2, sharex=True)
    neg_ms = 8 if len(layers) <= 15 else 6
    for ax, atom in zip(axes.ravel(), BIT_ATOMS, strict=True):
        color = ATOM_COLORS[atom]
        corrected = results.series(atom, "corrected")
        lo, hi = results.series(atom, "ci_low"), results.series(atom, "ci_high")
        ax.axhline(0.0, color="black", lw=0.8, zorder=1)
        ax.fill_between(layers, lo, hi, color=color, alpha=0.22, lw=0, zorder=2)
        ax.plot(layers, results.series(atom, "null_mean"), color="0.35", ls="--", lw=1.2, zorder=3)
        ax.plot(layers, results.series(atom, "plugin"), color=color, ls=":", lw=1.5, zorder=3)
        ax.plot(layers, corrected, color=color, lw=2.2, marker="o", ms=3.5, zorder=4)
        neg = corrected < 0
        if neg.any():
            ax.plot(layers[neg], corrected[neg], ls="none", marker="v", ms=neg_ms, mfc="white",
                    mec=_NEG, mew=1.6, zorder=5)
        n_neg = int(neg.sum())
        title = ATOM_LABELS[atom]
        if n_neg:
            title += f"  ({n_neg} negative)"
        ax.set_title(title, loc="left", color="black", fontsize=11)
        ax.set_ylabel("bits")
        ax.grid(True, color="0.92", lw=0.8, zorder=0)
        ax.set_axisbelow(True)
        _integer_ticks(ax)
    for ax in axes[-1]:
        ax.set_xlabel("layer")
    handles = [
        Line2D([], [], color="0.2", lw=2.2, marker="o", ms=3.5,
               label=correction_text(results)[0]),
        Patch(color="0.2", alpha=0.22, label=interval_label(results)),
        Line2D([], [], color="0.2", ls=":", lw=1.5, label="plug-in"),
        Line2D([], [], color="0.35", ls="--", lw=1.2, label="null mean (permutation)"),
        Line2D([], [], ls="none", marker="v", ms=8, mfc="white", mec=_NEG, mew=1.6,
               label="negative corrected value"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=5, frameon=False, fontsize=9)
    fig.suptitle("PID atoms across layers (bits)", fontsize=13, fontweight="bold")
    return fig


def contribution_by_layer(results: LayerResults) -> Figure:
    """The text contribution C_text = U_text / (U_image + U_text) across layers, with its band.

    Layers where the contribution is undefined (both unique atoms about zero) are marked with
    a cross on the 50% line.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    from matplotlib.ticker import PercentFormatter

    layers = np.asarray(results.layers, dtype=float)
    c = results.series("contribution_text", "corrected")
    lo = results.series("contribution_text", "ci_low")
    hi = results.series("contribution_text", "ci_high")
    color = ATOM_COLORS["contribution_text"]
    fig = _new_figure(figsize=(10, 4.6))
    ax = fig.subplots()
    ax.axhspan(0.5, 1.05, color=ATOM_COLORS["unique_text"], alpha=0.04, lw=0)
    ax.axhspan(-0.05, 0.5, color=ATOM_COLORS["unique_image"], alpha=0.05, lw=0)
    ax.axhline(0.5, color="0.4", ls="--", lw=1)
    ax.fill_between(layers, lo, hi, color=color, alpha=0.22, lw=0)
    ax.plot(layers, c, color=color, lw=2.2, marker="o", ms=4)
    undefined = np.isnan(c)
    handles = [
        Line2D([], [], color=color, lw=2.2, marker="o", ms=4,
               label=ATOM_LABELS["contribution_text"]),
        Patch(color=color, alpha=0.22, label=interval_label(results)),
        Line2D([], [], color="0.4", ls="--", lw=1, label="balanced (50%)"),
    ]
    if undefined.any():
        ax.plot(layers[undefined], np.full(int(undefined.sum()), 0.5), ls="none", marker="x",
                ms=9, mew=2, color=_NEG)
        handles.append(Line2D([], [], ls="none", marker="x", ms=9, mew=2, color=_NEG,
                              label="undefined (both uniques ≈ 0)"))
    ax.text(0.995, 0.97, "text-dominated ↑", transform=ax.transAxes, ha="right", va="top",
            color=ATOM_COLORS["unique_text"], fontsize=9)
    ax.text(0.995, 0.03, "image-dominated ↓", transform=ax.transAxes, ha="right", va="bottom",
            color="#B07800", fontsize=9)
    ax.set_ylim(-0.05, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(xmax=1.0))
    ax.set_ylabel(r"$U_{\mathrm{text}} \,/\, (U_{\mathrm{image}} + U_{\mathrm{text}})$")
    ax.set_xlabel("layer")
    ax.grid(True, color="0.92", lw=0.8)
    ax.set_axisbelow(True)
    _integer_ticks(ax)
    if len(layers) == 1:
        ax.set_xlim(layers[0] - 1, layers[0] + 1)
    fig.legend(handles=handles, loc="outside lower center", ncols=len(handles), frameon=False,
               fontsize=9)
    ax.set_title("Text contribution across layers (image contribution = 100% − text)",
                 fontsize=13, fontweight="bold")
    return fig


def _fmt_bits(value: float) -> str:
    return "undefined" if math.isnan(value) else f"{value:+.3f}"


def last_layer_atoms(results: LayerResults, *, layer: int | None = None) -> Figure:
    """The four atoms at one layer (default: the last one).

    Left: stacked bars of the plug-in and the corrected atoms; positive atoms stack up from
    zero, negative ones stack down below zero, hatched and flagged. Right: each corrected atom
    with its bootstrap interval, its plug-in value and its null mean.
    """
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    layer = results.last_layer if layer is None else layer
    recs = {a: results.get(layer, a) for a in BIT_ATOMS}
    fig = _new_figure(figsize=(11.5, 5.0))
    left, right = fig.subplots(1, 2, width_ratios=[1.0, 1.6])

    # -- stacked bars: plug-in and corrected
    bars = (("plug-in", "plugin"), ("corrected", "corrected"))
    negatives: list[str] = []
    width = 0.55
    span = max(
        sum(abs(v) for v in (getattr(recs[a], f) for a in BIT_ATOMS) if not math.isnan(v))
        for _, f in bars
    )
    for x, (_label, fieldname) in enumerate(bars):
        up = down = 0.0
        total = 0.0
        for atom in BIT_ATOMS:
            value = getattr(recs[atom], fieldname)
            if math.isnan(value):
                continue
            total += value
            if value >= 0:
                left.bar(x, value, width, bottom=up, color=ATOM_COLORS[atom], edgecolor="white",
                         lw=0.8)
                center, up = up + value / 2, up + value
            else:
                left.bar(x, value, width, bottom=down, color=ATOM_COLORS[atom], edgecolor=_NEG,
                         lw=1.6, hatch="///", alpha=0.75)
                center, down = down + value / 2, down + value
                if fieldname == "corrected":
                    negatives.append(atom)
            if abs(value) >= 0.045 * span:
                left.text(x, center, f"{value:.3f}", ha="center", va="center", fontsize=8,
                          color="white" if value >= 0 else "black")
        left.plot([x - width / 2 - 0.06, x + width / 2 + 0.06], [total, total], color="black",
                  lw=2)
        left.annotate(f"net sum\n{total:.3f}", (x + width / 2 + 0.06, total), xytext=(3, 0),
                      textcoords="offset points", va="center", fontsize=8)
    left.axhline(0.0, color="black", lw=0.8)
    left.set_xticks(range(len(bars)), [b[0] for b in bars])
    left.set_xlim(-0.6, len(bars) - 0.1)
    left.set_ylabel("bits")
    left.set_title("Stacked atoms", loc="left", fontsize=11)
    left.grid(True, axis="y", color="0.92", lw=0.8)
    left.set_axisbelow(True)
    if negatives:
        names = ", ".join(_SHORT[a] for a in negatives)
        left.set_xlabel(f"negative, below 0 and hatched: {names}\n(reported as is, not clamped)",
                        color=_NEG, fontsize=9)

    # -- per atom: corrected with interval, plug-in and null mean
    xs = np.arange(len(BIT_ATOMS))
    level = level_text(results)
    for x, atom in zip(xs, BIT_ATOMS, strict=True):
        rec = recs[atom]
        neg = rec.corrected < 0
        right.bar(x, 0 if math.isnan(rec.corrected) else rec.corrected, 0.6,
                  color=ATOM_COLORS[atom], alpha=0.75 if neg else 1.0,
                  hatch="///" if neg else None, edgecolor=_NEG if neg else "white",
                  lw=1.6 if neg else 0.8)
        if not (math.isnan(rec.ci_low) or math.isnan(rec.ci_high)):
            right.plot([x, x], [rec.ci_low, rec.ci_high], color="black", lw=1.4)
            right.plot([x - 0.08, x + 0.08], [rec.ci_low] * 2, color="black", lw=1.4)
            right.plot([x - 0.08, x + 0.08], [rec.ci_high] * 2, color="black", lw=1.4)
        right.plot(x + 0.2, rec.plugin, ls="none", marker="o", ms=6, mfc="white", mec="black")
        right.plot(x + 0.2, rec.null_mean, ls="none", marker="D", ms=5, color="0.45")
        top = np.nanmax([rec.corrected, rec.ci_high, 0.0])
        bottom = np.nanmin([rec.corrected, rec.ci_low, 0.0])
        label = _fmt_bits(rec.corrected)
        if neg:
            right.annotate(f"{label}\nnegative", (x, bottom), xytext=(0, -4),
                           textcoords="offset points", ha="center", va="top", fontsize=8,
                           color=_NEG)
        else:
            right.annotate(label, (x, top), xytext=(0, 4), textcoords="offset points",
                           ha="center", va="bottom", fontsize=8)
    right.axhline(0.0, color="black", lw=0.8)
    right.set_xticks(xs, [ATOM_LABELS[a].replace(" $", "\n$", 1) for a in BIT_ATOMS], fontsize=9)
    right.set_ylabel("bits")
    right.margins(y=0.18)
    right.set_title(f"Corrected atoms with {level} intervals", loc="left", fontsize=11)
    right.grid(True, axis="y", color="0.92", lw=0.8)
    right.set_axisbelow(True)
    right.legend(
        handles=[
            Patch(color="0.5", label="corrected (bar)"),
            Line2D([], [], color="black", lw=1.4, label=interval_label(results)),
            Line2D([], [], ls="none", marker="o", ms=6, mfc="white", mec="black", label="plug-in"),
            Line2D([], [], ls="none", marker="D", ms=5, color="0.45",
                   label="null mean (permutation)"),
        ],
        loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False,
    )
    left.legend(
        handles=[Patch(color=ATOM_COLORS[a], label=_SHORT[a]) for a in reversed(BIT_ATOMS)],
        loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False,
    )
    title = f"PID atoms at layer {layer} (bits)"
    c = results.get(layer, "contribution_text")
    if math.isnan(c.corrected):
        title += ";  text contribution undefined (both uniques ≈ 0)"
    else:
        title += f";  text contribution {c.corrected:.1%}"
        if not (math.isnan(c.ci_low) or math.isnan(c.ci_high)):
            title += f" [{c.ci_low:.1%}, {c.ci_high:.1%}]"
    fig.suptitle(title, fontsize=13, fontweight="bold")
    return fig
