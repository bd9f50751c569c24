"""render_report: results in, one self-contained report.html plus its PNGs out."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mmpid.atomic import write_text_atomic
from mmpid.errors import InputError
from mmpid.paths import check_out_dir
from mmpid.report.html import Figure, build_html
from mmpid.report.results import LayerResults, level_text, load

__all__ = ["ReportPaths", "render_report"]

REPORT_HTML = "report.html"
ATOMS_PNG = "atoms_by_layer.png"
CONTRIBUTION_PNG = "contribution_by_layer.png"
LAST_LAYER_PNG = "last_layer_atoms.png"
PER_SAMPLE_PNG = "per_sample_by_layer.png"
COMPARE_PNG = "compare.png"


@dataclass(frozen=True)
class ReportPaths:
    """Where :func:`render_report` wrote the report.

    ``atoms_by_layer`` and ``contribution`` are None for a single-layer result (no curves);
    ``per_sample`` is None unless the per-sample protocol's results were shown; ``compare`` is
    None unless the folder held a ``compare.json`` (the comparison section was shown).
    """

    html: Path
    last_layer: Path
    atoms_by_layer: Path | None = None
    contribution: Path | None = None
    per_sample: Path | None = None
    compare: Path | None = None

    @property
    def pngs(self) -> tuple[Path, ...]:
        """Every PNG written, in page order."""
        return tuple(
            p for p in (self.atoms_by_layer, self.contribution, self.last_layer, self.per_sample, self.compare) if p
        )

    def to_dict(self) -> dict[str, str | None]:
        return {k: None if v is None else str(v) for k, v in self.__dict__.items()}


def render_report(
    results: LayerResults | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    title: str | None = None,
    per_sample: LayerResults | None = None,
) -> ReportPaths:
    """Render results as ``out_dir/report.html`` (self-contained) plus the PNGs beside it.

    The page holds: the atoms R, U_image, U_text, S across layers (corrected, with bootstrap
    bands, plug-in and null mean); the text contribution across layers with its band; the four
    atoms at the last layer as stacked bars (negative atoms below zero, flagged) and with their
    intervals; a table; when ``out_dir`` holds a ``compare.json`` (written by ``mmpid compare``),
    the comparison section (each method's image share beside the PID atoms: one figure, one
    table); the warnings; the configuration. A single-layer result gets the bars
    and the table only. Figures are drawn with matplotlib's Agg renderer, without pyplot.

    Parameters
    ----------
    results : a :class:`LayerResults`, or the path of ``results.json`` / the folder holding it.
    out_dir : the folder to write into (created if needed).
    title : the page title (default: ``mmpid: MODEL on DATASET`` from the configuration).
    per_sample : the paper's per-sample estimate of the same layers (from a tokens store), shown
        beside the pooled one in a table and ``per_sample_by_layer.png``. When ``results`` is a
        path and this is None, the per-sample results its configuration names are read too.

    Returns
    -------
    ReportPaths with the paths of the HTML file and of each PNG.
    """
    if isinstance(results, (str, os.PathLike)):
        path = Path(results)
        results = load(path)
        if per_sample is None:
            from mmpid.report.per_sample import load_per_sample

            per_sample = load_per_sample(results, path if path.is_dir() else path.parent)
    elif not isinstance(results, LayerResults):
        raise InputError(
            "'results' must be a LayerResults or the path of a results.json file or folder; "
            f"got {type(results).__name__}."
        )
    if title is not None and not isinstance(title, str):
        raise InputError(f"'title' must be a string or None; got {type(title).__name__}.")
    if per_sample is not None and not isinstance(per_sample, LayerResults):
        raise InputError(f"'per_sample' must be a LayerResults or None; got {type(per_sample).__name__}.")
    out = check_out_dir(out_dir, "out_dir")
    out.mkdir(parents=True, exist_ok=True)
    return _render_report(results, out, title=title, per_sample=per_sample)


def _render_report(
    results: LayerResults, out: Path, *, title: str | None, per_sample: LayerResults | None = None
) -> ReportPaths:
    from mmpid.report import plots

    level = level_text(results)
    figures: list[Figure] = []
    multi = len(results.layers) > 1
    if multi:
        figures.append(
            Figure(
                ATOMS_PNG,
                "The four PID atoms across layers, in bits. Solid: bias-corrected value "
                f"with its {level} bootstrap band; dotted: "
                "plug-in; dashed grey: permutation-null mean; ▼: negative corrected value.",
                _png(plots.atoms_by_layer(results)),
            )
        )
        figures.append(
            Figure(
                CONTRIBUTION_PNG,
                "Text contribution U<sub>text</sub>/(U<sub>image</sub>+U<sub>text</sub>) across "
                f"layers with its {level} bootstrap band; above 50% the text carries more "
                "unique information than the image. ×: undefined (both uniques about zero).",
                _png(plots.contribution_by_layer(results)),
            )
        )
    else:  # remove curves left by an earlier multi-layer report in the same folder
        for stale in (ATOMS_PNG, CONTRIBUTION_PNG):
            (out / stale).unlink(missing_ok=True)
    figures.append(
        Figure(
            LAST_LAYER_PNG,
            f"The atoms at layer {results.last_layer}. Left: plug-in and corrected atoms "
            "stacked (negative atoms below zero, hatched). Right: each corrected atom with "
            f"its {level} interval, plug-in and null mean.",
            _png(plots.last_layer_atoms(results)),
        )
    )
    if per_sample is not None:
        from mmpid.report.per_sample import per_sample_by_layer

        figures.append(
            Figure(
                PER_SAMPLE_PNG,
                "The paper's per-sample protocol beside the pooled estimate, per layer, in bits. "
                "Coloured: pooled corrected value with its band; black squares: the per-sample "
                "plug-in (the paper's figure); dashed grey: its noise floor (targets shuffled "
                "across examples); dotted: plug-in minus floor, with its band.",
                _png(per_sample_by_layer(results, per_sample)),
            )
        )
    else:
        (out / PER_SAMPLE_PNG).unlink(missing_ok=True)
    for fig in figures:
        (out / fig.name).write_bytes(fig.png)
    comparison, compare_png = _comparison(out, results)
    html_path = out / REPORT_HTML
    write_text_atomic(
        html_path, build_html(results, figures, title=title, per_sample=per_sample, comparison=comparison)
    )
    return ReportPaths(
        html=html_path,
        last_layer=out / LAST_LAYER_PNG,
        atoms_by_layer=out / ATOMS_PNG if multi else None,
        contribution=out / CONTRIBUTION_PNG if multi else None,
        per_sample=out / PER_SAMPLE_PNG if per_sample is not None else None,
        compare=compare_png,
    )


def _comparison(out: Path, results: LayerResults) -> tuple[str, Path | None]:
    """The comparison section of ``out/compare.json`` (and its refreshed PNG), or ("", None)."""
    from mmpid.report.compare import comparison_figure, comparison_section_html, load_comparison

    data = load_comparison(out)
    if data is None:
        return "", None
    png = _png(comparison_figure(data))
    (out / COMPARE_PNG).write_bytes(png)
    return comparison_section_html(data, png, report_model=results.config.get("model")), out / COMPARE_PNG


def _png(fig: object) -> bytes:
    from mmpid.report.plots import figure_png

    return figure_png(fig)  # type: ignore[arg-type]
