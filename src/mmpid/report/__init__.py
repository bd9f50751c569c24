"""Results files and the self-contained HTML report.

``mmpid.report.results`` reads, writes and validates ``results.json`` / ``results.csv``;
:func:`render_report` turns results into ``report.html`` plus PNG plots. matplotlib is imported
only when a report is rendered.
"""

from __future__ import annotations

from mmpid.report.render import ReportPaths, render_report
from mmpid.report.results import (
    ATOMS,
    BIT_ATOMS,
    CONTRIBUTIONS,
    AtomRecord,
    LayerResults,
    LayerWarning,
    load,
)

__all__ = [
    "ATOMS",
    "BIT_ATOMS",
    "CONTRIBUTIONS",
    "AtomRecord",
    "LayerResults",
    "LayerWarning",
    "ReportPaths",
    "load",
    "render_report",
]
