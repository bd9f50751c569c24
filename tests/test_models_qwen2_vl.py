"""Qwen2-VL and Qwen2.5-VL adapters (dynamic resolution, M-RoPE), through load_adapter(path)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from tiny_families import build_qwen2_vl
from tiny_models import QUESTIONS, check_decoder_family, check_modality_isolation, easy_vqa_images

from mmpid.data import load_dataset
from mmpid.extract import extract
from mmpid.models import load_adapter, supported_families
from mmpid.models.qwen2_vl import Qwen2_5_VLAdapter, Qwen2VLAdapter

torch.set_num_threads(1)

VERSIONS = {"qwen2_vl": "2", "qwen2_5_vl": "2.5"}


@pytest.fixture(scope="module", params=sorted(VERSIONS))
def qwen(request, tmp_path_factory):
    path = build_qwen2_vl(tmp_path_factory.mktemp(request.param), version=VERSIONS[request.param])
    return load_adapter(str(path), device="cpu")


def test_registered_and_loads_the_right_adapter(qwen):
    assert {"qwen2_vl", "qwen2_5_vl"} <= set(supported_families())
    want = Qwen2VLAdapter if qwen.model.config.model_type == "qwen2_vl" else Qwen2_5_VLAdapter
    assert type(qwen) is want and qwen.describe()["family"] == qwen.model.config.model_type
    assert qwen.image_token_id() == qwen.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    if importlib.util.find_spec("torchvision") is None:
        # transformers' Qwen processors need torchvision for their video part; images go without it
        assert type(qwen.processor).__name__.startswith("ImageOnly")


def test_spans_counts_layers_and_hooks(qwen):
    enc, act = check_decoder_family(qwen, easy_vqa_images(3))
    # 64x64 is resized to 48x48 (max_pixels 48*48, factor 16): 6x6 patches of 8 px, merged 2x2 -> 9 tokens
    assert enc.n_image_tokens == [9, 9, 9]
    assert act.image.shape == act.text.shape == act.answer.shape == (3, 3, 32)
    # the vision markers around the image block are neither image nor question tokens
    ids = enc.inputs["input_ids"][0]
    for marker in ("<|vision_start|>", "<|vision_end|>"):
        pos = ids == qwen.tokenizer.convert_tokens_to_ids(marker)
        assert int(pos.sum()) == 1
        assert not (enc.image_mask[0] & pos).any() and not (enc.text_mask[0] & pos).any()
    # M-RoPE needs the processor's modality types; they mark exactly the image span
    assert torch.equal(enc.inputs["mm_token_type_ids"].bool(), enc.image_mask)


def test_modality_isolation(qwen):
    check_modality_isolation(qwen, easy_vqa_images(3))


def test_dynamic_resolution(qwen):
    square = easy_vqa_images(1)[0]
    # smart_resize with factor 16 in [16*16, 48*48] pixels:
    # 64x64 -> 48x48 (36 patches, 9 tokens); 80x48 -> 48x32 (24 patches, 6 tokens); 16x16 stays (4 patches, 1 token)
    images = [square, square.resize((80, 48)), square.resize((16, 16))]
    enc = qwen.encode(images, QUESTIONS)
    grid = enc.inputs["image_grid_thw"]
    merge = qwen.processor.image_processor.merge_size
    assert enc.n_image_tokens == enc.expected_image_tokens == (grid.prod(-1) // merge**2).tolist() == [9, 6, 1]
    act = qwen.run(enc)
    assert np.isfinite(act.image).all() and np.isfinite(act.answer).all()


def test_several_images_per_question(qwen):
    ims = easy_vqa_images(3)
    enc = qwen.encode([[ims[0], ims[1]], [ims[2], ims[0]]], QUESTIONS[:2])
    assert enc.n_image_tokens == enc.expected_image_tokens == [18, 18]
    one = qwen.run(qwen.encode([[ims[0], ims[1]]], QUESTIONS[:1]))
    swapped = qwen.run(qwen.encode([[ims[0], ims[2]]], QUESTIONS[:1]))
    assert np.abs(one.image[0] - swapped.image[0]).max() > 1e-5
    np.testing.assert_allclose(one.text[0], swapped.text[0], atol=1e-6, rtol=0)


def test_batch_equals_single_examples(qwen):
    """Right padding and M-RoPE positions do not leak into the prompt: rows equal one-example passes."""
    ims = easy_vqa_images(3)
    ims[1] = ims[1].resize((80, 48))  # different image-token counts, so different lengths
    batch = qwen.run(qwen.encode(ims, QUESTIONS))
    for i in range(3):
        one = qwen.run(qwen.encode([ims[i]], [QUESTIONS[i]]))
        for name in ("image", "text", "answer"):
            np.testing.assert_allclose(getattr(batch, name)[:, i], getattr(one, name)[:, 0], rtol=1e-4, atol=1e-5)


def test_causal_image_states_ignore_the_question(qwen):
    """The image block precedes the question, so no layer's image states can depend on it (causal attention)."""
    ims = easy_vqa_images(2)
    a = qwen.run(qwen.encode(ims, QUESTIONS[:2]))
    b = qwen.run(qwen.encode(ims, QUESTIONS[1:3]))
    np.testing.assert_allclose(a.image, b.image, rtol=1e-5, atol=1e-6)
    assert np.abs(a.text[1:] - b.text[1:]).max() > 1e-5


