"""LLaVA-1.5 and LLaVA-NeXT adapters.

Both scatter the projected CLIP features into the ``<image>`` token positions of
the Llama/Mistral/Vicuna input embeddings. LLaVA-NeXT tiles the image
(any-resolution grid plus a downscaled base image, with an ``image_newline``
embedding after each row); all its tiles' tokens carry the image-token id, so the
image span is every position with that id.
"""

from __future__ import annotations

from typing import Any, ClassVar

from mmpid.models.decoder import DecoderAdapter

__all__ = ["LlavaAdapter", "LlavaNextAdapter", "chat_prompt"]


def chat_prompt(processor: Any, question: str, n_images: int, fallback: str) -> str:
    """Render one user turn (images first, then the question) with the generation prompt.

    Uses the processor's chat template when it has one; otherwise ``fallback``
    formatted with ``images`` (the image placeholders) and ``question``.
    """
    if getattr(processor, "chat_template", None):
        content: list[dict[str, str]] = [{"type": "image"} for _ in range(n_images)]
        content.append({"type": "text", "text": question})
        messages = [{"role": "user", "content": content}]
        return processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    token = getattr(processor, "image_token", "<image>")
    return fallback.format(images=token * n_images, question=question)


class LlavaAdapter(DecoderAdapter):
    """LLaVA-1.5 (``LlavaForConditionalGeneration``)."""

    family: ClassVar[str] = "llava"
    fallback_prompt: ClassVar[str] = "USER: {images}\n{question} ASSISTANT:"

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import LlavaForConditionalGeneration

        return LlavaForConditionalGeneration

    def build_prompt(self, question: str, n_images: int = 1) -> str:
        return chat_prompt(self.processor, question, n_images, self.fallback_prompt)


class LlavaNextAdapter(LlavaAdapter):
    """LLaVA-NeXT / LLaVA-1.6 (``LlavaNextForConditionalGeneration``), tiled any-resolution input."""

    family: ClassVar[str] = "llava_next"

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import LlavaNextForConditionalGeneration

        return LlavaNextForConditionalGeneration
