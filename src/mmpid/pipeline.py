"""The main job, as library calls: extract -> estimate (per layer, resumable) -> report.

Everything the CLI does goes through here, so users can script it too.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmpid.errors import EstimateWarning, InputError
from mmpid.store import config_hash, write_json_atomic

__all__ = ["AnalysisPaths", "analyze", "estimate_store", "extract_features", "resolve_model"]


@dataclass(frozen=True)
class AnalysisPaths:
    """Where `analyze` wrote its outputs."""

    out_dir: Path
    store: Path
    results_json: Path
    results_csv: Path
    report_html: Path

    def to_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class _CachedEstimate:
    """An estimate read back from a finished layer's cache file (duck-types `Estimate`)."""

    records: tuple[dict[str, Any], ...]
    warnings: tuple[str, ...]
    clusters: dict[str, int]
    n: int
    config: dict[str, Any]

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self.records))


def resolve_model(model: str) -> str:
    """Turn ``zoo:NAME`` into the shipped model's folder; other ids/paths pass through."""
    if model.startswith("zoo:"):
        from mmpid import zoo

        return str(zoo.resolve(model))
    return model


def _estimate_layer(store: Any, layer: int, options: dict[str, Any]) -> _CachedEstimate:
    from mmpid.estimate import estimate

    x_image, x_text, y = store.load(layer)
    with warnings.catch_warnings():
        # Each EstimateWarning is also in est.warnings, which goes to results.json and the report.
        warnings.simplefilter("ignore", EstimateWarning)
        est = estimate(x_image, x_text, y, **options)
    frame = est.to_frame()
    return _CachedEstimate(
        records=tuple(frame.to_dict(orient="records")),
        warnings=tuple(est.warnings),
        clusters={k: int(v) for k, v in dict(est.clusters).items()},
        n=int(est.n),
        config=json.loads(json.dumps(dict(est.config), default=str)),
    )


def estimate_store(
    store_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    layers: Sequence[int] | None = None,
    clusters: int | str = "auto",
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    level: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> Any:
    """Estimate the PID atoms of every stored layer and save ``results.json``/``results.csv``.

    Each finished layer is cached under ``out_dir/layers/`` (keyed by the estimation settings),
    so an interrupted run resumes where it stopped and never recomputes a finished layer.

    Parameters
    ----------
    store_dir : a feature store written by :func:`mmpid.extract.extract`.
    out_dir : where the results go.
    layers : the layers to estimate (default: all stored layers).
    clusters, n_bootstrap, n_permutations, level, seed : passed to :func:`mmpid.estimate`.

    Returns
    -------
    LayerResults with one record per (layer, atom); atoms in bits, contributions as fractions.
    """
    from tqdm.auto import tqdm

    from mmpid.report.results import LayerResults
    from mmpid.store import FeatureStore

    store = FeatureStore.open(store_dir)
    chosen = list(store.layers) if layers is None else [int(v) for v in layers]
    unknown = sorted(set(chosen) - set(store.layers))
    if unknown:
        raise InputError(
            f"The 'layers' parameter names layers {unknown} that the store does not hold; "
            f"it holds layers {list(store.layers)}."
        )
    options = {
        "clusters": clusters,
        "n_bootstrap": int(n_bootstrap),
        "n_permutations": int(n_permutations),
        "level": float(level),
        "seed": int(seed),
    }
    manifest = dict(store.manifest)
    key = config_hash({"options": options, "store": manifest.get("config_hash", manifest)})
    out = Path(out_dir)
    cache = out / "layers"
    cache.mkdir(parents=True, exist_ok=True)

    estimates: dict[int, _CachedEstimate] = {}
    for layer in tqdm(chosen, desc="estimate", unit="layer", disable=not progress):
        path = cache / f"layer_{layer:03d}.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                estimates[layer] = _CachedEstimate(
                    records=tuple(saved["records"]),
                    warnings=tuple(saved["warnings"]),
                    clusters=dict(saved["clusters"]),
                    n=int(saved["n"]),
                    config=dict(saved["config"]),
                )
                continue
        est = _estimate_layer(store, layer, options)
        write_json_atomic(
            path,
            {
                "key": key,
                "layer": layer,
                "records": list(est.records),
                "warnings": list(est.warnings),
                "clusters": est.clusters,
                "n": est.n,
                "config": est.config,
            },
        )
        estimates[layer] = est

    first = estimates[chosen[0]]
    config = {
        **{k: manifest.get(k) for k in ("model", "dataset", "split", "protocol", "pooling", "target")},
        "n": first.n,
        "level": options["level"],
        "n_bootstrap": options["n_bootstrap"],
        "n_permutations": options["n_permutations"],
        "seed": options["seed"],
        "cluster_rule": clusters,
        "store": str(Path(store_dir)),
    }
    if all(e.clusters == first.clusters for e in estimates.values()):
        config["clusters"] = first.clusters  # else from_estimates records clusters_by_layer
    results = LayerResults.from_estimates(estimates, config)
    results.save(out)
    return results


