"""Results files (JSON/CSV round trip, schema errors) and the self-contained HTML report."""

from __future__ import annotations

import base64
import json
import math
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmpid.errors import InputError, StoreError
from mmpid.report import ATOMS, BIT_ATOMS, LayerResults, ReportPaths, load, render_report
from mmpid.report.results import COLUMNS, FIELDS, AtomRecord, LayerWarning
from mmpid.report.tables import format_bits, format_fraction

CONFIG = {
    "model": "tiny-llava",
    "dataset": "easy-vqa",
    "protocol": "input-fusion",
    "pooling": "mean",
    "target": "hidden-state",
    "n": 2000,
    "level": 0.9,
    "n_bootstrap": 200,
    "n_permutations": 100,
    "clusters": {"image": 8, "text": 8, "target": 8},
}


@dataclass(frozen=True)
class FakeEstimate:
    """Duck-types mmpid.estimate.Estimate: to_frame() and warnings."""

    rows: dict[str, tuple[float, float, float, float, float]]
    warnings: tuple[str, ...] = ()
    extra: dict[str, float] = field(default_factory=dict)

    def to_frame(self) -> pd.DataFrame:
        data = [
            {"atom": a, **dict(zip(FIELDS, v, strict=True)), **self.extra}
            for a, v in self.rows.items()
        ]
        return pd.DataFrame(data)


def _estimate(rng: np.random.Generator, *, undefined: bool = False, warnings=()) -> FakeEstimate:
    """Random atoms with a made-up null: corrected = plugin - null, interval around corrected."""
    rows = {}
    uniques = {}
    for atom in BIT_ATOMS:
        plugin = float(rng.uniform(0.0, 0.8))
        null = float(rng.uniform(0.0, 0.3))
        corrected = plugin - null
        half = float(rng.uniform(0.01, 0.1))
        rows[atom] = (plugin, null, corrected, corrected - half, corrected + half)
        uniques[atom] = corrected
    if undefined:
        for atom in ("contribution_image", "contribution_text"):
            rows[atom] = (math.nan,) * 5
    else:
        ui, ut = abs(uniques["unique_image"]), abs(uniques["unique_text"])
        c_text = ut / (ui + ut)
        lo, hi = max(c_text - 0.1, 0.0), min(c_text + 0.1, 1.0)
        rows["contribution_text"] = (c_text, math.nan, c_text, lo, hi)
        rows["contribution_image"] = (1 - c_text, math.nan, 1 - c_text, 1 - hi, 1 - lo)
    return FakeEstimate(rows, tuple(warnings), extra={"p_value": 0.5})


@pytest.fixture(scope="module")
def estimates() -> dict[int, FakeEstimate]:
    rng = np.random.default_rng(7)
    out = {layer: _estimate(rng) for layer in (4, 0, 1, 2, 3, 5)}  # unordered on purpose
    out[2] = _estimate(rng, undefined=True, warnings=("both uniques are within the null",))
    out[3] = _estimate(rng, warnings=("synergy is not distinguishable from the null",))
    out[4] = _estimate(rng, warnings=("synergy is not distinguishable from the null",))
    # make sure a negative corrected atom exists at the last layer
    rows = dict(out[5].rows)
    rows["synergy"] = (0.31, 0.35, -0.04, -0.09, 0.01)
    out[5] = FakeEstimate(rows, ())
    return out


@pytest.fixture(scope="module")
def results(estimates: dict[int, FakeEstimate]) -> LayerResults:
    return LayerResults.from_estimates(estimates, CONFIG, warnings=("run-wide note",))


# ---------------------------------------------------------------- building
def test_from_estimates_keeps_every_value(results, estimates) -> None:
    assert results.layers == (0, 1, 2, 3, 4, 5)
    assert len(results.records) == 6 * len(ATOMS)
    for layer, est in estimates.items():
        for atom, values in est.rows.items():
            rec = results.get(layer, atom)
            np.testing.assert_array_equal([getattr(rec, f) for f in FIELDS], values)
    assert results.get(2, "contribution_text").unit == "fraction"
    assert results.get(2, "synergy").unit == "bits"
    assert math.isnan(results.get(2, "contribution_text").corrected)
    np.testing.assert_array_equal(
        results.series("synergy", "ci_high"), [estimates[k].rows["synergy"][4] for k in range(6)]
    )
    assert results.last_layer == 5
    assert results.config == CONFIG


