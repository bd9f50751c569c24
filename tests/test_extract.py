"""The extraction loop: protocols, manifest, resumption, skipped samples."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_models import build_llava

from mmpid.data import VQADataset, load_dataset
from mmpid.errors import CheckSkippedWarning, DatasetError, InputError, OptionError, StoreError
from mmpid.extract import extract
from mmpid.models import load_adapter
from mmpid.store import FeatureStore

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def adapter(tmp_path_factory):
    return load_adapter(str(build_llava(tmp_path_factory.mktemp("llava"))), device="cpu")


@pytest.fixture(scope="module")
def data():
    return load_dataset("easy-vqa", limit=24, seed=1)


def test_input_fusion_store(adapter, data, tmp_path):
    store = extract(adapter, data, tmp_path / "s", batch_size=5, shard_size=8, progress=False)
    assert store.layers == [0, 1, 2] and store.n_samples == 24
    x_image, x_text, y = store.load(2)
    assert x_image.shape == x_text.shape == y.shape == (24, 32) and x_image.dtype == np.float32
    m = store.manifest
    assert m["sample_ids"] == [s.id for s in data] and m["skipped"] == []
    assert m["protocol"] == "input-fusion" and m["pooling"] == "mean" and m["scoring"] == ["first-token"]
    assert m["model"] == adapter.model_id and m["dataset"] == "easy-vqa" and len(m["config_hash"]) == 16
    assert {"torch", "transformers", "numpy", "python"} <= set(m["versions"])
    assert m["image_token_check"] == {"checked": True, "skipped": []}
    # shard_size is rounded up to a multiple of batch_size: 10, 10, 4
    assert [s["n"] for s in m["shards"]] == [10, 10, 4]
    # rows equal single-example passes (right padding does not leak into the prompt)
    for i in (0, 13):
        act = adapter.run(adapter.encode([data[i].image], [data[i].question]))
        np.testing.assert_allclose(x_image[i], act.image[0, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(x_text[i], act.text[0, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(y[i], act.answer[2, 0], rtol=1e-4, atol=1e-5)
    # predictions are the argmax of the answer logits, labels the ground truth
    assert store.labels().tolist() == [data.label(s.answer) for s in data]
    preds = store.predictions()
    assert preds.min() >= 0 and preds.max() < len(data.answers)


def test_skipped_image_token_check_is_recorded_and_warned(adapter, data, tmp_path, monkeypatch):
    """When the processor cannot count its image tokens the check is skipped, never silently."""

    def cannot_count(self, images):
        self.image_check_skipped = "FakeProcessor._get_num_multimodal_tokens failed (TypeError: nope)"
        return None

    monkeypatch.setattr(type(adapter), "expected_image_tokens", cannot_count)
    with pytest.warns(CheckSkippedWarning, match=r"could not run: FakeProcessor.*TypeError: nope"):
        store = extract(adapter, data, tmp_path / "s", batch_size=8, progress=False)
    check = store.manifest["image_token_check"]
    assert check == {"checked": False, "skipped": ["FakeProcessor._get_num_multimodal_tokens failed (TypeError: nope)"]}
    assert all(not s["image_token_check"]["checked"] for s in store.manifest["shards"])


def test_processor_failure_is_reported_by_the_adapter(adapter, data):
    """The base adapter's count: a processor whose counter raises leaves the reason on the batch."""

    class Broken:
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def __call__(self, *a, **kw):
            return self.inner(*a, **kw)

        def _get_num_multimodal_tokens(self, **kw):
            raise TypeError("unexpected keyword")

    real = adapter.processor
    adapter.image_token_cache.clear()
    adapter.processor = Broken(real)
    try:
        enc = adapter.encode([data[0].image], [data[0].question])
    finally:
        adapter.processor = real
        adapter.image_token_cache.clear()
    assert enc.expected_image_tokens is None
    assert enc.image_check_skipped == "Broken._get_num_multimodal_tokens failed (TypeError: unexpected keyword)"
    assert adapter.encode([data[0].image], [data[0].question]).image_check_skipped is None


class _Interrupting(list):
    """The same samples, but reading sample ``at`` raises KeyboardInterrupt (a user's Ctrl-C)."""

    def __init__(self, samples, at):
        super().__init__(samples)
        self.at = at

    def __getitem__(self, i):
        if i == self.at:
            raise KeyboardInterrupt
        return super().__getitem__(i)


def _interrupting(ds: VQADataset, at: int) -> VQADataset:
    return VQADataset(_Interrupting(ds, at), name=ds.name, split=ds.split, answers=ds.answers, info=ds.info)