def extract_features(
    model: str,
    store_dir: str | os.PathLike[str],
    *,
    dataset: str = "easy-vqa",
    split: str = "test",
    limit: int | None = None,
    data_seed: int = 0,
    columns: dict[str, str] | None = None,
    protocol: str = "input-fusion",
    pooling: str = "mean",
    target: str = "prediction",
    batch_size: int = 16,
    device: str = "auto",
    dtype: str | None = None,
    progress: bool = True,
) -> Any:
    """Load the model (hub id, folder or ``zoo:NAME``) and the dataset, and write a feature store.

    Returns the :class:`mmpid.store.FeatureStore`; resumes an unfinished one of the same configuration.
    """
    from mmpid.data import load_dataset
    from mmpid.extract import extract
    from mmpid.models.registry import load_adapter

    adapter = load_adapter(resolve_model(model), device=device, dtype=dtype)
    data = load_dataset(dataset, split=split, limit=limit, seed=data_seed, columns=columns)
    return extract(
        adapter,
        data,
        store_dir,
        protocol=protocol,
        pooling=pooling,
        target=target,
        batch_size=batch_size,
        progress=progress,
    )


def analyze(
    model: str,
    out_dir: str | os.PathLike[str],
    *,
    dataset: str = "easy-vqa",
    split: str = "test",
    limit: int | None = None,
    data_seed: int = 0,
    columns: dict[str, str] | None = None,
    protocol: str = "input-fusion",
    pooling: str = "mean",
    target: str = "prediction",
    batch_size: int = 16,
    device: str = "auto",
    dtype: str | None = None,
    layers: Sequence[int] | None = None,
    clusters: int | str = "auto",
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    level: float = 0.95,
    seed: int = 0,
    progress: bool = True,
) -> AnalysisPaths:
    """Extract representations, estimate the PID of every layer, and render the report.

    Writes ``out_dir/store`` (the feature store), ``out_dir/results.json``/``.csv`` and
    ``out_dir/report.html`` (with PNGs). Each stage resumes from what an earlier run finished.
    """
    from mmpid.report import render_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    store_dir = out / "store"
    extract_features(
        model,
        store_dir,
        dataset=dataset,
        split=split,
        limit=limit,
        data_seed=data_seed,
        columns=columns,
        protocol=protocol,
        pooling=pooling,
        target=target,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        progress=progress,
    )
    results = estimate_store(
        store_dir,
        out,
        layers=layers,
        clusters=clusters,
        n_bootstrap=n_bootstrap,
        n_permutations=n_permutations,
        level=level,
        seed=seed,
        progress=progress,
    )
    report = render_report(results, out, title=f"mmpid: {model} on {dataset}")
    return AnalysisPaths(
        out_dir=out,
        store=store_dir,
        results_json=out / "results.json",
        results_csv=out / "results.csv",
        report_html=Path(report.html),
    )
