"""The discrete and the Gaussian estimator side by side, and where they disagree (a run with
``estimator="both"``; see :mod:`mmpid.estimate.compare` for the rule)."""

from __future__ import annotations

import math
from html import escape

from mmpid.errors import InputError
from mmpid.report.results import BIT_ATOMS, AtomRecord, LayerResults, level_text
from mmpid.report.tables import format_bits

__all__ = ["estimators_table_html", "section_html"]

_HEAD = {
    "redundancy": "R",
    "unique_image": "U<sub>image</sub>",
    "unique_text": "U<sub>text</sub>",
    "synergy": "S",
}


def _with_ci(rec: AtomRecord) -> str:
    text = format_bits(rec.corrected)
    if math.isfinite(rec.ci_low) and math.isfinite(rec.ci_high):
        text += f" [{format_bits(rec.ci_low)}, {format_bits(rec.ci_high)}]"
    return escape(text)


def estimators_table_html(results: LayerResults) -> str:
    """One row per layer and atom: discrete corrected [interval] | Gaussian corrected
    [interval] | difference (bits) | whether they disagree. Bits throughout."""
    gaussian = results.gaussian
    if gaussian is None:
        raise InputError("These results hold one estimator; run with estimator='both' to compare two.")
    flagged = {(d.layer, d.atom) for d in results.disagreements}
    head = (
        "<tr><th>layer</th><th>atom</th><th>discrete: corrected [interval]</th>"
        "<th>Gaussian: corrected [interval]</th><th>discrete &minus; Gaussian</th>"
        "<th>disagree</th></tr>"
    )
    rows = []
    for layer in results.layers:
        for atom in BIT_ATOMS:
            d, g = results.get(layer, atom), gaussian.get(layer, atom)
            mark = '<span class="flag">yes</span>' if (layer, atom) in flagged else ""
            rows.append(
                f'<tr><th scope="row">{layer}</th><td>{_HEAD[atom]}</td><td>{_with_ci(d)}</td>'
                f"<td>{_with_ci(g)}</td><td>{escape(format_bits(d.corrected - g.corrected))}</td>"
                f"<td>{mark}</td></tr>"
            )
    return f"<table>\n<thead>{head}</thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody></table>"


def section_html(results: LayerResults) -> str:
    """The report's section comparing the two estimators: what each sees, the disagreements
    with their likely reading, then the table of every atom at every layer."""
    rule = results.config.get("disagreement_rule")
    rule_text = escape(str(rule)) if isinstance(rule, str) else "disjoint intervals and a difference above 0.05 bits"
    if results.disagreements:
        items = "\n".join(
            f"<li>layer {d.layer}, {_HEAD[d.atom]}: discrete {escape(format_bits(d.discrete[0]))} "
            f"[{escape(format_bits(d.discrete[1]))}, {escape(format_bits(d.discrete[2]))}], "
            f"Gaussian {escape(format_bits(d.gaussian[0]))} [{escape(format_bits(d.gaussian[1]))}, "
            f"{escape(format_bits(d.gaussian[2]))}] bits: {escape(d.reading)}.</li>"
            for d in results.disagreements
        )
        found = (
            f'<div class="warn"><p>They disagree on {len(results.disagreements)} atom(s):</p>'
            f"<ul>\n{items}\n</ul></div>"
        )
    else:
        found = '<p class="ok">They agree on every atom at every layer.</p>'
    return (
        "<h2>Two estimators: discrete and Gaussian</h2>\n"
        "<p>The same features, decomposed twice. The <b>discrete</b> estimator (the atoms above) "
        "clusters each variable and solves the BROJA PID of the cluster labels: it sees any "
        "dependence, nonlinear included, but nothing finer than its clusters. The <b>Gaussian</b> "
        "estimator (~G-PID of the PCA-reduced features) needs no clusters but sees only linear "
        "(second-order) dependence: XOR-type synergy and categorical structure are invisible to "
        "it, and its information is not bounded by a cluster alphabet's entropy. Corrected values "
        f"with their {level_text(results)} intervals, bits. They <b>disagree</b> on {rule_text}.</p>\n"
        + found + "\n" + estimators_table_html(results) + _gaussian_warnings(results)
    )


def _gaussian_warnings(results: LayerResults) -> str:
    warns = results.gaussian.warnings if results.gaussian is not None else ()
    if not warns:
        return ""
    items = "\n".join(
        f"<li>{'run' if w.layer is None else f'layer {w.layer}'}: {escape(w.message)}</li>" for w in warns
    )
    return (
        f"<details><summary>The Gaussian estimator's warnings ({len(warns)})</summary>"
        f"<ul>\n{items}\n</ul></details>"
    )
