"""The comparison section: each method's image share beside the PID atoms (reads compare.json data)."""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from mmpid.report.plots import _new_figure

__all__ = ["comparison_figure", "comparison_html"]

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


def comparison_html(data: dict[str, Any], png: bytes) -> str:
    """A self-contained page holding the comparison table and figure."""
    info = data.get("info", {})
    rows = []
    for name, m in data.get("methods", {}).items():
        s = m["image_share"]
        rows.append(f"<tr><td>{escape(name)}</td><td>{s['value']:.3f}</td>"
                    f"<td>[{s['ci_low']:.3f}, {s['ci_high']:.3f}]</td><td>{m['cost'].get('seconds', 0):.1f}</td>"
                    f"<td style='text-align:left'>{escape(m['definition'])}</td></tr>")
    for name, e in data.get("errors", {}).items():
        rows.append(f"<tr><td>{escape(name)}</td><td colspan=4 style='text-align:left'>not run: {escape(e)}</td></tr>")
    pid = data.get("pid", {})
    atoms = "".join(f"<tr><td>{_ATOM_LABEL[a]}</td><td>{pid[a]['value']:.3f}</td>"
                    f"<td>[{pid[a]['ci_low']:.3f}, {pid[a]['ci_high']:.3f}]</td></tr>" for a in _ATOMS if a in pid)
    img = base64.b64encode(png).decode("ascii")
    title = f"PID beside the methods people use today: {info.get('model', '?')} on {info.get('dataset', '?')}"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>
<body style="font-family: sans-serif; max-width: 1100px; margin: 2em auto">
<h2>{escape(title)} (N = {info.get('n', '?')})</h2>
<figure><img src="data:image/png;base64,{img}" alt="compare.png" style="max-width:100%"></figure>
<table border="1" cellpadding="4" style="border-collapse: collapse">
<thead><tr><th>method</th><th>image share</th><th>95% interval</th><th>seconds</th><th>definition</th></tr></thead>
<tbody>{''.join(rows)}</tbody></table>
<h3>PID atoms (corrected bits; {escape(str(info.get('pid_protocol', '')))})</h3>
<table border="1" cellpadding="4" style="border-collapse: collapse"><tbody>{atoms}</tbody></table>
<p>Two-player Shapley gives each modality U + (R + S)/2, the interaction S &minus; R, leave-one-out U + S:
none of them separates redundancy from synergy.</p>
</body></html>
"""
