"""The Ray engine on a local cluster: the same store, byte for byte, and the same results as the
local engine. One cluster for the module (about 5 s to start and 475 MB), shut down at the end."""

from __future__ import annotations

import filecmp
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="the Ray engine needs the 'ray' extra: pip install -e '.[test,ray]'")

from ray_cluster import local_cluster

from mmpid.pipeline import estimate_store, extract_features

EXTRACT = {"limit": 40, "batch_size": 4, "shard_size": 8, "device": "cpu", "progress": False}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    with local_cluster() as ray:
        yield ray


@pytest.fixture(scope="module")
def local_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "store"
    extract_features("zoo:normal", out, **EXTRACT)
    return out


def assert_same_tree(a: Path, b: Path) -> None:
    """Same files (temporary ones aside), byte for byte."""
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))
    assert files_a == files_b
    different = [str(f) for f in files_a if not filecmp.cmp(a / f, b / f, shallow=False)]
    assert different == []


@pytest.mark.slow
def test_ray_extraction_is_byte_identical_and_resumes(cluster: Any, local_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    store = extract_features("zoo:normal", out, engine="ray", workers=1, **EXTRACT)
    assert store.manifest["complete"] and len(store.manifest["shards"]) > 1
    assert_same_tree(local_store, out)
    # a finished store is returned as it is: no shard recomputed, the manifest unchanged
    shards = {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()}
    manifest = (out / "manifest.json").read_bytes()
    extract_features("zoo:normal", out, engine="ray", workers=1, **EXTRACT)
    assert {p: p.stat().st_mtime_ns for p in (out / "shards").iterdir()} == shards
    assert (out / "manifest.json").read_bytes() == manifest


@pytest.mark.slow
def test_ray_estimation_equals_local_to_the_last_bit(cluster: Any, local_store: Path, tmp_path: Path) -> None:
    options = {"layers": [1, 2, 3], "clusters": 3, "n_bootstrap": 4, "n_permutations": 4, "progress": False}
    local = estimate_store(local_store, tmp_path / "local", **options)
    on_ray = estimate_store(local_store, tmp_path / "ray", engine="ray", workers=2, **options)
    assert (tmp_path / "local" / "results.json").read_bytes() == (tmp_path / "ray" / "results.json").read_bytes()
    assert_same_tree(tmp_path / "local" / "layers", tmp_path / "ray" / "layers")
    assert local.to_frame().equals(on_ray.to_frame())


@pytest.mark.slow
def test_ray_estimation_with_solves_cut_into_chunk_tasks_equals_local(cluster: Any, local_store: Path) -> None:
    """One layer, 33 tables cut into Ray tasks of 8 (the layer's task waits for them): the same
    estimate as one solve in this process, to the last bit."""
    from mmpid.distributed import estimate_layers_on_ray
    from mmpid.engine import EngineOptions
    from mmpid.estimate.options import EstimateOptions
    from mmpid.pipeline import _estimate_layer
    from mmpid.store import FeatureStore

    options = EstimateOptions(clusters=3, n_bootstrap=24, n_permutations=8)
    local = _estimate_layer(FeatureStore.open(local_store), 2, options)
    engine = EngineOptions(engine="ray", workers=1, tables_per_task=8)
    [(layer, on_ray)] = list(estimate_layers_on_ray(str(local_store), [2], options, engine))
    assert layer == 2
    assert on_ray == local
    assert dict(local.records[0])  # a real estimate, not an empty one
    assert local.config["n_bootstrap"] == 24


@pytest.mark.slow
def test_cli_analyze_on_ray_gives_the_local_results(
    cluster: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the command line, with relative paths (the workers work in the driver's folder)."""
    import json

    from typer.testing import CliRunner

    from mmpid.cli import app

    args = ["--model", "zoo:normal", "--limit", "40", "--batch-size", "4", "--device", "cpu", "--layers", "2,3",
            "--clusters", "3", "--bootstrap", "4", "--permutations", "4"]
    runner = CliRunner()
    monkeypatch.chdir(tmp_path)
    for name, extra in (("local", []), ("ray", ["--engine", "ray", "--workers", "1"])):
        result = runner.invoke(app, ["analyze", *args, "--out", name, *extra])
        assert result.exit_code == 0, result.output
    assert_same_tree(tmp_path / "local" / "store", tmp_path / "ray" / "store")
    local, on_ray = (json.loads((tmp_path / k / "results.json").read_text()) for k in ("local", "ray"))
    assert local["config"].pop("store") != on_ray["config"].pop("store")  # the only difference: where
    assert local == on_ray
