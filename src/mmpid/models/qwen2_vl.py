"""Qwen2-VL and Qwen2.5-VL adapters.

Both families work at dynamic resolution: the image processor resizes each image
to a multiple of ``patch_size * merge_size`` pixels within ``[min_pixels,
max_pixels]``, cuts it into patches (``image_grid_thw`` = temporal x height x
width patches per image) and the vision tower merges ``merge_size**2``
neighbouring patches into one language-model token. The processor expands the
single ``<|image_pad|>`` of the chat template into ``prod(grid_thw) /
merge_size**2`` copies, so the image span is every position holding
``config.image_token_id`` and its length varies with the image's shape. The
``<|vision_start|>``/``<|vision_end|>`` markers around it are special tokens,
neither image nor question.

The language model uses multimodal rotary positions (M-RoPE), computed from
``mm_token_type_ids``, which the processor returns next to ``input_ids`` and the
adapter passes on. Qwen2.5-VL differs only in its vision tower (window
attention, RMSNorm, SwiGLU); the language-model side is the same.

transformers 5.x builds these processors with a video processor, which needs
torchvision. Without torchvision the adapter loads an image-only processor from
the same folder (same image processor, tokenizer and chat template; images give
the same inputs), since extraction never uses video.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch

from mmpid.errors import ModelFamilyError
from mmpid.models.base import Adapter, resolve_device, resolve_dtype
from mmpid.models.decoder import DecoderAdapter

__all__ = ["Qwen2VLAdapter", "Qwen2_5_VLAdapter", "image_only_processor_class"]

_VISION_BLOCK = "<|vision_start|><|image_pad|><|vision_end|>"


def image_only_processor_class(processor_cls: type) -> type:
    """A subclass of a Qwen-VL processor class built from an image processor and a tokenizer only.

    ``ProcessorMixin`` reads a processor's parts from its ``__init__`` signature, so
    dropping ``video_processor`` from the signature makes ``from_pretrained`` load
    (and ``__call__`` use) the image processor and tokenizer alone.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):  # noqa: N807
        processor_cls.__init__(self, image_processor, tokenizer, None, chat_template=chat_template, **kwargs)

    return type(f"ImageOnly{processor_cls.__name__}", (processor_cls,), {"__init__": __init__})


class Qwen2VLAdapter(DecoderAdapter):
    """Qwen2-VL (``Qwen2VLForConditionalGeneration``), dynamic resolution, M-RoPE."""

    family: ClassVar[str] = "qwen2_vl"
    fallback_prompt: ClassVar[str] = (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\n{images}{question}<|im_end|>\n<|im_start|>assistant\n"
    )

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import Qwen2VLForConditionalGeneration

        return Qwen2VLForConditionalGeneration

    @classmethod
    def processor_class(cls) -> type:
        from transformers.models.qwen2_vl import Qwen2VLProcessor

        return Qwen2VLProcessor

    @classmethod
    def load(cls, path: str, *, device: str = "auto", dtype: str | torch.dtype | None = None) -> Adapter:
        """Load model and processor; without torchvision, an image-only processor (see the module docstring)."""
        try:
            return super().load(path, device=device, dtype=dtype)
        except ImportError as exc:
            if "torchvision" not in str(exc).lower():
                raise
        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        try:
            processor = image_only_processor_class(cls.processor_class()).from_pretrained(path)
        except (OSError, ValueError, KeyError, TypeError, ImportError) as exc:
            raise ModelFamilyError(
                f"Could not load a {cls.family} processor from {path!r} ({type(exc).__name__}: {exc}). "
                "The folder must contain the tokenizer and image-processor files "
                "(processor.save_pretrained(path)); installing torchvision lets transformers load the full processor."
            ) from exc
        model = cls.transformers_class().from_pretrained(path, dtype=dt)
        model.to(dev)
        return cls(model, processor, model_id=str(path), revision=getattr(model.config, "_commit_hash", None))

    def build_prompt(self, question: str, n_images: int = 1) -> str:
        """One user turn: the images' vision blocks, then the question; generation prompt appended."""
        if getattr(self.processor, "chat_template", None):
            content: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)]
            content.append({"type": "text", "text": question})
            messages = [{"role": "user", "content": content}]
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return self.fallback_prompt.format(images=_VISION_BLOCK * n_images, question=question)


class Qwen2_5_VLAdapter(Qwen2VLAdapter):  # noqa: N801 - mirrors the transformers class name
    """Qwen2.5-VL (``Qwen2_5_VLForConditionalGeneration``): Qwen2-VL with a window-attention vision tower."""

    family: ClassVar[str] = "qwen2_5_vl"

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration

    @classmethod
    def processor_class(cls) -> type:
        from transformers.models.qwen2_5_vl import Qwen2_5_VLProcessor

        return Qwen2_5_VLProcessor
