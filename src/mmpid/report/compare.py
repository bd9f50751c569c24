"""The comparison section: each method's image share beside the PID atoms (reads compare.json data)."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from mmpid.report.plots import _new_figure

__all__ = ["COMPARE_JSON", "comparison_figure", "comparison_html", "comparison_section_html", "load_comparison"]

#: The file ``mmpid compare`` writes; a report rendered into a folder holding it shows its section.
COMPARE_JSON = "compare.json"

_ATOMS = ("redundancy", "unique_image", "unique_text", "synergy")
_ATOM_LABEL = {"redundancy": "R", "unique_image": "U_image", "unique_text": "U_text", "synergy": "S"}
_COLORS = {"redundancy": "#999999", "unique_image": "#0072B2", "unique_text": "#E69F00", "synergy": "#009E73"}


def _shares(data: dict[str, Any]) -> list[tuple[str, float, float, float]]:
    rows = [(k, m["image_share"]["value"], m["image_share"]["ci_low"], m["image_share"]["ci_high"])
            for k, m in data.get("methods", {}).items()]
    c = data.get("pid", {}).get("contribution_image")
    if c:
        rows.append(("PID C_image", c["value"], c["ci_low"], c["ci_high"]))
    return rows


def comparison_figure(data: dict[str, Any]) -> Any:
    """Left: each method's image share with its interval; right: PID's atoms (bits)."""
    fig = _new_figure(figsize=(9, 3.6))
    ax, ax2 = fig.subplots(1, 2, width_ratios=[3, 2])
    rows = _shares(data)
    names = [r[0] for r in rows]
    ys = range(len(rows))
    vals = [r[1] for r in rows]
    err = [[max(0.0, r[1] - r[2]) for r in rows], [max(0.0, r[3] - r[1]) for r in rows]]
    ax.barh(list(ys), vals, xerr=err, color=["#56B4E9"] * (len(rows) - 1) + ["#0072B2"], capsize=3)
    ax.set_yticks(list(ys), names)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("image share")
    ax.set_title("What each method gives the image")
    pid = data.get("pid", {})
    atoms = [a for a in _ATOMS if a in pid]
    ax2.bar([_ATOM_LABEL[a] for a in atoms], [pid[a]["value"] for a in atoms],
            yerr=[[max(0.0, pid[a]["value"] - pid[a]["ci_low"]) for a in atoms],
                  [max(0.0, pid[a]["ci_high"] - pid[a]["value"]) for a in atoms]],
            color=[_COLORS[a] for a in atoms], capsize=3)
    ax2.set_ylabel("bits")
    ax2.set_title("PID atoms")
    return fig


def load_comparison(folder: Any) -> dict[str, Any] | None:
    """The data of ``folder/compare.json``, or None when there is none.

    Raises InputError when the file exists but is not a comparison (no ``methods`` / ``pid``).
    """
    import json
    from pathlib import Path

    from mmpid.errors import InputError

    path = Path(folder) / COMPARE_JSON
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc}); rerun `mmpid compare` or remove it.") from exc
    if not isinstance(data, dict) or not {"methods", "pid"} <= set(data):
        raise InputError(f"{path} is not a comparison written by `mmpid compare` (no 'methods'/'pid' keys).")
    return data


def comparison_section_html(data: dict[str, Any], png: bytes, *, heading: str = "h2",
                            report_model: str | None = None) -> str:
    """The comparison as a section of a page: one figure, one table of image shares beside the PID atoms.

    Parameters
    ----------
    data : the content of ``compare.json``.
    png : the figure (:func:`comparison_figure`) as PNG bytes.
    heading : the section's heading tag.
    report_model : the model of the page the section sits in; a note says so when the
        comparison was run on another one.
    """
    info = data.get("info", {})
    rows = []
    for name, m in data.get("methods", {}).items():
        s = m["image_share"]
        rows.append(f"<tr><td>{escape(name)}</td><td>{s['value']:.3f}</td>"
                    f"<td>[{s['ci_low']:.3f}, {s['ci_high']:.3f}]</td><td>{m['cost'].get('seconds', 0):.1f}</td>"
                    f"<td style='text-align:left'>{escape(m['definition'])}</td></tr>")
    pid = data.get("pid", {})
    c = pid.get("contribution_image")
    if c:
        rows.append(f"<tr><td><b>PID</b> C<sub>image</sub></td><td>{c['value']:.3f}</td>"
                    f"<td>[{c['ci_low']:.3f}, {c['ci_high']:.3f}]</td><td>{pid.get('seconds', 0):.1f}</td>"
                    "<td style='text-align:left'>U<sub>image</sub> / (U<sub>image</sub> + U<sub>text</sub>); "
                    "the atoms themselves are in the next table</td></tr>")
    for name, e in data.get("errors", {}).items():
        rows.append(f"<tr><td>{escape(name)}</td><td colspan=4 style='text-align:left'>not run: {escape(e)}</td></tr>")
    atoms = "".join(f"<tr><td>{_ATOM_LABEL[a]}</td><td>{pid[a]['value']:.3f}</td>"
                    f"<td>[{pid[a]['ci_low']:.3f}, {pid[a]['ci_high']:.3f}]</td></tr>" for a in _ATOMS if a in pid)
    img = base64.b64encode(png).decode("ascii")
    model, dataset = info.get("model", "?"), info.get("dataset", "?")
    note = ""
    if report_model is not None and str(report_model) != str(model):
        note = (f"<p class='warn'>This comparison was run on {escape(str(model))}, not on this report's model "
                f"{escape(str(report_model))}.</p>")
    return f"""<{heading}>PID beside the methods people use today: {escape(str(model))} on {escape(str(dataset))} (N = {info.get('n', '?')})</{heading}>
{note}<figure><img src="data:image/png;base64,{img}" alt="compare.png" style="max-width:100%">
<figcaption>Left: each method's image share with its 95% bootstrap interval over samples; right: the PID
atoms (corrected bits, 95% interval). (compare.png)</figcaption></figure>
<table>
<thead><tr><th>method</th><th>image share</th><th>95% interval</th><th>seconds</th><th>definition</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<p>PID atoms (corrected bits; {escape(str(info.get('pid_protocol', '')))}):</p>
<table><thead><tr><th>atom</th><th>bits</th><th>95% interval</th></tr></thead><tbody>{atoms}</tbody></table>
<p>With a coalition's value taken as its information about the prediction, two-player Shapley gives each
modality U + (R + S)/2, the interaction S &minus; R, leave-one-out U + S: none of them separates redundancy
from synergy; the PID atoms do.</p>
"""


def comparison_html(data: dict[str, Any], png: bytes) -> str:
    """A self-contained page holding only the comparison section (``compare.html``)."""
    info = data.get("info", {})
    title = f"PID beside the methods people use today: {info.get('model', '?')} on {info.get('dataset', '?')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>
<style>body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto }}
table {{ border-collapse: collapse; margin: 0.6em 0 }} th, td {{ border: 1px solid #ccc; padding: 4px }}
.warn {{ background: #fff8e6 }}</style></head>
<body>
{comparison_section_html(data, png)}
</body></html>
"""
