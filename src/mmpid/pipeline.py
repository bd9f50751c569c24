"""The main job, as library calls: extract -> estimate (per layer, resumable) -> report.

Everything the CLI does goes through here, so users can script it too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmpid.engine import EngineOptions
from mmpid.errors import EstimateWarning, OptionError
from mmpid.estimate.options import DISCRETE_ONLY, EstimateOptions
from mmpid.estimate.summary import interval_kind
from mmpid.extract_options import ExtractOptions
from mmpid.paths import check_out_dir
from mmpid.atomic import write_json_atomic
from mmpid.store import config_hash
from mmpid.versions import mmpid_version

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
    """Turn ``zoo:NAME`` into the shipped model's folder (see :func:`mmpid.models.registry.resolve_model`)."""
    from mmpid.models.registry import resolve_model as resolve

    return resolve(model)


def check_layers(layers: Sequence[int] | None) -> list[int] | None:
    """``layers`` as a list of ints (None: all); OptionError if empty or not integers."""
    if layers is None:
        return None
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise OptionError("layers", layers, "None (every layer) or a list of layer indices")
    values = list(layers)
    if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        raise OptionError("layers", values, "None (every layer) or a non-empty list of layer indices")
    return values


def _estimate_layer(store: Any, layer: int, options: EstimateOptions) -> _CachedEstimate:
    from mmpid.estimate import estimate

    if options.protocol == "per-sample":
        x_image, x_text, y = store.load_tokens(layer)
    else:
        x_image, x_text, y = store.load(layer)
    keywords = options.to_dict()
    with warnings.catch_warnings():
        # Each EstimateWarning is also in est.warnings, which goes to results.json and the report.
        warnings.simplefilter("ignore", EstimateWarning)
        est = estimate(x_image, x_text, y, **keywords)
    frame = est.to_frame()
    return _CachedEstimate(
        records=tuple(frame.to_dict(orient="records")),
        warnings=tuple(est.warnings),
        clusters={k: int(v) for k, v in dict(est.clusters).items()},
        n=int(est.n),
        config=json.loads(json.dumps(dict(est.config), default=str)),
    )


