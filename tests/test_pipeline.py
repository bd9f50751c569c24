"""The pipeline's per-layer estimate cache: reused only when nothing that decides the numbers changed."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from fake_store import write_fake_store

from mmpid import pipeline
from mmpid.estimate import estimate
from mmpid.estimate.options import EstimateOptions

FAST = {"n_bootstrap": 20, "n_permutations": 10, "progress": False}


def test_every_estimate_keyword_is_an_option() -> None:
    """The cache key is built from EstimateOptions: a keyword of estimate() missing from it would
    let a changed setting reuse a stale layer."""
    keywords = {
        name for name, p in inspect.signature(estimate).parameters.items() if p.kind is p.KEYWORD_ONLY
    }
    assert keywords <= set(EstimateOptions().to_dict())


def test_layer_cache_is_keyed_by_version_and_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = write_fake_store(tmp_path / "store")
    out = tmp_path / "out"
    calls: list[int] = []
    real = pipeline._estimate_layer

    def counting(store_: object, layer: int, options: EstimateOptions) -> object:
        calls.append(layer)
        return real(store_, layer, options)

    monkeypatch.setattr(pipeline, "_estimate_layer", counting)
    first = pipeline.estimate_store(store, out, layers=[1], **FAST)
    assert calls == [1]
    key = json.loads((out / "layers" / "layer_001.json").read_text())["key"]
    again = pipeline.estimate_store(store, out, layers=[1], **FAST)
    assert calls == [1]  # reused
    assert [r.to_dict() for r in again.records] == [r.to_dict() for r in first.records]
    pipeline.estimate_store(store, out, layers=[1], level=0.9, **FAST)
    assert calls == [1, 1]  # another setting: estimated again
    monkeypatch.setattr(pipeline, "mmpid_version", lambda: "99.0")
    pipeline.estimate_store(store, out, layers=[1], level=0.9, **FAST)
    assert calls == [1, 1, 1]  # another mmpid: estimated again
    assert json.loads((out / "layers" / "layer_001.json").read_text())["key"] != key


def test_results_name_the_interval_kind(tmp_path: Path) -> None:
    """results.json's config, every row of results.csv and the report say what the interval is."""
    import pandas as pd

    from mmpid.report import render_report
    from mmpid.report.results import load

    store = write_fake_store(tmp_path / "store")
    out = tmp_path / "out"
    pipeline.estimate_store(store, out, layers=[1], **FAST)
    saved = load(out / "results.json")
    kind = saved.config["interval"]
    assert kind.startswith("95% basic bootstrap interval") and "widened" in kind
    assert saved.config["correction"] == "bootstrap"
    csv = pd.read_csv(out / "results.csv")
    assert list(csv.columns)[-1] == "interval"
    assert set(csv["interval"]) == {kind}
    report = render_report(out / "results.json", tmp_path / "report")
    html = Path(report.html).read_text()
    assert "basic bootstrap interval, centred on the corrected value" in html


def test_gaussian_estimator_through_the_pipeline(tmp_path: Path) -> None:
    """--estimator gaussian: the estimator is recorded, keys the cache and names its interval."""
    store = write_fake_store(tmp_path / "store")
    out = tmp_path / "out"
    discrete = pipeline.estimate_store(store, out, layers=[1], **FAST)
    gaussian = pipeline.estimate_store(store, out, layers=[1], estimator="gaussian", **FAST)
    assert gaussian.config["estimator"] == "gaussian" and discrete.config["estimator"] == "discrete"
    assert "Gaussian" in gaussian.config["interval"]
    assert [r.to_dict() for r in gaussian.records] != [r.to_dict() for r in discrete.records]
