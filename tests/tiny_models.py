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
    tok = build_tokenizer(["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", "<|im_start|>", *grid])
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
