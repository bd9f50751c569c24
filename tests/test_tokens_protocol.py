"""The tokens protocol: the paper's per-sample token sets stored, read back, and estimated.

The stored sets must be exactly the model's own (checked against ``output_hidden_states`` and
the processor's image-token positions), the per-sample estimate of a store must equal the
library call on the same arrays, and bad input must fail before any work, naming the sample.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mmpid import pipeline
from mmpid.data import load_dataset
from mmpid.errors import ModelFamilyError, OptionError, SampleSizeError, StoreError
from mmpid.estimate import estimate
from mmpid.estimate.per_sample import small_kmeans
from mmpid.extract import extract
from mmpid.models.registry import load_adapter, resolve_model
from mmpid.store import FeatureStore

N = 32  # >= 30: fewer examples make the per-sample estimator warn
FAST = {"n_bootstrap": 20, "n_permutations": 10, "progress": False}


@pytest.fixture(scope="module")
def normal():
    return load_adapter(resolve_model("zoo:normal"), device="cpu")


@pytest.fixture(scope="module")
def data():
    return load_dataset("easy-vqa", split="test", limit=N)


@pytest.fixture(scope="module")
def token_store(normal, data, tmp_path_factory) -> FeatureStore:
    # shards of 12 with batches of 4: several shards, several batches per shard, a short last shard
    return extract(normal, data, tmp_path_factory.mktemp("tokens") / "store", protocol="tokens",
                   batch_size=4, shard_size=12, progress=False)


def test_stored_token_sets_are_the_models_own(normal, data, token_store) -> None:
    x_image, x_text, _ = token_store.load_tokens(0)
    ys = [token_store.load_tokens(layer)[2] for layer in token_store.layers]
    assert token_store.sample_ids == [data[i].id for i in range(N)]
    assert len(token_store.layers) == 4  # embeddings + 3 decoder layers (the last after the norm)
    image_id = normal.model.config.image_token_index
    embed = normal.model.get_input_embeddings()
    for i in range(0, N, 4):  # one example of each batch
        s = data[i]
        inputs = normal.processor(images=[[s.image]], text=[normal.build_prompt(s.question, 1)],
                                  return_tensors="pt")
        with torch.inference_mode():
            hidden = normal.model(**inputs, output_hidden_states=True).hidden_states
        ids = inputs["input_ids"][0]
        # Y(l): the hidden states of every prompt position, exactly output_hidden_states[l]
        for layer, y in enumerate(ys):
            np.testing.assert_array_equal(y[i], hidden[layer][0].numpy())
        # X_image: hidden state 0 at the positions of the processor's image token, in order
        positions = torch.nonzero(ids == image_id).ravel()
        assert len(positions) == 16 == x_image[i].shape[0]
        np.testing.assert_array_equal(x_image[i], hidden[0][0, positions].numpy())
        # X_text: the input embeddings of the question's own tokens (no template, no specials)
        h0 = hidden[0][0].numpy()
        rows = [j for j in range(len(ids)) if (h0[j] == x_text[i]).all(axis=1).any()]
        assert len(rows) == x_text[i].shape[0]
        question = normal.tokenizer.decode(ids[rows]).replace(" ", "")
        assert question == s.question.replace(" ", "")
        np.testing.assert_array_equal(x_text[i], embed(ids[rows]).detach().numpy())


def test_pooled_view_of_a_token_store_equals_an_input_fusion_store(normal, data, token_store, tmp_path) -> None:
    fused = extract(normal, data, tmp_path / "fused", batch_size=4, shard_size=12, progress=False)
    for layer in token_store.layers:
        for a, b in zip(token_store.load(layer), fused.load(layer)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(token_store.predictions(), fused.predictions())
    np.testing.assert_array_equal(token_store.labels(), fused.labels())


def test_token_store_resumes_from_its_finished_shards(normal, data, token_store, tmp_path) -> None:
    import shutil

    copy = tmp_path / "store"
    shutil.copytree(token_store.path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["shards"] = manifest["shards"][:2]  # as if killed after two of three shards
    manifest["complete"] = False
    (copy / "manifest.json").write_text(json.dumps(manifest))
    (copy / "shards" / "shard-00002.safetensors").unlink()
    with pytest.raises(StoreError, match="unfinished"):
        FeatureStore.open(copy)
    resumed = extract(normal, data, copy, protocol="tokens", batch_size=4, shard_size=12, progress=False)
    for layer in (0, 3):
        for a, b in zip(resumed.load_tokens(layer), token_store.load_tokens(layer)):
            assert len(a) == len(b) == N
            for u, v in zip(a, b):
                np.testing.assert_array_equal(u, v)


def test_store_size_and_counts(token_store) -> None:
    counts = {v: token_store.token_counts(v) for v in ("x_image", "x_text", "y")}
    assert (counts["x_image"] == 16).all()
    assert (counts["y"] > counts["x_image"] + counts["x_text"]).all()
    d, layers = 64, 4
    floats = counts["x_image"].sum() + counts["x_text"].sum() + layers * counts["y"].sum()
    assert floats * d * 4 / N <= token_store.bytes_per_sample() <= floats * d * 4 / N + 4096


def test_per_sample_estimate_of_a_store_equals_the_library_call(token_store, tmp_path) -> None:
    results = pipeline.estimate_store(token_store.path, tmp_path / "out", layers=[1, 3], per_sample_clusters=3,
                                      **FAST)
    assert results.config["per_sample"] == "per_sample/results.json"
    doc = json.loads((tmp_path / "out" / "per_sample" / "results.json").read_text())
    assert doc["config"]["estimate_protocol"] == "per-sample"
    for layer in (1, 3):
        est = estimate(*token_store.load_tokens(layer), protocol="per-sample", clusters=3, n_bootstrap=20, seed=0)
        got = {r["atom"]: r for r in doc["records"] if r["layer"] == layer}
        for atom, row in est.to_frame().set_index("atom").iterrows():
            for field in ("plugin", "null_mean", "corrected", "ci_low", "ci_high"):
                want = row[field]
                assert (got[atom][field] is None) == bool(np.isnan(want)), (atom, field)
                if got[atom][field] is not None:
                    assert got[atom][field] == want, (layer, atom, field)
        # and the pooled results are the library call on the pooled view
        pooled = estimate(*token_store.load(layer), n_bootstrap=20, n_permutations=10, seed=0)
        np.testing.assert_array_equal(
            results.series("synergy")[[1, 3].index(layer)], pooled.synergy.corrected
        )
    # the report, rendered from the results folder, finds the per-sample results beside them
    from mmpid.report import render_report

    paths = render_report(tmp_path / "out", tmp_path / "report")
    assert paths.per_sample == tmp_path / "report" / "per_sample_by_layer.png" and paths.per_sample.is_file()
    html = paths.html.read_text()
    assert "The paper's per-sample protocol beside the pooled estimate" in html
    floor = {r["atom"]: r for r in doc["records"] if r["layer"] == 3}["redundancy"]["null_mean"]
    assert f"{floor:.3f}" in html
    assert render_report(results, tmp_path / "plain").per_sample is None  # no per-sample given


def test_length_longer_than_a_token_set_names_the_sample_before_any_work(token_store, tmp_path) -> None:
    shortest = int(token_store.token_counts("x_text").min())
    first = int(np.argmin(token_store.token_counts("x_text")))
    sample = token_store.sample_ids[first]
    with pytest.raises(SampleSizeError, match=rf"'length' is {shortest + 1} but example {first} "
                       rf"\(sample '{sample}'\) has only {shortest} tokens in its x_text token set"):
        pipeline.estimate_store(token_store.path, tmp_path / "out", length=shortest + 1, **FAST)
    assert not (tmp_path / "out" / "layers").exists()  # nothing estimated, nothing written
    # the library gives the same error on the same arrays, naming the example
    with pytest.raises(SampleSizeError, match=rf"'length' is {shortest + 1} but example {first} has a token set"):
        estimate(*token_store.load_tokens(0), protocol="per-sample", length=shortest + 1)


def test_per_sample_options_are_refused_for_a_pooled_store(normal, data, tmp_path) -> None:
    fused = extract(normal, data, tmp_path / "fused", batch_size=8, progress=False)
    with pytest.raises(OptionError, match=r"'length' must be left at its default \(None\) with protocol='input-fusion'"):
        pipeline.estimate_store(fused.path, tmp_path / "out", length=4, **FAST)
    with pytest.raises(OptionError, match=r"'per_sample_clusters' must be an int >= 1"):
        pipeline.estimate_store(fused.path, tmp_path / "out", per_sample_clusters=0, **FAST)
    with pytest.raises(StoreError, match="extract with protocol='tokens'"):
        fused.load_tokens(0)
    with pytest.raises(OptionError, match=r"'length' must be left at its default \(None\) with protocol='span'"):
        pipeline.analyze("zoo:normal", tmp_path / "a", protocol="span", length=4, progress=False)


def test_ragged_arrays_must_match_their_counts(tmp_path) -> None:
    store = FeatureStore.create(tmp_path / "s", {"protocol": "tokens"}, info={"n_layers": 1})
    arrays = {
        "x_image.tokens": np.zeros((5, 2), np.float32), "x_image.count": np.array([2, 2]),
        "label": np.zeros(2, np.int64),
    }
    with pytest.raises(StoreError, match=r"'x_image.tokens' has 5 rows but 'x_image.count' sums to 4"):
        store.write_shard(0, arrays, sample_ids=["a", "b"])
    with pytest.raises(StoreError, match=r"'x_text.tokens' has 1 rows but 'x_text.count' sums to None"):
        store.write_shard(0, {"x_text.tokens": np.zeros((1, 2))}, sample_ids=["a"])


def test_a_cross_attention_model_has_no_token_sets() -> None:
    from mmpid.models.blip import BlipVQAAdapter

    adapter = object.__new__(BlipVQAAdapter)
    with pytest.raises(ModelFamilyError, match="protocol='tokens' needs a decoder VLM.*the blip adapter"):
        adapter.run_tokens(None)  # type: ignore[arg-type]


def test_small_kmeans_finds_separated_clusters_and_is_seeded() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    truth = np.repeat(np.arange(3), 7)
    x = centres[truth] + rng.normal(scale=0.1, size=(21, 2))
    found, labels = small_kmeans(x, 3, seed=4)
    # the same partition as the truth, whatever the numbering
    assert len({(a, b) for a, b in zip(truth, labels)}) == 3
    np.testing.assert_allclose(np.sort(found, axis=0), np.sort(centres, axis=0), atol=0.1)
    again = small_kmeans(x, 3, seed=4)
    np.testing.assert_array_equal(again[1], labels)
    # k = T: every point its own cluster
    _, each = small_kmeans(x[:5], 5, seed=1)
    assert sorted(each.tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_analyze_tokens_renders_both_estimates(tmp_path) -> None:
    paths = pipeline.analyze("zoo:shuffle", tmp_path / "run", protocol="tokens", limit=40, device="cpu",
                             n_bootstrap=20, n_permutations=10, per_sample_clusters=3)
    html = paths.report_html.read_text()
    assert "The paper's per-sample protocol beside the pooled estimate" in html
    assert (tmp_path / "run" / "per_sample_by_layer.png").is_file()
    assert (tmp_path / "run" / "per_sample" / "results.json").is_file()


def _check_run_tokens(adapter, data) -> None:
    """run_tokens on a padded batch gives each example's own output_hidden_states and image tokens."""
    samples = [data[i] for i in range(4)]
    enc = adapter.encode([s.image for s in samples], [s.question for s in samples])
    act = adapter.run_tokens(enc)
    with torch.inference_mode():
        hidden = adapter.model(**adapter.forward_kwargs(enc), output_hidden_states=True).hidden_states
    ids = enc.inputs["input_ids"]
    for b in range(len(samples)):
        length = enc.lengths[b]
        want = torch.stack([h[b, :length] for h in hidden]).float().numpy()
        np.testing.assert_allclose(act.hidden[b], want, rtol=1e-5, atol=1e-6)
        positions = torch.nonzero(ids[b] == adapter.image_token_id()).ravel()
        assert len(positions) == enc.expected_image_tokens[b] == act.image[b].shape[0]
        np.testing.assert_allclose(act.image[b], hidden[0][b, positions].float().numpy(), rtol=1e-5, atol=1e-6)
        assert act.text[b].shape[0] == int(enc.text_mask[b].sum())


def test_run_tokens_on_idefics3(data) -> None:
    _check_run_tokens(load_adapter(resolve_model("zoo:shuffle"), device="cpu"), data)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["qwen2_vl", "paligemma"])
def test_run_tokens_on_other_families(family, data, tmp_path) -> None:
    from tiny_families import build_paligemma, build_qwen2_vl

    build = build_qwen2_vl if family == "qwen2_vl" else build_paligemma
    _check_run_tokens(load_adapter(str(build(tmp_path / family)), device="cpu"), data)