def test_warnings_keep_their_layer(results) -> None:
    assert results.warnings[0] == LayerWarning(None, "run-wide note")
    layered = {(w.layer, w.message) for w in results.warnings[1:]}
    assert layered == {
        (2, "both uniques are within the null"),
        (3, "synergy is not distinguishable from the null"),
        (4, "synergy is not distinguishable from the null"),
    }


def test_to_frame_is_long_format(results) -> None:
    frame = results.to_frame()
    assert list(frame.columns) == list(COLUMNS)
    assert len(frame) == len(results.layers) * len(ATOMS)
    assert frame.groupby("layer")["atom"].apply(tuple).tolist() == [ATOMS] * 6
    assert frame["layer"].dtype == np.int64
    row = frame[(frame.layer == 5) & (frame.atom == "synergy")].iloc[0]
    assert (row.plugin, row.null_mean, row.corrected) == (0.31, 0.35, -0.04)


def test_to_dict_writes_null_for_nan(results) -> None:
    doc = results.to_dict()
    assert set(doc) == {"mmpid_version", "config", "layers", "warnings", "records"}
    rec = next(r for r in doc["records"] if r["layer"] == 2 and r["atom"] == "contribution_text")
    assert rec == {"layer": 2, "atom": "contribution_text", "plugin": None, "null_mean": None,
                   "corrected": None, "ci_low": None, "ci_high": None}
    json.dumps(doc, allow_nan=False)  # raises if any NaN slipped through


def test_records_compare_nan_as_equal() -> None:
    a = AtomRecord(0, "contribution_text", math.nan, math.nan, math.nan, math.nan, math.nan)
    b = AtomRecord(0, "contribution_text", None, None, None, None, None)
    assert a == b and hash(a) == hash(b)
    assert a != AtomRecord(0, "contribution_text", 0.5, math.nan, math.nan, math.nan, math.nan)


# ---------------------------------------------------------------- files
def test_json_round_trip(results, tmp_path: Path) -> None:
    json_path, csv_path = results.save(tmp_path / "run")
    assert json_path.name == "results.json" and csv_path.name == "results.csv"
    assert "NaN" not in json_path.read_text()
    for source in (tmp_path / "run", json_path, str(json_path)):
        back = load(source)
        assert back == results
        pd.testing.assert_frame_equal(back.to_frame(), results.to_frame(), check_exact=True)
    assert LayerResults.load(tmp_path / "run").warnings == results.warnings


def test_csv_round_trip(results, tmp_path: Path) -> None:
    _, csv_path = results.save(tmp_path)
    frame = pd.read_csv(csv_path)
    pd.testing.assert_frame_equal(frame, results.to_frame(), check_exact=True)
    back = load(csv_path)
    assert back.records == results.records
    assert back.config == {} and back.warnings == ()


def test_from_frame_rebuilds_records(results) -> None:
    back = LayerResults.from_frame(results.to_frame(), CONFIG, warnings=results.warnings)
    assert back == results


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        (
            '{"config": {}, "layers": [0], "warnings": [], "records": []}',
            r"missing \['mmpid_version'\]",
        ),
        ('{"mmpid_version": "0.1.0", "config": [], "layers": [0], "warnings": [], "records": []}',
         "'config' must be a JSON object"),
    ],
)
def test_bad_json_files_are_store_errors(tmp_path: Path, content: str, match: str) -> None:
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(StoreError, match=match):
        load(tmp_path)


def test_schema_errors_name_the_problem(results, tmp_path: Path) -> None:
    doc = results.to_dict()
    doc["records"] = [r for r in doc["records"] if not (r["layer"] == 3 and r["atom"] == "synergy")]
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match=r"Layer 3 lacks the atoms \['synergy'\]"):
        load(tmp_path)

    doc = results.to_dict()
    doc["records"][0]["atom"] = "synergies"
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="'atom' must be one of"):
        load(tmp_path)

    doc = results.to_dict()
    doc["records"][0]["ci_lo"] = doc["records"][0].pop("ci_low")
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match=r"lacks \['ci_low'\] and has unknown keys \['ci_lo'\]"):
        load(tmp_path)


