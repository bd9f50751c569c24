"""Tiny random-weight Qwen2-VL, Qwen2.5-VL, PaliGemma and BLIP-VQA models with real processors.

Each builder writes a folder the way a user's checkpoint looks (``config.json``,
weights, tokenizer files, image-processor config, chat template, processor
config) so tests load it back through the user's route, ``load_adapter(path)``.
Everything is built offline: the tokenizers are trained here on easy-vqa's
questions with the ``tokenizers`` library (byte-level BPE like Qwen's,
metaspace BPE like Gemma's, WordPiece like BERT's) and carry each family's
special tokens; the image processors are the families' own classes with small
sizes; the weights are random (seeded).

Qwen2-VL's processor cannot be instantiated without torchvision in transformers
5.x (it insists on a video processor), so its folder is written piece by piece,
exactly as ``save_pretrained`` lays it out; the adapter loads it back.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]

#: The Qwen2-VL chat format (system turn, vision block per image, generation prompt).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[str, ...]:
    """Easy-vqa's distinct questions and answers plus the prompt words the families add."""
    import easy_vqa

    questions = sorted(set(easy_vqa.get_train_questions()[0]) | set(easy_vqa.get_test_questions()[0]))
    extra = [
        "You are a helpful assistant.",
        "system user assistant",
        "answer en",
        "Question: Answer:",
        "What Is Does",
    ]
    return tuple(questions + extra + list(easy_vqa.get_answers()))


def _bytelevel_bpe(specials: list[str], vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    return tok


def _metaspace_bpe(specials: list[str], vocab_size: int = 300):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="never")
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="never")
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False)
    tok.train_from_iterator([*corpus(), "\n"], trainer=trainer)
    return tok


def _write_processor_config(path: Path, processor_class: str) -> None:
    (path / "processor_config.json").write_text(json.dumps({"processor_class": processor_class}, indent=2) + "\n")


# ------------------------------------------------------------------------ Qwen2-VL


def build_qwen2_vl(path: str | Path, *, version: str = "2", seed: int = 0) -> Path:
    """Write a tiny Qwen2-VL (``version="2"``) or Qwen2.5-VL (``version="2.5"``) folder.

    Text model: 2 layers, width 32 (so ``n_layers == 3``). Vision: patch 8, merge 2,
    dynamic resolution between 16x16 and 48x48 pixels, so a 64x64 easy-vqa image
    becomes a 6x6 patch grid and 9 image tokens, other aspect ratios other counts.
    """
    from transformers import PreTrainedTokenizerFast
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    if version not in ("2", "2.5"):
        raise ValueError(f"version must be '2' or '2.5', got {version!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=_bytelevel_bpe(QWEN_SPECIALS),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
    )
    tok.chat_template = QWEN_CHAT_TEMPLATE
    image_processor = Qwen2VLImageProcessorPil(
        size={"shortest_edge": 16 * 16, "longest_edge": 48 * 48}, patch_size=8, merge_size=2, temporal_patch_size=2
    )
    tok.save_pretrained(path)
    image_processor.save_pretrained(path)
    (path / "chat_template.jinja").write_text(QWEN_CHAT_TEMPLATE)
    ids = {name: tok.convert_tokens_to_ids(name) for name in QWEN_SPECIALS}
    text = dict(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=512,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
        bos_token_id=None,
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    special = dict(
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(seed)
    if version == "2":
        from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration

        vision = dict(
            depth=2, embed_dim=32, hidden_size=32, num_heads=2, mlp_ratio=2, patch_size=8, spatial_merge_size=2,
            temporal_patch_size=2,
        )  # fmt: skip
        model = Qwen2VLForConditionalGeneration(Qwen2VLConfig(text_config=text, vision_config=vision, **special))
        _write_processor_config(path, "Qwen2VLProcessor")
    else:
        from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

        vision = dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=32, patch_size=8,
            spatial_merge_size=2, temporal_patch_size=2, window_size=32, fullatt_block_indexes=[1],
        )  # fmt: skip
        model = Qwen2_5_VLForConditionalGeneration(Qwen2_5_VLConfig(text_config=text, vision_config=vision, **special))
        _write_processor_config(path, "Qwen2_5_VLProcessor")
    model.eval().save_pretrained(path)
    return path


# ------------------------------------------------------------------------ PaliGemma


def build_paligemma(path: str | Path, *, text: str = "gemma", seed: int = 0) -> Path:
    """Write a tiny PaliGemma folder: SigLIP 32x32 / patch 8 (16 image tokens), 2 text layers, width 32.

    ``text="gemma"`` is PaliGemma; ``text="gemma2"`` is PaliGemma 2 (Gemma 2: sliding-window
    layers, logit soft-capping, here with a small cap so that it matters at random weights).
    """
    from transformers import PaliGemmaConfig, PaliGemmaForConditionalGeneration, PreTrainedTokenizerFast
    from transformers.models.paligemma import PaliGemmaProcessor
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=_metaspace_bpe(["<pad>", "<eos>", "<bos>", "<unk>", "<image>"]),
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        extra_special_tokens={"image_token": "<image>"},
    )
    image_processor = SiglipImageProcessorPil(size={"height": 32, "width": 32})
    image_processor.image_seq_length = 16
    processor = PaliGemmaProcessor(image_processor=image_processor, tokenizer=tok)
    processor.save_pretrained(path)
    tok = processor.tokenizer
    config = PaliGemmaConfig(
        text_config=dict(
            model_type=text,
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=512,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            **(dict(final_logit_softcapping=0.5, sliding_window=8) if text == "gemma2" else {}),
        ),
        vision_config=dict(
            model_type="siglip_vision_model",
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            projection_dim=32,
        ),
        image_token_id=processor.image_token_id,
        projection_dim=32,
    )
    torch.manual_seed(seed)
    PaliGemmaForConditionalGeneration(config).eval().save_pretrained(path)
    return path


# ------------------------------------------------------------------------ BLIP VQA


def build_blip_vqa(path: str | Path, *, seed: int = 0) -> Path:
    """Write a tiny BLIP-VQA folder: ViT 32x32 / patch 8 (17 image embeddings), BERT-style 2-layer text encoder."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BlipConfig, BlipForQuestionAnswering, PreTrainedTokenizerFast
    from transformers.models.blip import BlipProcessor
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]", "[ENC]"]
    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.train_from_iterator(
        corpus(), trainer=trainers.WordPieceTrainer(vocab_size=200, special_tokens=specials, show_progress=False)
    )
    cls_id, sep_id = wp.token_to_id("[CLS]"), wp.token_to_id("[SEP]")
    wp.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=wp,
        unk_token="[UNK]",
        sep_token="[SEP]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        mask_token="[MASK]",
        bos_token="[DEC]",
        extra_special_tokens=["[ENC]"],
    )
    processor = BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}), tokenizer=tok)
    processor.save_pretrained(path)
    config = BlipConfig(
        text_config=dict(
            vocab_size=len(tok),
            hidden_size=32,
            encoder_hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.sep_token_id,
            sep_token_id=tok.sep_token_id,
            pad_token_id=tok.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
            initializer_range=0.02,  # BLIP's default (1e-10) would make every image look the same
        ),
    )
    torch.manual_seed(seed)
    BlipForQuestionAnswering(config).eval().save_pretrained(path)
    return path
