"""The paper's per-sample protocol beside the pooled estimate: a table and a figure.

A ``tokens`` store gets two estimates per layer on the same examples (see
:func:`mmpid.pipeline.estimate_store`): the pooled one (``results.json``) and the per-sample
one of arXiv 2511.19470 (``per_sample/results.json``), whose ``plugin`` is the paper's figure
(the mean over examples of each example's PID), ``null_mean`` its noise floor (the same with
the targets shuffled across examples) and ``corrected`` their difference.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mmpid.errors import InputError
from mmpid.report.results import BIT_ATOMS, AtomRecord, LayerResults, level_text, load
from mmpid.report.tables import format_bits, format_fraction

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["comparison_table_html", "load_per_sample", "per_sample_by_layer"]

_HEAD = {
    "redundancy": "R",
    "unique_image": "U<sub>image</sub>",
    "unique_text": "U<sub>text</sub>",
    "synergy": "S",
}


def load_per_sample(results: LayerResults, folder: str | Path) -> LayerResults | None:
    """The per-sample results that ``results`` (read from ``folder``) names, or None."""
    rel = results.config.get("per_sample")
    if not isinstance(rel, str):
        return None
    path = Path(folder) / rel
    return load(path) if path.is_file() else None


def _check(pooled: LayerResults, per_sample: LayerResults) -> list[int]:
    if not isinstance(per_sample, LayerResults):
        raise InputError(f"'per_sample' must be a LayerResults or None; got {type(per_sample).__name__}.")
    common = sorted(set(pooled.layers) & set(per_sample.layers))
    if not common:
        raise InputError(
            f"'per_sample' holds layers {list(per_sample.layers)}, none of the pooled results' "
            f"{list(pooled.layers)}."
        )
    return common


def _with_ci(rec: AtomRecord, fmt: Callable[[float], str]) -> str:
    text = fmt(rec.corrected)
    if np.isfinite(rec.ci_low) and np.isfinite(rec.ci_high):
        text += f" [{fmt(rec.ci_low)}, {fmt(rec.ci_high)}]"
    return escape(text)


def comparison_table_html(pooled: LayerResults, per_sample: LayerResults) -> str:
    """One row per layer and atom: pooled corrected [interval] | per-sample plug-in (the paper's
    figure), noise floor, corrected [interval]; then the image contribution both ways."""
    layers = _check(pooled, per_sample)
    head = (
        "<tr><th>layer</th><th>atom</th><th>pooled: corrected</th><th>per-sample: plug-in "
        "(the paper's figure)</th><th>per-sample: noise floor</th><th>per-sample: "
        "corrected</th></tr>"
    )
    rows = []
    for layer in layers:
        for atom in (*BIT_ATOMS, "contribution_image"):
            fmt = format_bits if atom in BIT_ATOMS else format_fraction
            p, s = pooled.get(layer, atom), per_sample.get(layer, atom)
            name = _HEAD.get(atom, "C<sub>image</sub>")
            rows.append(
                f"<tr><th scope=\"row\">{layer}</th><td>{name}</td><td>{_with_ci(p, fmt)}</td>"
                f"<td>{escape(fmt(s.plugin))}</td><td>{escape(fmt(s.null_mean))}</td>"
                f"<td>{_with_ci(s, fmt)}</td></tr>"
            )
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def section_html(pooled: LayerResults, per_sample: LayerResults) -> str:
    """The report's section on the per-sample protocol: what it is, then the table."""
    cfg = per_sample.config
    clusters = cfg.get("cluster_rule")
    length = cfg.get("length")
    return (
        "<h2>The paper's per-sample protocol beside the pooled estimate</h2>\n"
        "<p>Per example, the image tokens, the question's input embeddings and the layer's hidden "
        "states are each compressed by k-means to a common length "
        f"({'each example&#39;s shortest set' if length is None else escape(str(length))}), "
        f"discretised into {escape(str(clusters))} clusters and decomposed; the paper's figure is "
        "the mean over examples (for C<sub>image</sub>, the mean of per-example ratios). Its "
        "<b>noise floor</b> is the same procedure with the targets shuffled across examples: "
        "per-sample values of that size are estimator noise. Per-sample corrected = plug-in "
        f"&minus; floor, with a {level_text(per_sample)} bootstrap interval over examples. The "
        "pooled estimate is mmpid's, on the input-fusion variables pooled from the same token "
        "sets.</p>\n" + comparison_table_html(pooled, per_sample)
    )


def per_sample_by_layer(pooled: LayerResults, per_sample: LayerResults) -> Figure:
    """One panel per atom across layers: pooled corrected (with its band), per-sample plug-in
    (the paper's figure), its noise floor and its corrected value (with its band), in bits."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from mmpid.report.plots import ATOM_COLORS, ATOM_LABELS

    layers = _check(pooled, per_sample)
    x = np.asarray(layers, dtype=float)

    def series(res: LayerResults, atom: str, field: str) -> np.ndarray:
        return np.array([getattr(res.get(layer, atom), field) for layer in layers], dtype=float)

    fig = Figure(layout="constrained", figsize=(11, 7.2))
    axes = fig.subplots(2, 2, sharex=True)
    for ax, atom in zip(axes.ravel(), BIT_ATOMS, strict=True):
        color = ATOM_COLORS[atom]
        ax.axhline(0.0, color="black", lw=0.8)
        ax.fill_between(x, series(pooled, atom, "ci_low"), series(pooled, atom, "ci_high"),
                        color=color, alpha=0.22, lw=0)
        ax.plot(x, series(pooled, atom, "corrected"), color=color, lw=2.2, marker="o", ms=3.5)
        ax.fill_between(x, series(per_sample, atom, "ci_low"), series(per_sample, atom, "ci_high"),
                        color="0.5", alpha=0.18, lw=0)
        ax.plot(x, series(per_sample, atom, "plugin"), color="black", lw=1.6, marker="s", ms=3.5)
        ax.plot(x, series(per_sample, atom, "null_mean"), color="0.35", ls="--", lw=1.2)
        ax.plot(x, series(per_sample, atom, "corrected"), color="0.45", ls=":", lw=1.6, marker="^", ms=3.5)
        ax.set_title(ATOM_LABELS[atom], loc="left", fontsize=11)
        ax.set_ylabel("bits")
        ax.grid(True, color="0.92", lw=0.8)
        ax.set_axisbelow(True)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes[-1]:
        ax.set_xlabel("layer")
    handles = [
        Line2D([], [], color="0.2", lw=2.2, marker="o", ms=3.5, label="pooled: corrected (band: interval)"),
        Line2D([], [], color="black", lw=1.6, marker="s", ms=3.5, label="per-sample: plug-in (the paper's figure)"),
        Line2D([], [], color="0.35", ls="--", lw=1.2, label="per-sample: noise floor"),
        Line2D([], [], color="0.45", ls=":", lw=1.6, marker="^", ms=3.5,
               label="per-sample: plug-in − floor (grey band: interval)"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncols=2, frameon=False)
    return fig
