"""Tables of results as text: number formatting and the HTML tables of the report.

Bits are printed with 3 decimals in the summary and 4 in the full table; contributions as
percentages. Negative corrected atoms carry the CSS class ``neg`` (flagged, never clamped);
atoms whose interval contains zero carry ``zero`` (not distinguishable from zero).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from html import escape
from typing import Any

from mmpid.report.results import BIT_ATOMS, FIELDS, LayerResults

__all__ = [
    "config_table_html",
    "correction_text",
    "format_bits",
    "format_fraction",
    "records_table_html",
    "summary_table_html",
]

UNDEFINED = "undefined"
_FLAG = ' <span class="flag" title="negative: reported as is, not clamped">▼</span>'

_HEAD = {
    "redundancy": "R",
    "unique_image": "U<sub>image</sub>",
    "unique_text": "U<sub>text</sub>",
    "synergy": "S",
    "contribution_image": "C<sub>image</sub>",
    "contribution_text": "C<sub>text</sub>",
}
_FIELD_HEAD = {
    "plugin": "plug-in",
    "null_mean": "null mean",
    "corrected": "corrected",
    "ci_low": "CI low",
    "ci_high": "CI high",
}


def correction_text(results: LayerResults) -> tuple[str, str]:
    """A short label and a one-sentence HTML description of the recorded bias correction."""
    rule = results.correction
    if rule == "null":
        return (
            "corrected = plug-in − null mean",
            "<b>corrected</b> = plug-in &minus; null mean: the null's bias removed.",
        )
    if rule == "extrapolated":
        return (
            "corrected (rate-extrapolated bootstrap bias correction)",
            "<b>corrected</b> = plug-in &minus; its bias, estimated from bootstrap resamples of "
            "N and of N/4 samples: the bootstrap's estimate, mean of the replicates &minus; "
            "plug-in, scaled by the rate at which each atom's bias shrinks with N (1/N inside, "
            "up to N<sup>&minus;1/2</sup> for an atom at zero beside real redundancy). Unlike "
            "the null mean it adapts to the dependence present, so corrected is not simply "
            "plug-in &minus; null mean.",
        )
    if rule == "bootstrap":
        return (
            "corrected (bootstrap bias correction)",
            "<b>corrected</b> = 2 &times; plug-in &minus; mean of the bootstrap replicates: the "
            "bootstrap estimate of the plug-in bias removed. Unlike the null mean it adapts to "
            "the dependence present, so corrected is not simply plug-in &minus; null mean.",
        )
    return (
        "corrected (plug-in minus its estimated bias)",
        "<b>corrected</b>: the plug-in value with its estimated bias removed (the rule, "
        "<code>correction</code>, was not recorded in the configuration).",
    )


def format_bits(value: float, *, digits: int = 3) -> str:
    """``0.123`` (bits, fixed decimals, ASCII minus) or ``"undefined"`` for NaN."""
    return UNDEFINED if math.isnan(value) else f"{value:.{digits}f}"


def format_fraction(value: float, *, digits: int = 1) -> str:
    """``81.4%`` or ``"undefined"`` for NaN."""
    return UNDEFINED if math.isnan(value) else f"{100 * value:.{digits}f}%"


def _interval(lo: float, hi: float, fmt: Any) -> str:
    if math.isnan(lo) or math.isnan(hi):
        return ""
    return f"[{fmt(lo)}, {fmt(hi)}]"


def _classes(corrected: float, lo: float, hi: float) -> list[str]:
    classes = []
    if corrected < 0:
        classes.append("neg")
    if lo <= 0 <= hi:
        classes.append("zero")
    if math.isnan(corrected):
        classes.append("undef")
    return classes


def summary_table_html(results: LayerResults) -> str:
    """One row per layer: each atom's corrected value with its interval, and C_text.

    Returns an HTML ``<table>`` string.
    """
    cols = (*BIT_ATOMS, "contribution_text")
    head = "".join(
        f"<th>{_HEAD[a]}{' (bits)' if a in BIT_ATOMS else ''}</th>" for a in cols
    )
    rows = []
    for layer in results.layers:
        cells = [f'<th scope="row">{layer}</th>']
        for atom in cols:
            rec = results.get(layer, atom)
            fmt = format_bits if atom in BIT_ATOMS else format_fraction
            value = fmt(rec.corrected)
            interval = _interval(rec.ci_low, rec.ci_high, fmt)
            classes = _classes(rec.corrected, rec.ci_low, rec.ci_high) if atom in BIT_ATOMS else (
                ["undef"] if math.isnan(rec.corrected) else []
            )
            flag = _FLAG if "neg" in classes else ""
            cls = f' class="{" ".join(classes)}"' if classes else ""
            ci = f' <span class="ci">{escape(interval)}</span>' if interval else ""
            cells.append(f"<td{cls}>{escape(value)}{flag}{ci}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return (
        '<table class="summary">\n<thead><tr><th>layer</th>'
        + head
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


def records_table_html(results: LayerResults, *, digits: int = 4) -> str:
    """Every record (layer, atom) with all five fields; bits and fractions both as decimals."""
    head = "".join(f"<th>{_FIELD_HEAD[f]}</th>" for f in FIELDS)
    rows = []
    for rec in results.records:
        classes = _classes(rec.corrected, rec.ci_low, rec.ci_high) if rec.atom in BIT_ATOMS else []
        cls = f' class="{" ".join(classes)}"' if classes else ""
        values = "".join(
            f"<td>{escape(format_bits(getattr(rec, f), digits=digits))}</td>" for f in FIELDS
        )
        rows.append(
            f"<tr{cls}><td>{rec.layer}</td><td>{escape(rec.atom)}</td>"
            f"<td>{escape(rec.unit)}</td>{values}</tr>"
        )
    return (
        '<table class="records">\n<thead><tr><th>layer</th><th>atom</th><th>unit</th>'
        + head
        + "</tr></thead>\n<tbody>\n"
        + "\n".join(rows)
        + "\n</tbody>\n</table>"
    )


def _flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.extend(_flatten(value, prefix=name + "."))
        else:
            out.append((name, value))
    return out


def config_table_html(config: Mapping[str, Any]) -> str:
    """The run's configuration as a two-column table.

    Nested objects are flattened to dotted keys (``estimator.correction``); lists are shown as
    compact JSON.
    """
    if not config:
        return '<p class="muted">No configuration was recorded (results read from a CSV file?).</p>'
    rows = []
    for key, value in _flatten(config):
        text = value if isinstance(value, str) else json.dumps(value)
        rows.append(f"<tr><th scope=\"row\">{escape(str(key))}</th><td>{escape(text)}</td></tr>")
    return '<table class="config">\n' + "\n".join(rows) + "\n</table>"
