"""Both estimators on the same inputs (estimator="both"): where they disagree, and why.

Known answers: XOR of two embedded bits has 1 bit of synergy and no linear trace, so the
discrete estimator sees the bit and the Gaussian PID sees 0 (a synergy disagreement, read as
nonlinear); a jointly Gaussian system whose target depends on the image alone has
U_image = -1/2 log2(1 - rho^2) = 0.5 bits and nothing else, which both see (no disagreement).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import mmpid
from mmpid import synthetic
from mmpid.cli import app
from mmpid.errors import InputError, OptionError, StoreError
from mmpid.estimate.compare import DISAGREE_BITS, compare_atoms, estimate_both
from mmpid.estimate.options import EstimateOptions
from mmpid.report.results import LayerResults, load
from mmpid.store import FeatureStore

FAST = {"n_bootstrap": 20, "n_permutations": 5}
runner = CliRunner()


def _xor(n: int, seed: int) -> synthetic.SyntheticData:
    return synthetic.make("xor", n, dim_image=16, dim_text=16, dim_target=16, seed=seed)


# ------------------------------------------------------------------------------ the rule
@pytest.mark.parametrize(
    ("d", "g", "flagged"),
    [
        ((1.0, 0.98, 1.02), (0.0, -0.02, 0.02), True),  # disjoint, 1 bit apart
        ((0.04, 0.039, 0.041), (0.0, -0.001, 0.001), False),  # disjoint, under the threshold
        ((0.30, 0.10, 0.50), (0.10, 0.00, 0.20), False),  # 0.2 bits apart, overlapping
        ((math.nan, math.nan, math.nan), (0.0, 0.0, 0.0), False),  # undefined never disagrees
    ],
)
def test_disagreement_needs_disjoint_intervals_and_a_difference_above_the_threshold(d, g, flagged) -> None:
    found = compare_atoms({"redundancy": d}, {"redundancy": g}, layer=2)
    assert bool(found) == flagged
    if flagged:
        (x,) = found
        assert x.layer == 2 and x.atom == "redundancy"
        assert x.difference == pytest.approx(d[0] - g[0]) and abs(x.difference) > DISAGREE_BITS


def test_reading_follows_the_direction() -> None:
    (s_disc,) = compare_atoms({"synergy": (1, 0.9, 1.1)}, {"synergy": (0, -0.1, 0.1)})
    (s_gauss,) = compare_atoms({"synergy": (0, -0.1, 0.1)}, {"synergy": (1, 0.9, 1.1)})
    assert "nonlinear (XOR-type)" in s_disc.reading and "cannot see it" in s_disc.reading
    assert "only the Gaussian PID sees" in s_gauss.reading
    (u,) = compare_atoms({"unique_text": (1, 0.9, 1.1)}, {"unique_text": (0, -0.1, 0.1)})
    assert "unique text information" in u.reading and "nonlinear" in u.reading


# ------------------------------------------------------------------------------ the library
def test_xor_synergy_only_the_discrete_estimator_sees() -> None:
    d = _xor(1000, seed=0)
    both = estimate_both(d.x_image, d.x_text, d.y, seed=0, **FAST)
    assert both.discrete.synergy.contains(1.0)  # the known answer: S = 1 bit
    assert abs(both.gaussian.synergy.corrected) < 0.05  # no linear trace of XOR
    (x,) = both.disagreements
    assert x.atom == "synergy" and x.layer is None
    assert x.difference == pytest.approx(both.discrete.synergy.corrected - both.gaussian.synergy.corrected)
    assert "nonlinear (XOR-type)" in x.reading
    frame = both.to_frame()
    assert list(frame["estimator"].unique()) == ["discrete", "gaussian"] and len(frame) == 12
    doc = json.loads(json.dumps(both.to_dict(), default=float))
    assert doc["disagreements"][0]["atom"] == "synergy" and "disjoint" in doc["disagreement_rule"]


def test_jointly_gaussian_unique_information_both_see() -> None:
    """y = x1 + noise with corr^2 = 1/2, x2 independent: U_image = 0.5 bits exactly, every
    other atom 0. The Gaussian PID covers it; the discrete one comes close (clusters lose a
    little of a continuous dependence); they do not disagree."""
    rng = np.random.default_rng(1)
    n = 2000
    x1 = rng.normal(size=(n, 1))
    y = x1 + rng.normal(size=(n, 1))
    x2 = rng.normal(size=(n, 1))
    both = estimate_both(x1, x2, y, seed=0, **FAST)
    truth = -0.5 * math.log2(1 - 0.5)
    assert both.gaussian.unique_image.contains(truth)
    assert abs(both.discrete.unique_image.corrected - truth) < 0.1
    for atom in ("redundancy", "unique_text", "synergy"):
        assert abs(both.gaussian[atom].corrected) < 0.02 and abs(both.discrete[atom].corrected) < 0.03
    assert both.disagreements == ()


def test_both_is_refused_where_one_estimate_is_returned() -> None:
    x = np.random.default_rng(0).normal(size=(50, 3))
    with pytest.raises(OptionError, match=r"'estimator' must be 'discrete' or 'gaussian' in estimate\(\).*"
                                          r"mmpid.estimate_both"):
        mmpid.estimate(x, x, x, estimator="both")
    with pytest.raises(InputError, match="estimate_both runs both estimators; leave 'estimator' out"):
        estimate_both(x, x, x, estimator="gaussian")
    with pytest.raises(OptionError, match="'protocol' must be 'pooled' with estimator='both'"):
        EstimateOptions(estimator="both", protocol="per-sample")
    with pytest.raises(OptionError, match=r"'estimator' must be one of \['discrete', 'gaussian', 'both'\]"):
        EstimateOptions(estimator="kde")
    # labels suit the discrete estimator only: the Gaussian one says so, before any output
    with pytest.raises(InputError, match="'y' holds labels"):
        estimate_both(x, x + 1.0, np.arange(50) % 3, **FAST)


# ------------------------------------------------------------------------------ files and CLI
def _xor_store(path: Path, *, n: int = 400, layers: int = 2) -> Path:
    """An input-fusion store whose every layer's target is the embedded XOR of the sources."""
    store = FeatureStore.create(path, {"protocol": "input-fusion", "seed": 0}, info={"n_layers": layers})
    d = _xor(n, seed=0)
    arrays = {"x_image": d.x_image, "x_text": d.x_text}
    t = d.t  # a xor b: each layer embeds it afresh
    for k in range(layers):
        rng = np.random.default_rng(100 + k)
        centres = rng.normal(size=(2, 16))
        arrays[f"y.{k}"] = centres[t] + 0.1 * rng.normal(size=(n, 16))
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    arrays.update(label=np.zeros(n, np.int64), prediction=np.zeros(n, np.int64))
    store.write_shard(0, arrays, sample_ids=[str(i) for i in range(n)])
    store.finalize()
    return path