def test_resume_gives_identical_arrays(adapter, data, tmp_path, monkeypatch):
    full = extract(adapter, data, tmp_path / "full", batch_size=4, shard_size=8, progress=False)
    with pytest.raises(KeyboardInterrupt):
        extract(adapter, _interrupting(data, 19), tmp_path / "part", batch_size=4, shard_size=8, progress=False)
    manifest = json.loads((tmp_path / "part" / "manifest.json").read_text())
    assert [s["index"] for s in manifest["shards"]] == [0, 1] and not manifest["complete"]
    with pytest.raises(StoreError, match="unfinished"):
        FeatureStore.open(tmp_path / "part")
    calls = []
    original = type(adapter).run

    def counting_run(self, enc, **kw):
        calls.append(enc.batch_size)
        return original(self, enc, **kw)

    monkeypatch.setattr(type(adapter), "run", counting_run)
    resumed = extract(adapter, data, tmp_path / "part", batch_size=4, shard_size=8, progress=False)
    assert calls == [4, 4]  # only the last shard was computed
    for layer in full.layers:
        for a, b in zip(full.load(layer), resumed.load(layer)):
            np.testing.assert_array_equal(a, b)
    assert resumed.manifest["sample_ids"] == full.manifest["sample_ids"]


def test_resume_under_other_versions_is_refused(adapter, data, tmp_path):
    """An unfinished store is not resumed by other mmpid/torch/transformers/weights; a finished one opens."""
    with pytest.raises(KeyboardInterrupt):
        extract(adapter, _interrupting(data, 9), tmp_path / "part", batch_size=4, shard_size=8, progress=False)
    path = tmp_path / "part" / "manifest.json"
    manifest = json.loads(path.read_text())
    assert set(manifest["pins"]) == {"mmpid", "torch", "transformers", "model"} and manifest["pins"]["model"]
    manifest["pins"]["transformers"] = "4.0.0"
    path.write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"other versions \(transformers: '4.0.0' then, '.+' now\).*1 finished shard"):
        extract(adapter, data, tmp_path / "part", batch_size=4, shard_size=8, progress=False)
    full = extract(adapter, data, tmp_path / "full", batch_size=4, shard_size=8, progress=False)
    manifest = json.loads((tmp_path / "full" / "manifest.json").read_text())
    manifest["pins"]["mmpid"] = "0.0.1"
    (tmp_path / "full" / "manifest.json").write_text(json.dumps(manifest))
    again = extract(adapter, data, tmp_path / "full", batch_size=4, shard_size=8, progress=False)
    assert again.n_samples == full.n_samples  # finished: nothing would be mixed


def test_load_reads_only_the_tensors_it_needs(adapter, data, tmp_path, monkeypatch):
    """FeatureStore.load reads three tensors per shard, not every tensor of every shard."""
    import safetensors

    store = extract(adapter, data, tmp_path, batch_size=4, shard_size=8, progress=False)
    opened = []
    real = safetensors.safe_open

    class Counting:
        def __init__(self, *a, **k):
            self.inner = real(*a, **k)

        def __enter__(self):
            self.inner.__enter__()
            return self

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def keys(self):
            return self.inner.keys()

        def get_tensor(self, key):
            opened.append(key)
            return self.inner.get_tensor(key)

    monkeypatch.setattr(safetensors, "safe_open", Counting)
    store.load(store.layers[-1])
    n_shards = len([s for s in store.manifest["shards"] if s["n"]])
    last = f"y.{store.layers[-1]}"
    assert sorted(opened) == sorted(["x_image", "x_text", last] * n_shards)


def test_other_config_is_refused(adapter, data, tmp_path):
    extract(adapter, data, tmp_path, batch_size=8, progress=False)
    with pytest.raises(StoreError, match=r"differs in \['pooling'\]"):
        extract(adapter, data, tmp_path, pooling="max", batch_size=8, progress=False)
    store = extract(adapter, data, tmp_path, pooling="max", batch_size=8, overwrite=True, progress=False)
    assert store.manifest["pooling"] == "max"


def test_span_protocol(adapter, data, tmp_path):
    lab = extract(adapter, data, tmp_path / "lab", protocol="span", target="label", batch_size=8, progress=False)
    x_image, x_text, y = lab.load(1)
    assert y.dtype == np.int64 and y.tolist() == [data.label(s.answer) for s in data]
    assert x_image.shape == (24, 32)
    pred = extract(adapter, data, tmp_path / "pred", protocol="span", batch_size=8, progress=False)
    np.testing.assert_array_equal(pred.load(0)[2], pred.predictions())
    # span layer 0 is the input-fusion X
    fusion = extract(adapter, data, tmp_path / "fusion", batch_size=8, progress=False)
    np.testing.assert_array_equal(pred.load(0)[0], fusion.load(0)[0])
    np.testing.assert_array_equal(pred.load(0)[1], fusion.load(0)[1])
    np.testing.assert_array_equal(pred.predictions(), fusion.predictions())