def test_prompt_without_chat_template_matches_the_template(qwen):
    with_template = qwen.build_prompt(QUESTIONS[0], 2)
    saved = qwen.processor.chat_template
    qwen.processor.chat_template = None
    try:
        assert qwen.build_prompt(QUESTIONS[0], 2) == with_template
    finally:
        qwen.processor.chat_template = saved
    assert with_template.count("<|image_pad|>") == 2 and with_template.endswith("<|im_start|>assistant\n")


def test_sequence_scoring_equals_first_token_logits(qwen):
    ims, qs = easy_vqa_images(2), QUESTIONS[:2]
    answers = ["red", "circle", "yes"]
    enc = qwen.encode(ims, qs)
    ids = [qwen.answer_continuation(enc.prompts[0], a) for a in answers]
    assert all(len(i) == 1 for i in ids)
    logp = torch.log_softmax(torch.from_numpy(qwen.run(enc).logits).double(), -1).numpy() / np.log(2)
    np.testing.assert_allclose(qwen.score_answers(ims, qs, answers), logp[:, [i[0] for i in ids]], atol=1e-5)


def test_extraction_end_to_end(qwen, tmp_path):
    """The extraction loop stores one entry per layer; rows equal one-example passes."""
    data = load_dataset("easy-vqa", limit=5, seed=0)
    store = extract(qwen, data, tmp_path / "fusion", batch_size=2, progress=False)
    assert store.layers == list(range(qwen.n_layers)) and store.n_samples == 5
    x_image, x_text, y = store.load(qwen.n_layers - 1)
    one = qwen.run(qwen.encode([data[4].image], [data[4].question]))
    np.testing.assert_allclose(x_image[4], one.image[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(x_text[4], one.text[0, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y[4], one.answer[-1, 0], rtol=1e-4, atol=1e-5)
    span = extract(qwen, data, tmp_path / "span", protocol="span", batch_size=2, progress=False)
    xi, xt, pred = span.load(1)
    np.testing.assert_allclose(xi[4], one.image[1, 0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(xt[4], one.text[1, 0], rtol=1e-4, atol=1e-5)
    assert pred.dtype == np.int64 and ((pred >= 0) & (pred < len(data.answers))).all()


def test_folder_without_image_processor(qwen, tmp_path):
    """Weights and tokenizer but no image-processor config: a clear error, not a half-built processor."""
    import shutil

    from mmpid.errors import ModelFamilyError

    path = tmp_path / "no_processor"
    shutil.copytree(qwen.model_id, path)
    for name in ("preprocessor_config.json", "processor_config.json"):
        (path / name).unlink()
    with pytest.raises(ModelFamilyError, match=r"Could not load a processor.*save_pretrained"):
        load_adapter(str(path), device="cpu")
