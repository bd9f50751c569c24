"""BLIP VQA adapter (cross-attention fusion), through load_adapter(path)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from tiny_families import build_blip_vqa
from tiny_models import QUESTIONS, check_modality_isolation, easy_vqa_images

from mmpid.data import load_dataset
from mmpid.errors import InputError, ModelFamilyError
from mmpid.extract import extract
from mmpid.models import load_adapter, supported_families
from mmpid.models.blip import BlipVQAAdapter

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def blip_path(tmp_path_factory):
    return build_blip_vqa(tmp_path_factory.mktemp("blip"))


@pytest.fixture(scope="module")
def blip(blip_path):
    return load_adapter(str(blip_path), device="cpu")


def _reference(blip, enc):
    """Vision output and text-encoder hidden states from the model's own forward (output_hidden_states)."""
    m = blip.model
    with torch.no_grad():
        image_embeds = m.vision_model(pixel_values=enc.inputs["pixel_values"]).last_hidden_state
        text = m.text_encoder(
            input_ids=enc.inputs["input_ids"],
            attention_mask=enc.inputs["attention_mask"],
            encoder_hidden_states=image_embeds,
            output_hidden_states=True,
        )
    return image_embeds, text


def test_registered_and_loads_the_right_adapter(blip):
    assert "blip" in supported_families()
    assert type(blip) is BlipVQAAdapter
    info = blip.describe()
    assert info["family"] == "blip" and info["n_layers"] == 3 and info["image_hidden_size"] == 32


def test_captioning_checkpoint_is_refused(blip_path, tmp_path):
    other = tmp_path / "blip_caption"
    shutil.copytree(blip_path, other)
    cfg = json.loads((other / "config.json").read_text())
    cfg["architectures"] = ["BlipForConditionalGeneration"]
    (other / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelFamilyError, match="BlipForConditionalGeneration, not a BlipForQuestionAnswering"):
        load_adapter(str(other), device="cpu")


def test_spans_counts_layers_and_hooks(blip):
    enc = blip.encode(easy_vqa_images(3), QUESTIONS)
    image_embeds, text = _reference(blip, enc)
    # 32x32 image, patch 8: 16 patches + [CLS] = the embeddings the cross-attention reads
    assert enc.n_image_tokens == enc.expected_image_tokens == [image_embeds.shape[1]] * 3 == [17] * 3
    ids = enc.inputs["input_ids"]
    for b, q in enumerate(QUESTIONS):
        assert blip.tokenizer.decode(ids[b][enc.text_mask[b]]) == q  # no [CLS], [SEP] or padding
    # layers: the text encoder's input embeddings + one hidden state per (cross-attention) layer
    assert blip.n_layers == blip.model.config.text_config.num_hidden_layers + 1 == len(text.hidden_states)
    act = blip.run(enc)
    assert act.image.shape == act.text.shape == act.answer.shape == (3, 3, 32)
    for layer, h in enumerate(text.hidden_states):
        np.testing.assert_allclose(act.answer[layer], h[:, 0].numpy(), rtol=1e-5, atol=1e-6)  # [CLS]
        for b in range(3):
            want = h[b][enc.text_mask[b]].mean(0).numpy()
            np.testing.assert_allclose(act.text[layer][b], want, rtol=1e-5, atol=1e-6)
        # the image stream is what the cross-attention reads, the same at every layer
        np.testing.assert_allclose(act.image[layer], image_embeds.mean(1).numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "max"])
