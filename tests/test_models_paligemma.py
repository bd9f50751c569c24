"""PaliGemma adapter (prefix-LM attention, Gemma's scaled embeddings), through load_adapter(path)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_families import build_paligemma
from tiny_models import QUESTIONS, check_modality_isolation, easy_vqa_images, inserted_mask

from mmpid.data import load_dataset
from mmpid.extract import extract
from mmpid.models import load_adapter, supported_families
from mmpid.models.paligemma import PaliGemmaAdapter

torch.set_num_threads(1)


@pytest.fixture(scope="module", params=["gemma", "gemma2"])
def pali(request, tmp_path_factory):
    """PaliGemma (Gemma text model) and PaliGemma 2 (Gemma 2: sliding window, logit soft-capping)."""
    path = build_paligemma(tmp_path_factory.mktemp(f"paligemma_{request.param}"), text=request.param)
    return load_adapter(str(path), device="cpu")


def test_registered_and_loads_the_right_adapter(pali):
    assert "paligemma" in supported_families()
    assert type(pali) is PaliGemmaAdapter and pali.describe()["family"] == "paligemma"
    assert pali.image_token_id() == pali.tokenizer.convert_tokens_to_ids("<image>") == pali.model.config.image_token_id


def test_spans_counts_layers_and_hooks(pali):
    images = easy_vqa_images(3)
    enc = pali.encode(images, QUESTIONS)
    # 32x32 SigLIP input, patch 8: 16 image tokens, as the processor inserted and the model filled
    assert enc.n_image_tokens == enc.expected_image_tokens == [16, 16, 16]
    inserted, out = inserted_mask(pali, enc)
    attn = enc.inputs["attention_mask"].bool()
    assert torch.equal(inserted & attn, enc.image_mask & attn)
    ids = enc.inputs["input_ids"]
    for b, q in enumerate(QUESTIONS):
        # the question's tokens and nothing else: no <bos>, no "answer en" prefix, no closing "\n"
        assert pali.tokenizer.decode(ids[b][enc.text_mask[b]]).strip() == q
        assert pali.tokenizer.convert_ids_to_tokens(int(ids[b, enc.answer_index[b]])) == "\n"
    assert pali.n_layers == pali.model.config.text_config.num_hidden_layers + 1 == len(out.hidden_states)
    act = pali.run(enc)
    rows = torch.arange(3)
    for layer, h in enumerate(out.hidden_states):
        np.testing.assert_allclose(act.answer[layer], h[rows, enc.answer_index].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(act.logits, out.logits[rows, enc.answer_index].numpy(), rtol=1e-5, atol=1e-5)


def test_input_fusion_sources_are_what_the_first_layer_receives(pali):
    """X_text = sqrt(d)-scaled token embeddings (Gemma); X_image = projected SigLIP features, unscaled."""
    images = easy_vqa_images(2)
    enc = pali.encode(images, QUESTIONS[:2])
    act = pali.run(enc)
    model = pali.model.model
    with torch.no_grad():
        feats = model.multi_modal_projector(model.vision_tower(enc.inputs["pixel_values"]).last_hidden_state)
        raw = model.language_model.embed_tokens.weight
    np.testing.assert_allclose(act.image[0], feats.mean(1).numpy(), rtol=1e-5, atol=1e-6)
    scale = math.sqrt(pali.hidden_size)
    for b in range(2):
        want = raw[enc.inputs["input_ids"][b][enc.text_mask[b]]].mean(0) * scale
        np.testing.assert_allclose(act.text[0][b], want.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_modality_isolation(pali):
    check_modality_isolation(pali, easy_vqa_images(3))


def test_prefix_attention_is_bidirectional(pali):
    """The prefix (image + prompt) attends both ways: the image states after layer 1 see the question."""
    ims = easy_vqa_images(2)
    a = pali.run(pali.encode(ims, QUESTIONS[:2]))
    b = pali.run(pali.encode(ims, QUESTIONS[1:3]))
    np.testing.assert_allclose(a.image[0], b.image[0], rtol=0, atol=1e-6)
    assert np.abs(a.image[1] - b.image[1]).max() > 1e-5
    enc = pali.encode(ims, QUESTIONS[:2])
    assert (enc.inputs["token_type_ids"][enc.inputs["attention_mask"].bool()] == 0).all()


def test_several_images_per_question(pali):
    ims = easy_vqa_images(3)
    enc = pali.encode([[ims[0], ims[1]], [ims[2], ims[0]]], QUESTIONS[:2])
    assert enc.n_image_tokens == enc.expected_image_tokens == [32, 32]
    one = pali.run(pali.encode([[ims[0], ims[1]]], QUESTIONS[:1]))
    swapped = pali.run(pali.encode([[ims[0], ims[2]]], QUESTIONS[:1]))
    assert np.abs(one.image[0] - swapped.image[0]).max() > 1e-5
    np.testing.assert_allclose(one.text[0], swapped.text[0], atol=1e-6, rtol=0)


def test_batch_equals_single_examples(pali):
    """Right padding keeps PaliGemma's 1-based positions of every real token; rows equal one-example passes."""
    ims = easy_vqa_images(3)
    batch = pali.run(pali.encode(ims, QUESTIONS))
    for i in range(3):
        one = pali.run(pali.encode([ims[i]], [QUESTIONS[i]]))
        for name in ("image", "text", "answer"):
            np.testing.assert_allclose(getattr(batch, name)[:, i], getattr(one, name)[:, 0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(batch.logits[i], one.logits[0], rtol=1e-4, atol=1e-5)


def test_answer_scoring(pali):
    """Sequence scores equal the first-token logits (one-token answers) and a hand-built prefix + suffix pass."""
    ims, qs = easy_vqa_images(2), QUESTIONS[:2]
    enc = pali.encode(ims, qs)
    single = ["red", "circle", "yes"]
    conts = [pali.answer_continuation(enc.prompts[0], a) for a in single]
    assert all(len(c) == 1 for c in conts)
    logp = torch.log_softmax(torch.from_numpy(pali.run(enc).logits).double(), -1).numpy() / np.log(2)
    np.testing.assert_allclose(pali.score_answers(ims, qs, single), logp[:, [c[0] for c in conts]], atol=1e-5)

    multi = "red circle"
    cont = pali.answer_continuation(enc.prompts[0], multi)
    assert len(cont) >= 2
    got = pali.score_answers(ims, qs, [multi])[:, 0]
    for b in range(2):
        n = enc.lengths[b]
        prompt_ids = enc.inputs["input_ids"][b, :n]
        ids = torch.cat([prompt_ids, torch.tensor(cont)])[None]
        types = torch.cat([torch.zeros(n, dtype=torch.long), torch.ones(len(cont), dtype=torch.long)])[None]
        with torch.no_grad():
            logits = pali.model(
                input_ids=ids,
                pixel_values=enc.inputs["pixel_values"][b : b + 1],
                token_type_ids=types,
                attention_mask=torch.ones_like(ids),
            ).logits[0]
        lp = torch.log_softmax(logits.double(), -1)
        want = sum(float(lp[n - 1 + k, t]) for k, t in enumerate(cont)) / np.log(2)
        np.testing.assert_allclose(got[b], want, rtol=1e-5, atol=1e-5)


def test_extraction_end_to_end(pali, tmp_path):
    """The extraction loop stores one entry per layer; rows equal one-example passes."""
    data = load_dataset("easy-vqa", limit=5, seed=0)
    store = extract(pali, data, tmp_path / "fusion", batch_size=2, progress=False)
    assert store.layers == list(range(pali.n_layers)) and store.n_samples == 5
    x_image, x_text, y = store.load(pali.n_layers - 1)
    one = pali.run(pali.encode([data[4].image], [data[4].question]))
    np.testing.assert_allclose(x_image[4], one.image[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x_text[4], one.text[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[4], one.answer[-1, 0], rtol=1e-4, atol=1e-5)
    span = extract(pali, data, tmp_path / "span", protocol="span", batch_size=2, progress=False)
    xi, xt, pred = span.load(1)
    np.testing.assert_allclose(xi[4], one.image[1, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xt[4], one.text[1, 0], rtol=1e-4, atol=1e-5)
    assert pred.dtype == np.int64 and ((pred >= 0) & (pred < len(data.answers))).all()