def test_missing_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="No results file at .*results.json; run `mmpid estimate`"):
        load(tmp_path)
    with pytest.raises(StoreError, match="No results file"):
        load(tmp_path / "nope.json")
    (tmp_path / "results.txt").write_text("x")
    with pytest.raises(StoreError, match=r"must be a \.json or \.csv"):
        load(tmp_path / "results.txt")
    (tmp_path / "results.csv").write_text("layer,atom,plugin\n0,synergy,0.1\n")
    with pytest.raises(StoreError, match=r"lacks the columns \['null_mean', 'corrected'"):
        load(tmp_path / "results.csv")


# ---------------------------------------------------------------- validation
def _rows(layer: int = 0, **override: float) -> list[dict]:
    rows = [{"layer": layer, "atom": a, "plugin": 0.2, "null_mean": 0.1, "corrected": 0.1,
             "ci_low": 0.05, "ci_high": 0.15} for a in ATOMS]
    rows[0].update(override)
    return rows


def test_validation_errors() -> None:
    with pytest.raises(InputError, match="'plugin' must be finite or NaN"):
        LayerResults({}, [0], [], _rows(plugin=math.inf))
    with pytest.raises(InputError, match=r"'ci_low' \(0.3\) must not exceed 'ci_high' \(0.15\)"):
        LayerResults({}, [0], [], _rows(ci_low=0.3))
    with pytest.raises(InputError, match="holds layer 0, atom 'redundancy' twice"):
        LayerResults({}, [0], [], _rows() + _rows()[:1])
    stray = r"name layers \[1\] that 'layers' \(\[0\]\) does not list"
    with pytest.raises(InputError, match=stray):
        LayerResults({}, [0], [], _rows() + _rows(layer=1))
    with pytest.raises(InputError, match="at least one layer"):
        LayerResults({}, [], [], [])
    with pytest.raises(InputError, match="must not repeat a layer"):
        LayerResults({}, [0, 0], [], _rows())
    with pytest.raises(InputError, match="'config' must hold only JSON values"):
        LayerResults({"x": object()}, [0], [], _rows())
    with pytest.raises(InputError, match="'config' must hold only JSON values"):
        LayerResults({"level": math.nan}, [0], [], _rows())
    with pytest.raises(InputError, match="must be a number or null; got 'a'"):
        LayerResults({}, [0], [], _rows(plugin="a"))
    with pytest.raises(InputError, match=r"each warning needs exactly the keys"):
        LayerResults({}, [0], [{"layer": 0}], _rows())


def test_config_numpy_values_become_json() -> None:
    config = {"n": np.int64(5), "dims": np.arange(3), "p": Path("/tmp/x")}
    res = LayerResults(config, [0], [], _rows())
    assert res.config == {"n": 5, "dims": [0, 1, 2], "p": "/tmp/x"}


def test_from_estimates_errors() -> None:
    with pytest.raises(InputError, match="non-empty mapping .* got an empty mapping"):
        LayerResults.from_estimates({}, CONFIG)
    with pytest.raises(InputError, match=r"estimates\[0\] must have a to_frame\(\) method"):
        LayerResults.from_estimates({0: object()}, CONFIG)

    class NoCI:
        warnings = ()

        def to_frame(self) -> pd.DataFrame:
            return pd.DataFrame({"atom": list(ATOMS), "plugin": 0.0, "corrected": 0.0})

    with pytest.raises(InputError, match=r"lacks the columns \['null_mean', 'ci_low', 'ci_high'\]"):
        LayerResults.from_estimates({0: NoCI()}, CONFIG)


def test_a_real_estimate_goes_through_unchanged(tmp_path: Path) -> None:
    """The estimator's own result (not a fake) becomes records with the same atoms, in the
    same order, and the same numbers, and survives the JSON/CSV round trip."""
    from mmpid import synthetic
    from mmpid.estimate import estimate

    d = synthetic.make("unique_image", 1500, seed=0)
    est = estimate(d.x_image, d.x_text, d.y, n_bootstrap=20, n_permutations=10)
    results = LayerResults.from_estimates({3: est}, CONFIG)
    frame, expected = results.to_frame(), est.to_frame()
    assert frame["atom"].tolist() == expected["atom"].tolist()
    assert set(frame["atom"]) == {r.atom for r in results.records} == set(ATOMS)
    for name in FIELDS:
        np.testing.assert_allclose(frame[name].to_numpy(float), expected[name].to_numpy(float), rtol=0, atol=0)
    assert [w.message for w in results.warnings] == list(est.warnings)
    results.save(tmp_path)
    back = load(tmp_path).to_frame()
    for name in FIELDS:
        np.testing.assert_allclose(back[name].to_numpy(float), frame[name].to_numpy(float), rtol=1e-12)


