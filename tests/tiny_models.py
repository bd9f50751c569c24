"""Tiny random-weight VLMs with real processors, built offline and saved to a folder.

Each ``build_*`` function writes a model (``save_pretrained``) and its processor
(image processor + a word-level tokenizer built locally + chat template) to
``path`` and returns the path, so that tests load it back through the same
route users take: ``load_adapter(path)``.
"""

from __future__ import annotations

from pathlib import Path

import torch

# easy-vqa's question and answer vocabulary plus the chat templates' words.
WORDS = (
    "? a black blue brown circle color contain does gray green image in is no not of present rectangle red "
    "shape teal the there triangle what yellow how many shapes are which left right big small USER ASSISTANT "
    "User Assistant : . , ! \n"
).split()

LLAVA_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].upper() + ': ' }}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<image>\n' }}{% endif %}{% endfor %}"
    "{% for content in message['content'] %}{% if content['type'] == 'text' %}{{ content['text'] + ' ' }}{% endif %}"
    "{% endfor %}{% endfor %}{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{ line['text'] }}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)


def build_tokenizer(extra_special: list[str] | None = None):
    """A word-level fast tokenizer over :data:`WORDS` with offsets and special tokens."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab: dict[str, int] = {}
    for w in specials + sorted(set(WORDS)):
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>"
    )
    if extra_special:
        fast.add_special_tokens({"additional_special_tokens": list(extra_special)})
    return fast


def _llama_config(vocab_size: int, *, layers: int = 2, hidden: int = 32):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=0,
        bos_token_id=2,
        eos_token_id=3,
    )


def _clip_vision(image_size: int = 32, patch: int = 8):
    from transformers import CLIPVisionConfig

    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=patch,
        projection_dim=32,
    )


def build_llava(path: str | Path, *, seed: int = 0, layers: int = 2) -> Path:
    """LLaVA-1.5: CLIP vision tower (32 px, 8 px patches: 16 image tokens) + Llama."""
    from transformers import CLIPImageProcessorPil, LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor

    path = Path(path)
    tok = build_tokenizer(["<image>"])
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=_clip_vision(),
        text_config=_llama_config(len(tok), layers=layers),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_llava_next(path: str | Path, *, seed: int = 0, layers: int = 2) -> Path:
    """LLaVA-NeXT: any-resolution tiling (32 px tiles on grids up to 64x64) + Llama."""
    from transformers import (
        LlavaNextConfig,
        LlavaNextForConditionalGeneration,
        LlavaNextImageProcessorPil as LlavaNextImageProcessor,
        LlavaNextProcessor,
    )

    path = Path(path)
    pinpoints = [[32, 32], [32, 64], [64, 32], [64, 64]]
    tok = build_tokenizer(["<image>"])
    image_processor = LlavaNextImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}, image_grid_pinpoints=pinpoints
    )
    processor = LlavaNextProcessor(
        image_processor=image_processor,
        tokenizer=tok,
        patch_size=8,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    config = LlavaNextConfig(
        vision_config=_clip_vision(),
        text_config=_llama_config(len(tok), layers=layers),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=pinpoints,
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
    )
    torch.manual_seed(seed)
    model = LlavaNextForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def build_idefics3(path: str | Path, *, seed: int = 0, layers: int = 2, split: bool = True) -> Path:
    """Idefics3 / SmolVLM: SigLIP-type encoder, pixel shuffle (4 tokens per 32 px tile), 2x2 tiles + global."""
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3ImageProcessorPil as Idefics3ImageProcessor,
        Idefics3Processor,
        Idefics3VisionConfig,
    )

    path = Path(path)
    grid = [f"<row_{i + 1}_col_{j + 1}>" for i in range(6) for j in range(6)]
    markers = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", "<|im_start|>"]
    tok = build_tokenizer([*markers, *grid])
    image_processor = Idefics3ImageProcessor(
        size={"longest_edge": 64}, max_image_size={"longest_edge": 32}, do_image_splitting=split
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tok, image_seq_len=4, chat_template=IDEFICS3_TEMPLATE
    )
    vision = Idefics3VisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
    )
    config = Idefics3Config(
        vision_config=vision,
        text_config=_llama_config(len(tok), layers=layers),
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        scale_factor=2,
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(config).eval()
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


BUILDERS = {"llava": build_llava, "llava_next": build_llava_next, "idefics3": build_idefics3}


# --------------------------------------------------------------------------- shared checks
# Assertions every decoder family must pass; the per-family test files call them.


def easy_vqa_images(n: int = 3):
    """The first ``n`` easy-vqa test images (RGB, 64x64)."""
    from easy_vqa import get_test_image_paths
    from PIL import Image

    paths = get_test_image_paths()
    return [Image.open(paths[i]).convert("RGB") for i in range(n)]


QUESTIONS = ["what is the red shape?", "what is the color of the triangle?", "is there not a black shape in the image?"]


def inserted_mask(adapter, enc):
    """Positions where the model's merged input embeddings differ from the token embeddings.

    These are the positions the model filled with image features, found from the
    model itself rather than from the ids.
    """
    with torch.no_grad():
        out = adapter.model(**enc.inputs, output_hidden_states=True)
        tok = adapter.model.get_input_embeddings()(enc.inputs["input_ids"])
    h0 = out.hidden_states[0]
    if h0.shape != tok.shape:  # pragma: no cover - an embedding scale (Gemma) would need its own check
        raise AssertionError("hidden_states[0] and the token embeddings differ in shape")
    return (h0 - tok).abs().amax(-1) > 0, out


def check_decoder_family(adapter, images, questions=QUESTIONS):
    """The issue's per-family checks plus hook-vs-output_hidden_states equality."""
    import numpy as np

    enc = adapter.encode(images, questions)
    # image tokens: found in ids == inserted by the processor == filled by the model
    assert enc.expected_image_tokens is not None
    assert enc.n_image_tokens == enc.expected_image_tokens
    inserted, out = inserted_mask(adapter, enc)
    attn = enc.inputs["attention_mask"].bool()
    assert torch.equal(inserted & attn, enc.image_mask & attn)
    # question tokens are exactly the question's words
    tok = adapter.tokenizer
    for b, q in enumerate(questions):
        words = tok.convert_ids_to_tokens(enc.inputs["input_ids"][b][enc.text_mask[b]].tolist())
        assert words == tok.tokenize(q), (words, q)
    # layer count = decoder layers + 1 = len(output_hidden_states)
    cfg = getattr(adapter.model.config, "text_config", adapter.model.config)
    assert adapter.n_layers == cfg.num_hidden_layers + 1 == len(out.hidden_states)
    # the hooks see exactly what output_hidden_states returns
    act = adapter.run(enc, pooling="mean")
    rows = torch.arange(len(questions))
    for layer, h in enumerate(out.hidden_states):
        np.testing.assert_allclose(act.answer[layer], h[rows, enc.answer_index].numpy(), rtol=1e-5, atol=1e-6)
        w = enc.image_mask.unsqueeze(-1).float()
        np.testing.assert_allclose(act.image[layer], ((h * w).sum(1) / w.sum(1)).numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(act.logits, out.logits[rows, enc.answer_index].numpy(), rtol=1e-5, atol=1e-5)
    return enc, act


def check_modality_isolation(adapter, images, questions=QUESTIONS):
    """X_image moves with the image only; X_text moves with the question only."""
    import numpy as np

    base = adapter.run(adapter.encode(images, questions))
    other_images = images[1:] + images[:1]
    img = adapter.run(adapter.encode(other_images, questions))
    other_q = questions[1:] + questions[:1]
    txt = adapter.run(adapter.encode(images, other_q))
    # image changed: X_image differs, X_text identical
    assert np.abs(img.image[0] - base.image[0]).max() > 1e-5
    np.testing.assert_allclose(img.text[0], base.text[0], rtol=0, atol=1e-6)
    # question changed: X_text differs, X_image identical
    assert np.abs(txt.text[0] - base.text[0]).max() > 1e-5
    np.testing.assert_allclose(txt.image[0], base.image[0], rtol=0, atol=1e-6)
    # the answer state sees both
    assert np.abs(img.answer[-1] - base.answer[-1]).max() > 1e-5
    assert np.abs(txt.answer[-1] - base.answer[-1]).max() > 1e-5
