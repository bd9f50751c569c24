"""The feature store: shards + manifest, round trips, config checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmpid.errors import InputError, StoreError
from mmpid.store import FeatureStore, config_hash

CONFIG = {"model": "m", "protocol": "input-fusion", "pooling": "mean"}


def _fusion_shard(rng, n, d=4, layers=3):
    out = {"x_image": rng.normal(size=(n, d)).astype(np.float32), "x_text": rng.normal(size=(n, d)).astype(np.float32)}
    for layer in range(layers):
        out[f"y.{layer}"] = rng.normal(size=(n, d)).astype(np.float32)
    out["label"] = rng.integers(0, 3, n)
    out["prediction"] = rng.integers(0, 3, n)
    return out


def test_round_trip_input_fusion(tmp_path):
    rng = np.random.default_rng(0)
    store = FeatureStore.create(tmp_path / "s", CONFIG, info={"n_layers": 3})
    a, b = _fusion_shard(rng, 5), _fusion_shard(rng, 3)
    store.write_shard(1, b, sample_ids=["f", "g", "h"], skipped=[{"id": "z", "reason": "image does not decode"}])
    store.write_shard(0, a, sample_ids=list("abcde"))
    store.write_shard(2, {}, sample_ids=[], skipped=[{"id": "y", "reason": "no image"}])
    assert store.finished_shards() == {0, 1, 2}
    store.finalize()
    st = FeatureStore.open(tmp_path / "s")
    assert st.layers == [0, 1, 2] and st.n_layers == 3 and st.n_samples == 8
    assert st.sample_ids == list("abcdefgh") and [s["id"] for s in st.skipped] == ["z", "y"]
    x1, x2, y = st.load(2)
    np.testing.assert_array_equal(x1, np.concatenate([a["x_image"], b["x_image"]]))
    np.testing.assert_array_equal(x2, np.concatenate([a["x_text"], b["x_text"]]))
    np.testing.assert_array_equal(y, np.concatenate([a["y.2"], b["y.2"]]))
    np.testing.assert_array_equal(st.load(-1)[2], y)
    np.testing.assert_array_equal(st.labels(), np.concatenate([a["label"], b["label"]]))
    m = st.manifest
    assert m["config_hash"] == config_hash(CONFIG) and m["n"] == 8 and m["complete"]
    with pytest.raises(InputError, match=r"'layer'.*\[0, 2\].*Got 3"):
        st.load(3)
    with pytest.raises(InputError, match="'layer'"):
        st.load("1")


def test_span_store_returns_int_targets(tmp_path):
    rng = np.random.default_rng(1)
    store = FeatureStore.create(tmp_path, {**CONFIG, "protocol": "span"}, info={"n_layers": 2})
    arrays = {f"x_image.{layer}": rng.normal(size=(4, 3)).astype(np.float32) for layer in range(2)}
    arrays |= {f"x_text.{layer}": rng.normal(size=(4, 3)).astype(np.float32) for layer in range(2)}
    arrays["y"] = np.array([0, 2, 1, 2])
    store.write_shard(0, arrays, sample_ids=list("abcd"))
    store.finalize()
    x1, x2, y = FeatureStore.open(tmp_path).load(1)
    assert y.dtype == np.int64 and y.tolist() == [0, 2, 1, 2]
    np.testing.assert_array_equal(x1, arrays["x_image.1"])


def test_unfinished_missing_and_corrupt(tmp_path):
    with pytest.raises(StoreError, match="manifest.json is missing"):
        FeatureStore.open(tmp_path / "none")
    FeatureStore.create(tmp_path / "s", CONFIG, info={"n_layers": 1})
    with pytest.raises(StoreError, match="unfinished.*resume"):
        FeatureStore.open(tmp_path / "s")
    (tmp_path / "s" / "manifest.json").write_text("{oops")
    with pytest.raises(StoreError, match="not valid JSON"):
        FeatureStore.open(tmp_path / "s")


def test_other_config_needs_overwrite(tmp_path):
    rng = np.random.default_rng(2)
    store = FeatureStore.create(tmp_path, CONFIG, info={"n_layers": 3})
    store.write_shard(0, _fusion_shard(rng, 2), sample_ids=["a", "b"])
    same = FeatureStore.create(tmp_path, dict(CONFIG), info={"n_layers": 3})
    assert same.finished_shards() == {0}
    with pytest.raises(StoreError, match=r"another configuration \(differs in \['pooling'\]\).*overwrite=True"):
        FeatureStore.create(tmp_path, {**CONFIG, "pooling": "max"}, info={"n_layers": 3})
    fresh = FeatureStore.create(tmp_path, {**CONFIG, "pooling": "max"}, info={"n_layers": 3}, overwrite=True)
    assert fresh.finished_shards() == set() and not list((tmp_path / "shards").iterdir())
    assert json.loads((tmp_path / "manifest.json").read_text())["config"]["pooling"] == "max"


def test_refuses_a_non_store_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(StoreError, match="not empty and holds no feature store"):
        FeatureStore.create(tmp_path, CONFIG, info={"n_layers": 1})


def test_row_count_mismatch(tmp_path):
    store = FeatureStore.create(tmp_path, CONFIG, info={"n_layers": 1})
    with pytest.raises(StoreError, match="has 3 rows for 2 samples"):
        store.write_shard(0, {"x_image": np.zeros((3, 2), np.float32)}, sample_ids=["a", "b"])


def test_shards_written_before_the_manifest(tmp_path):
    """The Ray engine's new store: make_room, shards written, then the manifest (keep_unlisted);
    a run stopped before its manifest leaves unlisted shards that the next run deletes."""
    from mmpid.store import write_shard_file

    rng = np.random.default_rng(1)
    FeatureStore.make_room(tmp_path / "s")
    entry = write_shard_file(tmp_path / "s", 0, _fusion_shard(rng, 4), sample_ids=list("abcd"))
    store = FeatureStore.create(tmp_path / "s", CONFIG, info={"n_layers": 3}, keep_unlisted=True)
    assert store.finished_shards() == set()  # written, not yet listed
    store.record_shard(entry)
    assert store.finished_shards() == {0}

    # a stopped run: shards, no manifest; the folder is a new store's, its shard files are deleted
    stopped = tmp_path / "stopped"
    FeatureStore.make_room(stopped)
    write_shard_file(stopped, 3, _fusion_shard(rng, 2), sample_ids=["x", "y"])
    assert [p.name for p in (stopped / "shards").iterdir()] == ["shard-00003.safetensors"]
    FeatureStore.create(stopped, CONFIG, info={"n_layers": 3})
    assert list((stopped / "shards").iterdir()) == []
    # ... and so does make_room
    again = tmp_path / "again"
    FeatureStore.make_room(again)
    write_shard_file(again, 1, _fusion_shard(rng, 2), sample_ids=["x", "y"])
    FeatureStore.make_room(again)
    assert list((again / "shards").iterdir()) == []


def test_make_room_refuses_what_it_must_not_delete(tmp_path):
    FeatureStore.create(tmp_path / "store", CONFIG, info={"n_layers": 1})
    with pytest.raises(StoreError, match="holds a feature store; resume it, or overwrite it"):
        FeatureStore.make_room(tmp_path / "store")
    FeatureStore.make_room(tmp_path / "store", overwrite=True)
    assert [p.name for p in (tmp_path / "store").iterdir()] == ["shards"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    for call in (lambda: FeatureStore.make_room(tmp_path / "other"), lambda: FeatureStore.create(tmp_path / "other", CONFIG)):
        with pytest.raises(StoreError, match="is not empty and holds no feature store"):
            call()
    assert (tmp_path / "other" / "notes.txt").read_text() == "mine"
