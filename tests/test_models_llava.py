"""LLaVA-1.5 and LLaVA-NeXT adapters, through the user's route: save to a folder, load_adapter(path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_models import (
    QUESTIONS,
    build_llava,
    build_llava_next,
    check_decoder_family,
    check_modality_isolation,
    easy_vqa_images,
)

from mmpid.models import load_adapter
from mmpid.models.llava import LlavaAdapter, LlavaNextAdapter

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def llava(tmp_path_factory):
    return load_adapter(str(build_llava(tmp_path_factory.mktemp("llava"))), device="cpu")


@pytest.fixture(scope="module")
def llava_next(tmp_path_factory):
    return load_adapter(str(build_llava_next(tmp_path_factory.mktemp("llava_next"))), device="cpu")


def test_loads_the_right_adapter(llava, llava_next):
    assert type(llava) is LlavaAdapter and type(llava_next) is LlavaNextAdapter
    assert llava.describe()["family"] == "llava"
    assert llava.image_token_id() == llava.tokenizer.convert_tokens_to_ids("<image>")


@pytest.mark.parametrize("name", ["llava", "llava_next"])
def test_spans_counts_layers_and_hooks(name, request):
    adapter = request.getfixturevalue(name)
    enc, act = check_decoder_family(adapter, easy_vqa_images(3))
    expected = 16 if name == "llava" else None  # LLaVA: (32/8)^2 patches, CLS dropped
    if expected is not None:
        assert enc.n_image_tokens == [expected] * 3
    assert act.image.shape == (3, 3, 32)


@pytest.mark.parametrize("name", ["llava", "llava_next"])
def test_modality_isolation(name, request):
    check_modality_isolation(request.getfixturevalue(name), easy_vqa_images(3))


def test_llava_next_dynamic_resolution(llava_next):
    from PIL import Image

    square = easy_vqa_images(1)[0]
    wide = square.resize((64, 32))
    small = square.resize((32, 32))
    enc = llava_next.encode([square, wide, small], QUESTIONS)
    # base image (16 tokens) + tiles with one newline per row: grid depends on the aspect ratio
    assert enc.n_image_tokens == enc.expected_image_tokens
    assert len(set(enc.n_image_tokens)) == 3
    act = llava_next.run(enc)
    assert np.isfinite(act.image).all()
    assert isinstance(square, Image.Image)


def test_llava_several_images(llava):
    ims = easy_vqa_images(4)
    enc = llava.encode([[ims[0], ims[1]], [ims[2], ims[3]]], QUESTIONS[:2])
    assert enc.n_image_tokens == enc.expected_image_tokens == [32, 32]
    one = llava.encode([[ims[0], ims[1]]], QUESTIONS[:1])
    swapped = llava.encode([[ims[0], ims[3]]], QUESTIONS[:1])
    a, b = llava.run(one), llava.run(swapped)
    # changing the second image moves X_image, not X_text
    assert np.abs(a.image[0] - b.image[0]).max() > 1e-5
    np.testing.assert_allclose(a.text[0], b.text[0], atol=1e-6, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "last", "max"])
def test_pooling_matches_hand_computation(llava, pooling):
    enc = llava.encode(easy_vqa_images(2), QUESTIONS[:2])
    act = llava.run(enc, pooling=pooling)
    with torch.no_grad():
        h = llava.model(**enc.inputs, output_hidden_states=True).hidden_states[1]
    for b in range(2):
        rows = h[b][enc.text_mask[b]]
        want = {"mean": rows.mean(0), "last": rows[-1], "max": rows.amax(0)}[pooling]
        np.testing.assert_allclose(act.text[1][b], want.numpy(), rtol=1e-5, atol=1e-6)


def test_hooks_removed_even_when_forward_fails(llava):
    enc = llava.encode(easy_vqa_images(1), QUESTIONS[:1])
    enc.inputs["pixel_values"] = enc.inputs["pixel_values"][:, :1]  # wrong channel count
    layers = llava.decoder_layers()
    before = [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in layers]
    with pytest.raises(RuntimeError):
        llava.run(enc)
    assert [len(m._forward_hooks) + len(m._forward_pre_hooks) for m in layers] == before


def test_bad_pooling_is_rejected(llava):
    from mmpid.errors import InputError

    enc = llava.encode(easy_vqa_images(1), QUESTIONS[:1])
    with pytest.raises(InputError, match="'pooling'.*mean.*Got 'median'"):
        llava.run(enc, pooling="median")


def test_sequence_scoring_equals_first_token_logits(llava):
    ims, qs = easy_vqa_images(2), QUESTIONS[:2]
    answers = ["red", "circle", "yes"]
    seq = llava.score_answers(ims, qs, answers)
    enc = llava.encode(ims, qs)
    logp = torch.log_softmax(torch.from_numpy(llava.run(enc).logits).double(), -1).numpy() / np.log(2)
    ids = [llava.answer_continuation(enc.prompts[0], a) for a in answers]
    assert all(len(i) == 1 for i in ids)
    np.testing.assert_allclose(seq, logp[:, [i[0] for i in ids]], rtol=1e-5, atol=1e-5)