# ---------------------------------------------------------------- report
@pytest.fixture(scope="module")
def rendered(results, tmp_path_factory) -> ReportPaths:
    out = tmp_path_factory.mktemp("report")
    return render_report(results, out)


def _data_uris(html: str) -> list[bytes]:
    found = re.findall(r'<img src="data:image/png;base64,([^"]+)"', html)
    return [base64.b64decode(m) for m in found]


def test_report_embeds_every_png(rendered: ReportPaths) -> None:
    html = rendered.html.read_text(encoding="utf-8")
    assert len(rendered.pngs) == 3
    assert all(p.parent == rendered.html.parent for p in rendered.pngs)
    embedded = _data_uris(html)
    assert embedded == [p.read_bytes() for p in rendered.pngs]
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in embedded)
    # self-contained: every src/href is a data URI, no scripts or stylesheets from elsewhere
    assert re.findall(r'src="(?!data:)', html) == []
    assert re.findall(r'href="(?!data:)', html) == []
    assert "<script" not in html and "<link" not in html
    assert html.count("<img ") == 3


def test_report_table_holds_the_values(rendered: ReportPaths, results) -> None:
    html = rendered.html.read_text(encoding="utf-8")
    summary = html.split('<table class="summary">')[1].split("</table>")[0]
    records = html.split('<table class="records">')[1].split("</table>")[0]
    for layer in results.layers:
        row = summary.split(f'<th scope="row">{layer}</th>')[1].split("</tr>")[0]
        for atom in BIT_ATOMS:
            rec = results.get(layer, atom)
            for value in (rec.corrected, rec.ci_low, rec.ci_high):
                assert format_bits(value) in row
        c = results.get(layer, "contribution_text").corrected
        assert (format_fraction(c) if not math.isnan(c) else "undefined") in row
    for rec in results.records:
        for name in FIELDS:
            assert format_bits(getattr(rec, name), digits=4) in records
    # the negative synergy at the last layer is flagged, not clamped
    last = summary.split('<th scope="row">5</th>')[1].split("</tr>")[0]
    assert '<td class="neg zero">-0.040 <span class="flag"' in last
    assert "90% bootstrap intervals" in html  # the configured level, not a hard-coded 95%


def test_report_lists_warnings_and_config(rendered: ReportPaths, results) -> None:
    html = rendered.html.read_text(encoding="utf-8")
    warnings = html.split("<h2>Warnings</h2>")[1].split("<h2>")[0]
    assert "<b>layers 3-4</b>: synergy is not distinguishable from the null" in warnings
    assert "<b>layer 2</b>: both uniques are within the null" in warnings
    assert "run-wide note" in warnings
    n_neg = sum(1 for r in results.records if r.atom in BIT_ATOMS and r.corrected < 0)
    assert n_neg > 1
    assert f"{n_neg} corrected atom values are negative" in warnings
    config = html.split("<h2>Configuration</h2>")[1].split("<h2>")[0]
    assert "<th scope=\"row\">model</th><td>tiny-llava</td>" in config
    assert '<th scope="row">clusters.text</th><td>8</td>' in config
    assert '<th scope="row">level</th><td>0.9</td>' in config
    assert "<title>mmpid: tiny-llava on easy-vqa</title>" in html