def test_pooling_matches_hand_computation(blip, pooling):
    enc = blip.encode(easy_vqa_images(2), QUESTIONS[:2])
    act = blip.run(enc, pooling=pooling)
    image_embeds, text = _reference(blip, enc)
    for b in range(2):
        rows = text.hidden_states[1][b][enc.text_mask[b]]
        want = rows[-1] if pooling == "last" else rows.amax(0)
        np.testing.assert_allclose(act.text[1][b], want.numpy(), rtol=1e-5, atol=1e-6)
        img = image_embeds[b][-1] if pooling == "last" else image_embeds[b].amax(0)
        np.testing.assert_allclose(act.image[2][b], img.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(InputError, match="'pooling'.*Got 'median'"):
        blip.run(enc, pooling="median")


def test_modality_isolation(blip):
    check_modality_isolation(blip, easy_vqa_images(3))


def test_logits_are_the_decoders_first_step_and_batch_independent(blip):
    """Questions of different lengths in one batch give the logits of one-question calls."""
    ims = easy_vqa_images(3)
    enc = blip.encode(ims, QUESTIONS)
    assert len(set(enc.lengths)) == 3
    batch = blip.run(enc)
    m = blip.model
    for i in range(3):
        one = blip.encode([ims[i]], [QUESTIONS[i]])
        _, text = _reference(blip, one)
        with torch.no_grad():
            ref = m.text_decoder(
                input_ids=torch.tensor([[m.config.text_config.bos_token_id]]),
                encoder_hidden_states=text.last_hidden_state,
                use_cache=False,
            ).logits[0, -1]
        np.testing.assert_allclose(batch.logits[i], ref.numpy(), rtol=1e-5, atol=1e-6)
        single = blip.run(one)
        for name in ("image", "text", "answer"):
            np.testing.assert_allclose(getattr(batch, name)[:, i], getattr(single, name)[:, 0], rtol=1e-5, atol=1e-6)


def test_answer_scoring(blip):
    """One-token answers: the first-step logits. Longer answers: the model's own decoder loss."""
    ims, qs = easy_vqa_images(2), QUESTIONS[:2]
    enc = blip.encode(ims, qs)
    single = ["red", "circle", "yes"]
    conts = [blip.answer_continuation(enc.prompts[0], a) for a in single]
    assert all(len(c) == 1 for c in conts)
    logp = torch.log_softmax(torch.from_numpy(blip.run(enc).logits).double(), -1).numpy() / np.log(2)
    np.testing.assert_allclose(blip.score_answers(ims, qs, single), logp[:, [c[0] for c in conts]], atol=1e-5)

    multi = "red circle"
    cont = blip.answer_continuation(enc.prompts[0], multi)
    assert len(cont) == 2
    got = blip.score_answers(ims, qs, [multi])[:, 0]
    for b in range(2):
        one = blip.encode([ims[b]], [qs[b]])
        labels = torch.tensor([[blip.model.decoder_start_token_id, *cont]])
        with torch.no_grad():
            loss = blip.model(**one.inputs, labels=labels).loss  # mean cross-entropy (nats) over the answer tokens
        np.testing.assert_allclose(got[b], -float(loss) * len(cont) / np.log(2), rtol=1e-5, atol=1e-5)


def test_unknown_words_stay_in_the_question_span(blip):
    """[UNK] is a special token but stands for a question word: it belongs to X_text's span."""
    q = "what is the zorblax shape?"
    enc = blip.encode(easy_vqa_images(1), [q])
    ids = enc.inputs["input_ids"][0]
    unk = ids == blip.tokenizer.unk_token_id
    assert int(unk.sum()) >= 1 and bool(enc.text_mask[0][unk].all())
    n_words = len(blip.tokenizer.tokenize(q))
    assert int(enc.text_mask[0].sum()) == n_words == enc.lengths[0] - 2  # all but [CLS] and [SEP]


def test_one_image_per_question(blip):
    ims = easy_vqa_images(2)
    with pytest.raises(InputError, match="exactly one image per question. Got 2"):
        blip.encode([[ims[0], ims[1]]], QUESTIONS[:1])
    with pytest.raises(InputError, match="same length. Got 2 and 1"):
        blip.encode(ims, QUESTIONS[:1])


def test_extraction_end_to_end(blip, tmp_path):
    """The extraction loop stores one entry per layer; rows equal one-example passes."""
    data = load_dataset("easy-vqa", limit=5, seed=0)
    store = extract(blip, data, tmp_path / "fusion", batch_size=2, progress=False)
    assert store.layers == list(range(blip.n_layers)) and store.n_samples == 5
    x_image, x_text, y = store.load(blip.n_layers - 1)
    one = blip.run(blip.encode([data[4].image], [data[4].question]))
    np.testing.assert_allclose(x_image[4], one.image[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x_text[4], one.text[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[4], one.answer[-1, 0], rtol=1e-4, atol=1e-5)
    span = extract(blip, data, tmp_path / "span", protocol="span", batch_size=2, progress=False)
    xi, xt, pred = span.load(1)
    np.testing.assert_allclose(xi[4], one.image[1, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xt[4], one.text[1, 0], rtol=1e-4, atol=1e-5)
    assert pred.dtype == np.int64 and ((pred >= 0) & (pred < len(data.answers))).all()
