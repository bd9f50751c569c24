"""PaliGemma (and PaliGemma 2, whose language model is Gemma 2) adapter.

PaliGemma has no chat template. Its prompt is ``<image>`` once per image, then the
task prefix and the question; the processor expands each ``<image>`` into
``image_seq_length`` copies (256 for 224-pixel SigLIP), puts ``<bos>`` after the
last one and ends the prompt with ``"\\n"``, the answer position. The whole
prefix (image and prompt) attends bidirectionally: the processor's
``token_type_ids`` (0 on the prefix) tell the model so, and the adapter passes
them on.

Hidden state 0, the merged input embeddings: Gemma multiplies token embeddings by
``sqrt(hidden_size)`` inside its embedding layer, while the image features
(SigLIP output through the linear projector) are scattered in unscaled. So
``X_text`` is the scaled question-token embeddings and ``X_image`` the projected
image features, each exactly as the first decoder layer receives it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from mmpid.errors import InputError
from mmpid.models.decoder import DecoderAdapter

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["PaliGemmaAdapter"]


class PaliGemmaAdapter(DecoderAdapter):
    """PaliGemma / PaliGemma 2 (``PaliGemmaForConditionalGeneration``)."""

    family: ClassVar[str] = "paligemma"
    #: The mix / fine-tuned checkpoints' VQA prefix; it is boilerplate, not part of the question span.
    task_prefix: ClassVar[str] = "answer en "

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import PaliGemmaForConditionalGeneration

        return PaliGemmaForConditionalGeneration

    def build_prompt(self, question: str, n_images: int = 1) -> str:
        """``<image>`` per image, then ``task_prefix`` and the question (the processor adds ``<bos>`` and ``\\n``)."""
        token = getattr(self.processor, "image_token", "<image>")
        return f"{token * n_images}{self.task_prefix}{question}"

    def _call_processor(
        self, images: list[list[Any]], prompts: list[str], suffix: list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the processor (right padding), asking for numpy and converting.

        With ``return_tensors="pt"`` the processor calls ``np.array`` on torch
        tensors to build training labels, which numpy 2 warns about. The labels
        are not a forward-pass input and are dropped.
        """
        tok = self.tokenizer
        old_side = getattr(tok, "padding_side", "right")
        tok.padding_side = "right"
        try:
            batch = self.processor(images=images, text=prompts, suffix=suffix, padding=True, return_tensors="np")
        finally:
            tok.padding_side = old_side
        return {k: torch.from_numpy(v) for k, v in batch.items() if k != "labels"}

    def answer_logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits, (B, d) -> (B, V), with Gemma 2's final logit soft-capping (PaliGemma 2)."""
        logits = super().answer_logits(last_hidden)
        cap = getattr(self.model.config.get_text_config(), "final_logit_softcapping", None)
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def answer_continuation(self, prompt: str, answer: str) -> list[int]:
        """Token ids of ``answer`` as PaliGemma writes it after the prompt's ``"\n"``.

        The processor tokenizes an answer (its ``suffix``) on its own, not as a
        continuation of the prompt text, so no leading space is added.
        """
        return list(self.tokenizer(answer, add_special_tokens=False)["input_ids"])

    @torch.inference_mode()
    def score_answers(
        self,
        images: Sequence[Image.Image | Sequence[Image.Image]],
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> np.ndarray:
        """Log-probability (bits) of each answer's tokens after each prompt, shape (B, len(answers)).

        The answer goes in as the processor's ``suffix`` (``token_type_ids`` 1:
        causal attention, after the bidirectional prefix), the way PaliGemma was
        trained; the ``<eos>`` the processor appends is not scored. One batched
        forward pass per candidate answer.
        """
        ims = [list(x) if isinstance(x, (list, tuple)) else [x] for x in images]
        prompts = [self.build_prompt(q, len(i)) for q, i in zip(questions, ims)]
        out = np.zeros((len(prompts), len(answers)))
        eos = self.tokenizer.eos_token_id
        for j, answer in enumerate(answers):
            inputs = self._call_processor(ims, prompts, suffix=[answer] * len(prompts))
            ids = inputs["input_ids"]
            suffix = inputs["token_type_ids"].bool() & inputs["attention_mask"].bool() & (ids != eos)
            kw = {
                k: (v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device))
                for k, v in inputs.items()
            }
            logp = torch.log_softmax(self.model(**kw, use_cache=False).logits.float(), dim=-1).cpu()
            for b in range(len(prompts)):
                pos = torch.nonzero(suffix[b]).flatten()
                if pos.numel() == 0:
                    raise InputError(f"The answer {answer!r} has no tokens; cannot score it.")
                out[b, j] = float(logp[b, pos - 1, ids[b, pos]].sum()) / float(np.log(2.0))
        return out
