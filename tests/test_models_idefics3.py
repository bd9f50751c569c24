"""Idefics3 / SmolVLM adapter (tiled images + global image), through load_adapter(path)."""

from __future__ import annotations

import pytest
import torch
from tiny_models import QUESTIONS, build_idefics3, check_decoder_family, check_modality_isolation, easy_vqa_images

from mmpid.models import load_adapter
from mmpid.models.idefics3 import Idefics3Adapter

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def idefics3(tmp_path_factory):
    return load_adapter(str(build_idefics3(tmp_path_factory.mktemp("idefics3"))), device="cpu")


def test_loads_idefics3_adapter(idefics3):
    assert type(idefics3) is Idefics3Adapter
    assert idefics3.image_token_id() == idefics3.tokenizer.convert_tokens_to_ids("<image>")


def test_spans_counts_layers_and_hooks(idefics3):
    enc, act = check_decoder_family(idefics3, easy_vqa_images(3))
    # 64 px image -> 2x2 tiles of 32 px + the global image, 4 tokens each after pixel shuffle
    assert enc.n_image_tokens == [20, 20, 20]
    # the tile markers are neither image nor question tokens
    ids = enc.inputs["input_ids"][0]
    marker = idefics3.tokenizer.convert_tokens_to_ids("<fake_token_around_image>")
    pos = (ids == marker).nonzero().flatten()
    assert len(pos) > 0 and not enc.image_mask[0, pos].any() and not enc.text_mask[0, pos].any()


def test_modality_isolation(idefics3):
    check_modality_isolation(idefics3, easy_vqa_images(3))


def test_tiling_follows_image_size(idefics3):
    im = easy_vqa_images(1)[0]
    enc = idefics3.encode([im, im.resize((32, 32)), im.resize((64, 32))], QUESTIONS)
    # images are first resized to a 64 px longest edge: 2x2+1, 2x2+1, 1x2+1 tiles
    assert enc.n_image_tokens == enc.expected_image_tokens == [20, 20, 12]
    act = idefics3.run(enc)
    assert act.image.shape == (idefics3.n_layers, 3, idefics3.hidden_size)