def _check_lengths(store: Any, length: int | None) -> None:
    """The library's per-sample length errors, before any work, naming the store's sample id too."""
    from mmpid.errors import SampleSizeError

    need = 2 if length is None else length
    for name in ("x_image", "x_text", "y"):
        counts = store.token_counts(name)
        short = np.flatnonzero(counts < need)
        if short.size:
            i = int(short[0])
            what = f"'length' is {length} but" if length is not None else (
                "The per-sample protocol needs at least 2 tokens per set, but"
            )
            raise SampleSizeError(
                f"{what} example {i} (sample {store.sample_ids[i]!r}) has only "
                f"{int(counts[i])} tokens in its {name} token set ({short.size} example(s) in all); "
                + ("use a smaller length or None." if length is not None else "drop those samples.")
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
    per_sample_clusters: int = 10,
    length: int | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    estimator: str = "discrete",
    progress: bool = True,
) -> Any:
    """Estimate the PID atoms of every stored layer and save ``results.json``/``results.csv``.

    Each finished layer is cached under ``out_dir/layers/``, keyed by the mmpid version, every
    estimation setting and the store's configuration, so an interrupted run resumes where it
    stopped, never recomputes a finished layer and never reuses a stale one. Every option is
    checked before the store is read and before anything is written.

    Parameters
    ----------
    store_dir : a feature store written by :func:`mmpid.extract.extract`.
    out_dir : where the results go.
    layers : the layers to estimate (default: all stored layers).
    clusters, n_bootstrap, n_permutations, level, seed : passed to :func:`mmpid.estimate`.
    per_sample_clusters, length : a ``tokens`` store only: the clusters per token set and the
        common length of the per-sample protocol (``estimate(..., protocol="per-sample")``;
        10 clusters as the paper, length None = each example's shortest set).

    A ``tokens`` store (``protocol="tokens"`` at extraction) gets two estimates per layer on
    the same examples: the pooled one, on the input-fusion variables pooled from its token
    sets (``results.json``), and the paper's per-sample one with its noise floor
    (``per_sample/results.json``; ``config["per_sample"]`` names it).
    engine, address, workers, gpus_per_worker : where the layers are estimated (one Ray task per layer) (:class:`mmpid.engine.EngineOptions`):
        ``"local"`` (this process) or ``"ray"`` (a Ray cluster; see :mod:`mmpid.distributed`).
    estimator : ``"discrete"`` (default), ``"gaussian"`` (:func:`mmpid.estimate`'s; part of
        the cache key, so switching it never reuses a layer of the other) or ``"both"``: each
        layer gets both estimates on the same features (the discrete options go to the
        discrete estimator only; the Gaussian layers are cached as ``layers/layer_gaussian_*``),
        ``results.json`` holds the discrete records, the Gaussian ones under ``"gaussian"`` and
        the atoms where the two disagree under ``"disagreements"``
        (:mod:`mmpid.estimate.compare` defines a disagreement); the CSV has both, with an
        ``estimator`` column.

    Returns
    -------
    LayerResults with one record per (layer, atom); atoms in bits, contributions as fractions.
    """
    options = EstimateOptions(
        clusters=clusters, n_bootstrap=n_bootstrap, n_permutations=n_permutations, level=level,
        seed=seed, estimator=estimator,
    )
    per_sample = per_sample_options(
        clusters=per_sample_clusters, length=length, n_bootstrap=n_bootstrap, level=level, seed=seed
    )
    engine_options = EngineOptions(engine=engine, address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    return _estimate_store(
        store_dir, check_out_dir(out_dir, "out_dir"), layers=check_layers(layers), options=options,
        per_sample=per_sample, engine=engine_options, progress=progress,
    )


#: The per-sample options' defaults: given otherwise for a store without token sets, an error.
_PER_SAMPLE_DEFAULTS = {"per_sample_clusters": 10, "length": None}


def per_sample_options(
    *, clusters: int, length: int | None, n_bootstrap: int, level: float, seed: int
) -> EstimateOptions:
    """The per-sample protocol's options for a tokens store (validated; OptionError names the flag)."""
    if isinstance(clusters, bool) or not isinstance(clusters, int) or clusters < 1:
        raise OptionError("per_sample_clusters", clusters, "an int >= 1 (the paper uses 10)")
    return EstimateOptions(
        protocol="per-sample", clusters=clusters, length=length, n_bootstrap=n_bootstrap, level=level,
        seed=seed,
    )


def _check_per_sample_applies(protocol: str, per_sample: EstimateOptions) -> None:
    """Refuse per-sample options for a protocol without token sets (they would be ignored)."""
    if protocol == "tokens":
        return
    given = {"per_sample_clusters": per_sample.clusters, "length": per_sample.length}
    for name, value in given.items():
        if value != _PER_SAMPLE_DEFAULTS[name]:
            raise OptionError(
                name, value, f"left at its default ({_PER_SAMPLE_DEFAULTS[name]!r}) with protocol={protocol!r}",
                hint="The per-sample protocol needs token sets: extract with protocol='tokens'.",
            )


#: Where the per-sample results of a tokens store go, under the estimate's output folder.
PER_SAMPLE_DIR = "per_sample"


def _estimate_store(
    store_dir: str | os.PathLike[str],
    out: Path,
    *,
    layers: list[int] | None,
    options: EstimateOptions,
    engine: EngineOptions,
    per_sample: EstimateOptions | None = None,
    progress: bool,
) -> Any:
    """`estimate_store` with validated options."""
    from mmpid.store import FeatureStore

    store = FeatureStore.open(store_dir)
    if per_sample is not None:
        _check_per_sample_applies(store.protocol, per_sample)
    if store.protocol == "tokens":
        _check_lengths(store, None if per_sample is None else per_sample.length)
    if options.estimator == "both":
        results = _estimate_both(store, store_dir, out, layers=layers, options=options,
                                 engine=engine, progress=progress)
    else:
        results = _estimate_layers(
            store, store_dir, out, layers=layers, options=options, engine=engine, progress=progress
        )
    if store.protocol == "tokens":
        ps_options = per_sample if per_sample is not None else per_sample_options(
            clusters=10, length=None, n_bootstrap=options.n_bootstrap, level=options.level, seed=options.seed
        )
        _estimate_layers(
            store, store_dir, out / PER_SAMPLE_DIR, layers=layers, options=ps_options, engine=engine,
            progress=progress, cache=out / "layers",
        )
        results = dataclasses.replace(
            results, config={**results.config, "per_sample": f"{PER_SAMPLE_DIR}/results.json"}
        )
        results.save(out)
    return results


def _estimate_both(
    store: Any,
    store_dir: str | os.PathLike[str],
    out: Path,
    *,
    layers: list[int] | None,
    options: EstimateOptions,
    engine: EngineOptions,
    progress: bool,
) -> Any:
    """Each layer's discrete and Gaussian estimate (each cached on its own), side by side,
    with the atoms where they disagree (:func:`mmpid.estimate.compare.compare_atoms`)."""
    from mmpid.estimate.compare import DISAGREEMENT_RULE, compare_atoms
    from mmpid.report.results import BIT_ATOMS

    discrete = _estimate_layers(
        store, store_dir, out, layers=layers, engine=engine, progress=progress, save=False,
        options=dataclasses.replace(options, estimator="discrete"),
    )
    gaussian = _estimate_layers(
        store, store_dir, out, layers=layers, engine=engine, progress=progress, save=False,
        options=dataclasses.replace(options, estimator="gaussian", **DISCRETE_ONLY),
        prefix="layer_gaussian",
    )

    def trio(res: Any, layer: int) -> dict[str, tuple[float, float, float]]:
        return {a: (r.corrected, r.ci_low, r.ci_high) for a in BIT_ATOMS for r in [res.get(layer, a)]}

    found = tuple(
        d for layer in discrete.layers
        for d in compare_atoms(trio(discrete, layer), trio(gaussian, layer), layer=layer)
    )
    results = dataclasses.replace(
        discrete,
        config={**discrete.config, "estimator": "both", "disagreement_rule": DISAGREEMENT_RULE},
        gaussian=gaussian,
        disagreements=found,
    )
    results.save(out)
    return results


def _estimate_layers(
    store: Any,
    store_dir: str | os.PathLike[str],
    out: Path,
    *,
    layers: list[int] | None,
    options: EstimateOptions,
    engine: EngineOptions,
    progress: bool,
    cache: Path | None = None,
    prefix: str | None = None,
    save: bool = True,
) -> Any:
    """Estimate each chosen layer of an open store with one set of options (cached per layer
    as ``cache/PREFIX_LLL.json``); write the results to ``out`` when ``save``."""
    from tqdm.auto import tqdm

    from mmpid.report.results import LayerResults

    chosen = list(store.layers) if layers is None else list(layers)
    unknown = sorted(set(chosen) - set(store.layers))
    if unknown:
        raise OptionError(
            "layers", unknown, f"layers the store holds, {store.layers[0]}..{store.layers[-1]}"
        )
    manifest = dict(store.manifest)
    # The cache key: everything that decides a layer's numbers (the version of mmpid, every
    # estimation setting, the store's configuration), so a stale file is never reused.
    key = config_hash(
        {
            "mmpid": mmpid_version(),
            "options": options.to_dict(),
            "store": manifest.get("config_hash", manifest),
        }
    )
    cache = out / "layers" if cache is None else cache
    cache.mkdir(parents=True, exist_ok=True)
    if prefix is None:
        prefix = "layer_per_sample" if options.protocol == "per-sample" else "layer"
    desc = "estimate (per-sample)" if options.protocol == "per-sample" else "estimate"
    if options.estimator == "gaussian":
        desc = "estimate (gaussian)"

    estimates: dict[int, _CachedEstimate] = {}
    for layer in chosen:
        path = cache / f"{prefix}_{layer:03d}.json"
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
    todo = [layer for layer in chosen if layer not in estimates]
    if engine.is_ray:
        from mmpid.distributed import estimate_layers_on_ray

        computed = estimate_layers_on_ray(str(store.path), todo, options, engine)
    else:
        computed = ((layer, _estimate_layer(store, layer, options)) for layer in todo)
    bar = tqdm(total=len(chosen), initial=len(chosen) - len(todo), desc=desc, unit="layer",
               disable=not progress)
    with bar:
        # the driver alone writes the cache files, as each layer finishes
        for layer, est in computed:
            write_json_atomic(
                cache / f"{prefix}_{layer:03d}.json",
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
            bar.update(1)
    estimates = {layer: estimates[layer] for layer in chosen}  # in the order asked, however they finished

    first = estimates[chosen[0]]
    config = {
        **{k: manifest.get(k) for k in ("model", "dataset", "split", "protocol", "pooling", "target")},
        "n": first.n,
        "level": options.level,
        "estimator": options.estimator,
        "correction": options.correction,
        "interval": interval_kind(
            "gaussian" if options.estimator == "gaussian" and options.correction != "null"
            else options.correction,
            options.level,
        ),
        "n_bootstrap": options.n_bootstrap,
        "n_permutations": options.n_permutations,
        "seed": options.seed,
        "cluster_rule": options.clusters_json(),
        "store": str(Path(store_dir)),
    }
    if options.protocol == "per-sample":
        del config["n_permutations"]
        config.update(estimate_protocol="per-sample", length=options.length, n_shuffles=options.n_shuffles)
    if all(e.clusters == first.clusters for e in estimates.values()):
        config["clusters"] = first.clusters  # else from_estimates records clusters_by_layer
    results = LayerResults.from_estimates(estimates, config)
    if save:
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
    shard_size: int | None = None,
    device: str = "auto",
    dtype: str | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    progress: bool = True,
) -> Any:
    """Load the model (hub id, folder or ``zoo:NAME``) and the dataset, and write a feature store.

    Every option is checked before the model loads, and nothing is written before the model
    and the dataset have loaded. Returns the :class:`mmpid.store.FeatureStore`; resumes an
    unfinished one of the same configuration. With ``engine="ray"`` a pool of ``workers`` Ray
    actors (each holding ``gpus_per_worker`` GPUs) computes the shards, and the store is
    byte-identical to the local engine's (:func:`mmpid.distributed.extract_on_ray`).
    """
    options = ExtractOptions(
        dataset=dataset, split=split, limit=limit, data_seed=data_seed, columns=columns,
        protocol=protocol, pooling=pooling, target=target, batch_size=batch_size, shard_size=shard_size,
        device=device, dtype=dtype,
    )
    engine_options = EngineOptions(engine=engine, address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    store = check_out_dir(store_dir, "store_dir")
    if engine_options.is_ray:
        from mmpid.distributed import extract_on_ray

        return extract_on_ray(resolve_model(model), store, options, engine_options, progress=progress)
    adapter, data = _load(resolve_model(model), options)
    return _extract(adapter, data, store, options, progress=progress)


def _load(model: str, options: ExtractOptions) -> tuple[Any, Any]:
    """The model and the dataset; the dataset first, since it usually fails (or loads) faster."""
    from mmpid.data import load_dataset
    from mmpid.models.registry import load_adapter

    data = load_dataset(
        options.dataset, split=options.split, limit=options.limit, seed=options.data_seed,
        columns=None if options.columns is None else dict(options.columns),
    )
    adapter = load_adapter(model, device=options.device, dtype=options.dtype)
    return adapter, data


def _extract(adapter: Any, data: Any, store_dir: Path, options: ExtractOptions, *, progress: bool) -> Any:
    from mmpid.extract import extract

    return extract(
        adapter,
        data,
        store_dir,
        protocol=options.protocol,
        pooling=options.pooling,
        target=options.target,
        batch_size=options.batch_size,
        shard_size=options.shard_size,
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
    shard_size: int | None = None,
    device: str = "auto",
    dtype: str | None = None,
    layers: Sequence[int] | None = None,
    clusters: int | str = "auto",
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    level: float = 0.95,
    seed: int = 0,
    per_sample_clusters: int = 10,
    length: int | None = None,
    engine: str = "local",
    address: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float = 0.0,
    estimator: str = "discrete",
    progress: bool = True,
) -> AnalysisPaths:
    """Extract representations, estimate the PID of every layer, and render the report.

    Writes ``out_dir/store`` (the feature store), ``out_dir/results.json``/``.csv`` and
    ``out_dir/report.html`` (with PNGs). Each stage resumes from what an earlier run finished.
    With ``protocol="tokens"`` every layer gets the pooled and the paper's per-sample estimate
    (``per_sample_clusters``, ``length``; see :func:`estimate_store`), shown side by side.
    With ``engine="ray"`` both extraction and estimation run on a Ray cluster (see
    :func:`extract_features` and :func:`estimate_store`); the driver never loads the model, so
    ``layers`` is checked against the store once it is written. ``estimator`` is
    :func:`estimate_store`'s (``"both"``: the report shows the two estimators side by side).
    """
    # every option first: a bad --level or --limit fails here, before the model loads
    extract_options = ExtractOptions(
        dataset=dataset, split=split, limit=limit, data_seed=data_seed, columns=columns,
        protocol=protocol, pooling=pooling, target=target, batch_size=batch_size, shard_size=shard_size,
        device=device, dtype=dtype,
    )
    estimate_options = EstimateOptions(
        clusters=clusters, n_bootstrap=n_bootstrap, n_permutations=n_permutations, level=level, seed=seed,
        estimator=estimator,
    )
    per_sample = per_sample_options(
        clusters=per_sample_clusters, length=length, n_bootstrap=n_bootstrap, level=level, seed=seed
    )
    _check_per_sample_applies(extract_options.protocol, per_sample)
    engine_options = EngineOptions(engine=engine, address=address, workers=workers, gpus_per_worker=gpus_per_worker)
    layers = check_layers(layers)
    out = check_out_dir(out_dir, "out_dir")
    store_dir = out / "store"
    if engine_options.is_ray:
        from mmpid.distributed import extract_on_ray
        from mmpid.engine import ray_session

        with ray_session(engine_options):  # one cluster for both stages
            out.mkdir(parents=True, exist_ok=True)
            extract_on_ray(resolve_model(model), store_dir, extract_options, engine_options, progress=progress)
            results = _estimate_store(
                store_dir, out, layers=layers, options=estimate_options, per_sample=per_sample,
                engine=engine_options, progress=progress,
            )
        return _report(results, out, store_dir, model, dataset)
    adapter, data = _load(resolve_model(model), extract_options)
    if layers is not None:
        unknown = sorted(v for v in layers if not 0 <= v < adapter.n_layers)
        if unknown:
            raise OptionError(
                "layers", unknown, f"layers the model has, 0..{adapter.n_layers - 1}"
            )
    # nothing is written before here
    out.mkdir(parents=True, exist_ok=True)
    _extract(adapter, data, store_dir, extract_options, progress=progress)
    results = _estimate_store(
        store_dir, out, layers=layers, options=estimate_options, per_sample=per_sample,
        engine=engine_options, progress=progress,
    )
    return _report(results, out, store_dir, model, dataset)


def _report(results: Any, out: Path, store_dir: Path, model: str, dataset: str) -> AnalysisPaths:
    from mmpid.report import render_report
    from mmpid.report.per_sample import load_per_sample

    report = render_report(
        results, out, title=f"mmpid: {model} on {dataset}", per_sample=load_per_sample(results, out)
    )
    return AnalysisPaths(
        out_dir=out,
        store=store_dir,
        results_json=out / "results.json",
        results_csv=out / "results.csv",
        report_html=Path(report.html),
    )
