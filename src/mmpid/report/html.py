"""The self-contained HTML page: inline CSS, PNGs as base64 data URIs, no scripts, no links out."""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from mmpid.versions import mmpid_version

from mmpid.report.results import BIT_ATOMS, LayerResults, interval_label, level_text
from mmpid.report.tables import (
    config_table_html,
    correction_text,
    format_bits,
    format_fraction,
    records_table_html,
    summary_table_html,
)

__all__ = ["Figure", "build_html", "default_title"]

_NAMES = {
    "redundancy": "redundancy R",
    "unique_image": "unique-to-image U<sub>image</sub>",
    "unique_text": "unique-to-text U<sub>text</sub>",
    "synergy": "synergy S",
}

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #222;
       max-width: 1180px; margin: 2em auto; padding: 0 1.2em; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.1em; }
h2 { font-size: 1.25em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #555; margin-top: 0; }
.headline { background: #f4f7fb; border-left: 4px solid #0072B2; padding: 0.6em 1em; }
.headline ul { margin: 0.3em 0; }
figure { margin: 1em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { color: #444; font-size: 0.92em; margin-top: 0.3em; }
table { border-collapse: collapse; font-size: 0.9em; margin: 0.6em 0; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; vertical-align: top; }
thead th { background: #f0f0f0; }
table.config th, table.config td { text-align: left; font-family: ui-monospace, Menlo, monospace; }
tbody tr:nth-child(even) { background: #fafafa; }
.ci { color: #666; font-size: 0.85em; white-space: nowrap; }
.neg { color: #D55E00; font-weight: 600; }
.zero { color: #888; }
.neg.zero { color: #D55E00; }
.flag { color: #D55E00; }
.muted { color: #777; }
.warn { background: #fff8e6; border-left: 4px solid #E69F00; padding: 0.5em 1em; }
.ok { color: #009E73; }
details summary { cursor: pointer; color: #0072B2; }
footer { color: #888; font-size: 0.85em; margin-top: 3em; border-top: 1px solid #eee; }
"""


@dataclass(frozen=True)
class Figure:
    """One embedded image: its file name, its caption (HTML) and its PNG bytes."""

    name: str
    caption: str
    png: bytes


def default_title(results: LayerResults) -> str:
    """``mmpid: MODEL on DATASET`` from the configuration, or a generic title."""
    model, dataset = results.config.get("model"), results.config.get("dataset")
    if model and dataset:
        return f"mmpid: {model} on {dataset}"
    if model:
        return f"mmpid: {model}"
    return "mmpid report"


def _layer_ranges(layers: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1-3, 7"``."""
    out: list[str] = []
    values = sorted(set(layers))
    start = prev = values[0]
    for v in [*values[1:], None]:
        if v is not None and v == prev + 1:
            prev = v
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        if v is not None:
            start = prev = v
    return ", ".join(out)




def _subtitle(results: LayerResults) -> str:
    cfg = results.config
    parts = []
    for key in ("model", "dataset", "split", "protocol", "pooling", "target"):
        if cfg.get(key) not in (None, ""):
            parts.append(f"{key} <b>{escape(str(cfg[key]))}</b>")
    if cfg.get("n") is not None:
        parts.append(f"N = <b>{escape(str(cfg['n']))}</b>")
    n = len(results.layers)
    parts.append(f"{n} layer{'s' if n != 1 else ''} ({escape(_layer_ranges(results.layers))})")
    return " · ".join(parts)


def _headline(results: LayerResults) -> str:
    layer = results.last_layer
    recs = {a: results.get(layer, a) for a in BIT_ATOMS}
    items = []
    for atom in BIT_ATOMS:
        rec = recs[atom]
        ci = ""
        if not (math.isnan(rec.ci_low) or math.isnan(rec.ci_high)):
            ci = f" [{format_bits(rec.ci_low)}, {format_bits(rec.ci_high)}]"
        note = ""
        if rec.corrected < 0:
            note = ' <span class="neg">▼ negative (reported as is, not clamped)</span>'
        elif rec.ci_low <= 0 <= rec.ci_high:
            note = ' <span class="zero">(interval contains 0)</span>'
        items.append(f"<li>{_NAMES[atom]}: <b>{format_bits(rec.corrected)}</b> bits{ci}{note}</li>")
    finite = {a: r.corrected for a, r in recs.items() if not math.isnan(r.corrected)}
    total = sum(finite.values())
    plugin_total = sum(r.plugin for r in recs.values() if not math.isnan(r.plugin))
    c = results.get(layer, "contribution_text")
    if math.isnan(c.corrected):
        contribution = (
            "Text contribution: <b>undefined</b> (both unique atoms are about zero, so their ratio "
            "means nothing)."
        )
    else:
        ci = ""
        if not (math.isnan(c.ci_low) or math.isnan(c.ci_high)):
            ci = f" [{format_fraction(c.ci_low)}, {format_fraction(c.ci_high)}]"
        contribution = (
            f"Text contribution C<sub>text</sub> = U<sub>text</sub>/(U<sub>image</sub>+"
            f"U<sub>text</sub>): <b>{format_fraction(c.corrected)}</b>{ci}; image "
            f"{format_fraction(1.0 - c.corrected)}."
        )
    dominant = max(finite, key=lambda a: finite[a]) if finite else None
    dominant_text = f" The largest atom is {_NAMES[dominant]}." if dominant else ""
    which = "the last analysed layer" if len(results.layers) > 1 else "the only analysed layer"
    return (
        f'<div class="headline"><p>At layer <b>{layer}</b> ({which}), corrected atoms '
        f"({escape(interval_label(results))}s):</p><ul>{''.join(items)}</ul>"
        f"<p>Sum of the corrected atoms: {format_bits(total)} bits (the plug-in atoms sum to the "
        f"plug-in I(image, text; target) = {format_bits(plugin_total)} bits).{dominant_text}</p>"
        f"<p>{contribution}</p>{_both_line(results)}</div>"
    )


def _both_line(results: LayerResults) -> str:
    """For a run with both estimators: which one the page's atoms are, and the disagreements."""
    if results.gaussian is None:
        return ""
    n = len(results.disagreements)
    verdict = (
        f'<span class="flag">they disagree on {n} atom(s)</span>' if n
        else '<span class="ok">they agree on every atom</span>'
    )
    return (
        "<p>These are the discrete estimator's atoms; the Gaussian estimator ran on the same "
        f"features, and {verdict} (section \"Two estimators\").</p>"
    )


def _warnings_html(results: LayerResults) -> str:
    n_neg = sum(1 for r in results.records if r.atom in BIT_ATOMS and r.corrected < 0)
    blocks = []
    if n_neg:
        layers = sorted(
            {r.layer for r in results.records if r.atom in BIT_ATOMS and r.corrected < 0}
        )
        blocks.append(
            f"<li>{n_neg} corrected atom value{'s are' if n_neg != 1 else ' is'} negative "
            f"(layers {escape(_layer_ranges(layers))}): the bias correction took them below zero, "
            "as it does for atoms near zero. They are reported as they are, not clamped to zero, "
            "and marked ▼.</li>"
        )
    grouped: dict[str, list[int]] = {}
    run_wide: list[str] = []
    for w in results.warnings:
        if w.layer is None:
            if w.message not in run_wide:
                run_wide.append(w.message)
        else:
            grouped.setdefault(w.message, []).append(w.layer)
    for message in run_wide:
        blocks.append(f"<li>{escape(message)}</li>")
    for message, layers in grouped.items():
        label = "layer" if len(set(layers)) == 1 else "layers"
        blocks.append(f"<li><b>{label} {escape(_layer_ranges(layers))}</b>: {escape(message)}</li>")
    if not blocks:
        return '<p class="ok">No warnings.</p>'
    return f'<div class="warn"><ul>{"".join(blocks)}</ul></div>'


def _how_to_read(results: LayerResults) -> str:
    return f"""<ul>
<li>All atoms are in <b>bits</b>. Redundancy R: information about the target that either modality
alone carries. U<sub>image</sub> / U<sub>text</sub>: information only that modality carries.
Synergy S: information only the combination carries. R + U<sub>image</sub> + U<sub>text</sub> + S =
I(image, text; target) (BROJA partial information decomposition).</li>
<li><b>plug-in</b>: the decomposition of the empirical joint distribution of the discretised
variables. Plug-in estimates are biased upwards on finite samples, synergy most of all.</li>
<li><b>null mean</b>: the mean of the same estimate over permutations that destroy the
dependence on the target: what the estimator reports when there is no information at all.
{correction_text(results)[1]}</li>
<li>Intervals: {_interval_sentence(results)} An atom whose interval contains 0 (grey in the
table) is not distinguishable from zero.</li>
<li>Negative corrected values (▼, orange) are kept as they are: clamping them to zero would
hide the estimator's noise and bias the sums.</li>
<li>C<sub>text</sub> = U<sub>text</sub> / (U<sub>image</sub> + U<sub>text</sub>), the paper's
modality contribution; C<sub>image</sub> = 1 &minus; C<sub>text</sub>. It ignores R and S, and it is
undefined when both unique atoms are about zero.</li>
</ul>"""


def _img(fig: Figure) -> str:
    data = base64.b64encode(fig.png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{escape(fig.name)}">'
        f"<figcaption>{fig.caption} <span class=\"muted\">({escape(fig.name)})</span>"
        "</figcaption></figure>"
    )


def build_html(
    results: LayerResults,
    figures: Sequence[Figure],
    *,
    title: str | None = None,
    per_sample: LayerResults | None = None,
    comparison: str = "",
) -> str:
    """The report page as one HTML string with every figure embedded.

    Parameters
    ----------
    results : the results to show.
    figures : the figures, in page order.
    title : the page title (default: from the model and dataset in the configuration).
    per_sample : the paper's per-sample estimate of the same layers (a tokens store), shown in
        its own section beside the pooled one.
    comparison : the section of today's attribution methods beside PID
        (:func:`mmpid.report.compare.comparison_section_html`), placed after the tables; "" for none.

    Results with both estimators (``results.gaussian``) get a section comparing them, with the
    atoms where they disagree (:mod:`mmpid.report.estimators`).
    """
    title = default_title(results) if title is None else title
    if per_sample is not None:
        from mmpid.report.per_sample import section_html

        per_sample_html = section_html(results, per_sample) + "\n"
    else:
        per_sample_html = ""
    if results.gaussian is not None:
        from mmpid.report.estimators import section_html as estimators_html

        per_sample_html = estimators_html(results) + "\n" + per_sample_html
    csv = base64.b64encode(results.to_csv().encode()).decode()
    single = len(results.layers) == 1
    figures_html = "\n".join(_img(f) for f in figures)
    if single:
        figures_html = (
            '<p class="muted">Only one layer was analysed, so there are no curves across '
            "layers.</p>\n" + figures_html
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>{escape(title)}</h1>
<p class="sub">{_subtitle(results)}</p>
{_headline(results)}
<h2>Figures</h2>
{figures_html}
<h2>Table</h2>
<p>Corrected atoms per layer with their {level_text(results)} intervals (bits; C<sub>text</sub> in
percent). <span class="neg">Orange ▼</span>: negative; <span class="zero">grey</span>: the
interval contains 0.
<a download="results.csv" href="data:text/csv;base64,{csv}">Download the full table (CSV)</a>.</p>
{summary_table_html(results)}
<details><summary>All records: plug-in, null mean, corrected and interval of every atom</summary>
{records_table_html(results)}
</details>
{per_sample_html}{comparison}<h2>Warnings</h2>
{_warnings_html(results)}
<h2>Configuration</h2>
{config_table_html(results.config)}
<h2>How to read this report</h2>
{_how_to_read(results)}
<footer>Results written by mmpid {escape(results.mmpid_version)}; report rendered by mmpid
{escape(mmpid_version())}. Self-contained: every image is embedded in this file.</footer>
</body>
</html>
"""


def _interval_sentence(results: LayerResults) -> str:
    """What the intervals are, as recorded in the results (HTML-escaped, one sentence)."""
    kind = results.interval_kind
    if kind is None:
        return f"{level_text(results)} bootstrap intervals (resampling the samples; their exact kind was not recorded)."
    return escape(kind[0].upper() + kind[1:]) + " (resampling the samples)."
