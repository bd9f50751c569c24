"""Idefics3 and SmolVLM adapters.

The image is split into tiles (rows x cols) plus a downscaled global image; each
tile becomes ``image_seq_len`` ``<image>`` tokens (after pixel shuffle), wrapped in
``<fake_token_around_image>``/``<row_i_col_j>``/``<global-img>`` markers. The image
span is the ``<image>`` positions only (the markers are special tokens, neither
image nor question); the merged input embeddings at those positions are the
connector's outputs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from mmpid.models.decoder import DecoderAdapter
from mmpid.models.llava import chat_prompt

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["Idefics3Adapter", "SmolVLMAdapter"]


class Idefics3Adapter(DecoderAdapter):
    """Idefics3 (``Idefics3ForConditionalGeneration``; SmolVLM checkpoints use it too)."""

    family: ClassVar[str] = "idefics3"
    fallback_prompt: ClassVar[str] = "<|im_start|>User:{images}{question}<end_of_utterance>\nAssistant:"

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import Idefics3ForConditionalGeneration

        return Idefics3ForConditionalGeneration

    def build_prompt(self, question: str, n_images: int = 1) -> str:
        return chat_prompt(self.processor, question, n_images, self.fallback_prompt)

    def expected_image_tokens(self, images: Sequence[Sequence[Image.Image]]) -> list[int] | None:
        """``<image>`` tokens per example: tiles (+1 global image when split) x ``image_seq_len``.

        The processor's own ``_get_num_multimodal_tokens`` counts the marker tokens
        too, so the tile count comes from the image processor instead.
        """
        ip = self.processor.image_processor
        seq_len = getattr(self.processor, "image_seq_len", None)
        fn = getattr(ip, "get_number_of_image_patches", None)
        if fn is None or seq_len is None:
            self.image_check_skipped = (
                f"{type(ip).__name__} has no get_number_of_image_patches" if fn is None
                else f"{type(self.processor).__name__} has no image_seq_len"
            )
            return None

        def count(sizes: list[tuple[int, int]]) -> list[int]:
            return [max(int(fn(h, w, {})[0]), 1) * int(seq_len) for h, w in sizes]

        return self._image_token_counts(images, count)


class SmolVLMAdapter(Idefics3Adapter):
    """SmolVLM (``SmolVLMForConditionalGeneration``, model_type ``smolvlm``)."""

    family: ClassVar[str] = "smolvlm"

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import SmolVLMForConditionalGeneration

        return SmolVLMForConditionalGeneration