def test_single_layer_renders_bars_and_table(results, tmp_path: Path) -> None:
    one = LayerResults(CONFIG, [5], [], [r for r in results.records if r.layer == 5])
    (tmp_path / "atoms_by_layer.png").write_bytes(b"stale")
    paths = render_report(one, tmp_path, title="One <layer>")
    assert paths.atoms_by_layer is None and paths.contribution is None
    assert paths.pngs == (tmp_path / "last_layer_atoms.png",)
    assert not (tmp_path / "atoms_by_layer.png").exists()
    html = paths.html.read_text(encoding="utf-8")
    assert _data_uris(html) == [paths.last_layer.read_bytes()]
    assert "<h1>One &lt;layer&gt;</h1>" in html
    assert "no curves across layers" in html
    assert "the only analysed layer" in html


def test_render_from_a_path(results, tmp_path: Path) -> None:
    one = LayerResults(CONFIG, [0], [], [r for r in results.records if r.layer == 0])
    one.save(tmp_path)
    paths = render_report(str(tmp_path), tmp_path / "html")
    assert paths.html == tmp_path / "html" / "report.html"
    assert format_bits(one.get(0, "redundancy").corrected) in paths.html.read_text()
    with pytest.raises(InputError, match="'results' must be a LayerResults or the path"):
        render_report({"layers": [0]}, tmp_path)  # type: ignore[arg-type]
    with pytest.raises(StoreError, match="No results file"):
        render_report(tmp_path / "missing", tmp_path)


def test_plots_draw_the_numbers(results) -> None:
    from mmpid.report import plots

    fig = plots.atoms_by_layer(results)
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["bits"] * 4
    for ax, atom in zip(axes, BIT_ATOMS, strict=True):
        ydata = [np.asarray(line.get_ydata(), dtype=float) for line in ax.get_lines()]
        for name in ("corrected", "plugin", "null_mean"):
            target = results.series(atom, name)
            assert any(y.shape == target.shape and np.allclose(y, target) for y in ydata), name
        colors = {line.get_color() for line in ax.get_lines() if line.get_linestyle() == "-"}
        assert plots.ATOM_COLORS[atom] in colors
    n_neg = int((results.series("synergy") < 0).sum())
    assert n_neg >= 1  # synergy at layer 5 is below zero
    assert axes[3].get_title(loc="left").endswith(f"({n_neg} negative)")

    fig = plots.contribution_by_layer(results)
    (ax,) = fig.axes
    c = results.series("contribution_text")
    assert any(np.allclose(np.asarray(line.get_ydata(), dtype=float), c, equal_nan=True)
               for line in ax.get_lines() if len(line.get_ydata()) == len(c))


def test_import_is_light() -> None:
    code = "import sys, mmpid.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@dataclass(frozen=True)
class EstimateWithConfig(FakeEstimate):
    config: dict = field(default_factory=dict)
    clusters: dict = field(default_factory=dict)


def test_from_estimates_records_the_estimator_settings(estimates) -> None:
    def with_config(layer: int, k: int) -> EstimateWithConfig:
        cfg = {"correction": "bootstrap", "n_components": 10, "clusters_used": {"target": k}}
        return EstimateWithConfig(estimates[layer].rows, (), config=cfg, clusters={"target": k})

    res = LayerResults.from_estimates({0: with_config(0, 5), 1: with_config(1, 6)}, CONFIG)
    assert res.config["estimator"] == {"correction": "bootstrap", "n_components": 10}
    assert res.config["clusters_by_layer"] == {"0": {"target": 5}, "1": {"target": 6}}
    assert res.correction == "bootstrap"
    assert {k: res.config[k] for k in CONFIG} == CONFIG
    # the caller's own "estimator" entry wins; equal clusters add nothing
    res = LayerResults.from_estimates(
        {0: with_config(0, 5), 1: with_config(1, 5)}, {**CONFIG, "estimator": {"correction": "null"}}
    )
    assert res.correction == "null" and "clusters_by_layer" not in res.config


@pytest.mark.parametrize(
    ("rule", "label"),
    [("null", "corrected</b> = plug-in &minus; null mean"),
     ("bootstrap", "corrected</b> = 2 &times; plug-in &minus; mean of the bootstrap replicates"),
     (None, "the rule, <code>correction</code>, was not recorded")],
)
def test_report_describes_the_recorded_correction(results, rule, label) -> None:
    from mmpid.report.html import build_html

    config = {**CONFIG, "correction": rule} if rule else CONFIG
    res = LayerResults(config, results.layers, results.warnings, results.records)
    assert res.correction == rule
    assert label in build_html(res, [])