def test_bad_samples_are_skipped_and_counted(adapter, tmp_path):
    good = load_dataset("easy-vqa", limit=3)
    (tmp_path / "bad.png").write_bytes(b"corrupt")
    long_q = " ".join(["what is the color of the shape"] * 40) + "?"
    rows = [
        {"image": good[0].image_source, "question": good[0].question, "answer": good[0].answer, "id": "ok0"},
        {"image": "bad.png", "question": "what shape?", "answer": "circle", "id": "broken"},
        {"image": good[1].image_source, "question": long_q, "answer": "red", "id": "long"},
        {"image": good[2].image_source, "question": good[2].question, "answer": good[2].answer, "id": "ok2"},
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    ds = load_dataset(str(tmp_path / "d.jsonl"))
    store = extract(adapter, ds, tmp_path / "s", batch_size=4, progress=False)
    assert store.manifest["sample_ids"] == ["ok0", "ok2"]
    reasons = {s["id"]: s["reason"] for s in store.manifest["skipped"]}
    assert set(reasons) == {"broken", "long"}
    assert "does not decode" in reasons["broken"] and "exceeds the context of 256" in reasons["long"]
    assert store.load(0)[0].shape == (2, 32)


def test_all_skipped_is_an_error(adapter, tmp_path):
    (tmp_path / "bad.png").write_bytes(b"corrupt")
    (tmp_path / "d.jsonl").write_text(json.dumps({"image": "bad.png", "question": "q?", "answer": "a"}))
    with pytest.raises(DatasetError, match="Every sample was skipped"):
        extract(adapter, load_dataset(str(tmp_path / "d.jsonl")), tmp_path / "s", progress=False)


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({"protocol": "pooled"}, "'protocol' must be one of \\['input-fusion', 'span', 'tokens'\\]; got 'pooled'"),
        ({"pooling": "median"}, "'pooling'"),
        ({"target": "truth"}, "'target'"),
        ({"batch_size": 0}, "'batch_size' must be an int >= 1; got 0"),
        ({"target": "label"}, "'target' must be left at its default .* with protocol='input-fusion'"),
        ({"shard_size": 0}, "'shard_size' must be None or an int >= 1; got 0"),
    ],
)
def test_options_are_validated(adapter, data, tmp_path, kw, match):
    with pytest.raises(OptionError, match=match):
        extract(adapter, data, tmp_path / "store", progress=False, **kw)
    assert not (tmp_path / "store").exists()


def _multi_token_dataset(tmp_path, answers):
    good = load_dataset("easy-vqa", limit=4)
    rows = [
        {"image": s.image_source, "question": s.question, "answer": answers[i % len(answers)], "id": f"m{i}"}
        for i, s in enumerate(good)
    ]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    return load_dataset(str(tmp_path / "m.jsonl"))


def test_multi_token_answers_are_scored_by_sequence(adapter, tmp_path):
    ds = _multi_token_dataset(tmp_path, ["red shape", "blue", "no"])
    span = extract(adapter, ds, tmp_path / "span", protocol="span", batch_size=4, progress=False)
    assert span.manifest["scoring"] == ["sequence"]
    ims, qs = [s.image for s in ds], [s.question for s in ds]
    want = adapter.score_answers(ims, qs, list(ds.answers)).argmax(1)
    np.testing.assert_array_equal(span.load(0)[2], want)
    fusion = extract(adapter, ds, tmp_path / "fusion", batch_size=4, progress=False)
    assert fusion.predictions().tolist() == [-1] * 4 and fusion.manifest["scoring"] == []


def test_too_many_multi_token_candidates(adapter, tmp_path):
    ds = _multi_token_dataset(tmp_path, ["red shape"])
    wide = VQADataset(list(ds), name=ds.name, split=ds.split, answers=[f"shape {i}" for i in range(65)])
    with pytest.raises(InputError, match="65 answers.*at most 64.*target='label'"):
        extract(adapter, wide, tmp_path / "s", protocol="span", progress=False)


def test_unencodable_question_is_skipped(adapter, tmp_path):
    good = load_dataset("easy-vqa", limit=2)
    rows = [
        {"image": good[0].image_source, "question": good[0].question, "answer": good[0].answer, "id": "ok"},
        {"image": good[1].image_source, "question": "<s>", "answer": "red", "id": "only-special"},
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    store = extract(adapter, load_dataset(str(tmp_path / "d.jsonl")), tmp_path / "s", progress=False)
    assert store.manifest["sample_ids"] == ["ok"]
    (reason,) = [s["reason"] for s in store.manifest["skipped"]]
    assert reason.startswith("cannot encode") and "no tokens" in reason


def test_changed_dataset_is_not_resumed(adapter, tmp_path):
    a = load_dataset("easy-vqa", limit=8, seed=0)
    extract(adapter, a, tmp_path, batch_size=8, progress=False)
    b = VQADataset(list(a)[::-1], name=a.name, split=a.split, answers=a.answers, info=a.info)
    with pytest.raises(StoreError, match="dataset_fingerprint"):
        extract(adapter, b, tmp_path, batch_size=8, progress=False)