def test_cli_both_round_trip(tmp_path: Path) -> None:
    store = _xor_store(tmp_path / "store")
    out = tmp_path / "out"
    res = runner.invoke(app, ["estimate", str(store), "--out", str(out), "--estimator", "both",
                              "--bootstrap", "20", "--permutations", "5"])
    assert res.exit_code == 0, res.output
    assert "disagree on 2 atom(s)" in res.output and "synergy" in res.output

    doc = json.loads((out / "results.json").read_text())
    assert doc["config"]["estimator"] == "both" and "disjoint" in doc["config"]["disagreement_rule"]
    assert [(d["layer"], d["atom"]) for d in doc["disagreements"]] == [(0, "synergy"), (1, "synergy")]
    assert doc["gaussian"]["config"]["estimator"] == "gaussian"
    for d in doc["disagreements"]:
        assert d["discrete"]["ci_low"] <= 1.0 <= d["discrete"]["ci_high"]  # S = 1 bit
        assert abs(d["gaussian"]["corrected"]) < 0.05

    results = load(out)
    assert results.gaussian is not None and results == load(out / "results.json")
    csv = pd.read_csv(out / "results.csv")
    assert sorted(csv["estimator"].unique()) == ["discrete", "gaussian"] and len(csv) == 24
    assert csv.groupby("estimator")["interval"].nunique().to_dict() == {"discrete": 1, "gaussian": 1}
    from_csv = load(out / "results.csv")  # the CSV alone: both estimators' records, no config
    assert from_csv.gaussian is not None and from_csv.gaussian.records == results.gaussian.records

    res = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "report")])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "report" / "report.html").read_text()
    assert "Two estimators: discrete and Gaussian" in html and "They disagree on 2 atom(s)" in html
    assert "nonlinear (XOR-type)" in html and "they disagree on 2 atom(s)" in html

    # a single-estimator run in the same folder keeps the old format, and renders without the section
    res = runner.invoke(app, ["estimate", str(store), "--out", str(out), "--bootstrap", "20",
                              "--permutations", "5"])
    assert res.exit_code == 0, res.output
    doc = json.loads((out / "results.json").read_text())
    assert set(doc) == {"mmpid_version", "config", "layers", "warnings", "records"}
    assert list(pd.read_csv(out / "results.csv")["estimator"].unique()) == ["discrete"]
    res = runner.invoke(app, ["report", str(out), "--out", str(tmp_path / "report1")])
    assert res.exit_code == 0, res.output
    assert "Two estimators" not in (tmp_path / "report1" / "report.html").read_text()


def test_cli_names_both_among_the_estimators(tmp_path: Path) -> None:
    store = _xor_store(tmp_path / "store", n=60, layers=1)
    res = runner.invoke(app, ["estimate", str(store), "--out", str(tmp_path / "o"), "--estimator", "kde"])
    assert res.exit_code == 2
    assert "--estimator must be one of ['discrete', 'gaussian', 'both']; got 'kde'" in re.sub(r"\s+", " ", res.output)


def test_results_with_both_are_validated(tmp_path: Path) -> None:
    rows = [{"layer": k, "atom": a, "plugin": 0.1, "null_mean": 0.0, "corrected": 0.1,
             "ci_low": 0.0, "ci_high": 0.2} for k in (0, 1) for a in mmpid.estimate.ATOMS]
    one = LayerResults({"estimator": "gaussian"}, [0], [], [r for r in rows if r["layer"] == 0])
    with pytest.raises(InputError, match="both estimators must cover the same layers"):
        LayerResults({}, [0, 1], [], rows, gaussian=one)
    with pytest.raises(InputError, match="'disagreements' needs the second estimator's results"):
        LayerResults({}, [0, 1], [], rows, disagreements=({"layer": 0},))
    good = LayerResults({"estimator": "both"}, [0, 1], [], rows,
                        gaussian=LayerResults({"estimator": "gaussian"}, [0, 1], [], rows))
    good.save(tmp_path)
    doc = json.loads((tmp_path / "results.json").read_text())
    assert doc["disagreements"] == []
    doc["gaussian"] = {"records": []}
    (tmp_path / "results.json").write_text(json.dumps(doc))
    with pytest.raises(StoreError, match="'gaussian' must be a JSON object with 'config'"):
        load(tmp_path)


def test_docstring_examples_run() -> None:
    import doctest

    import mmpid.estimate.compare as module

    result = doctest.testmod(module)
    assert result.attempted >= 4 and result.failed == 0
