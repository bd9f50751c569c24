"""BLIP VQA adapter: a cross-attention fusion model.

``BlipForQuestionAnswering`` keeps the modalities in separate streams until its
text encoder fuses them:

1. the ViT vision model turns the image into ``(image_size / patch_size)**2 + 1``
   embeddings (patches plus [CLS]), ``image_embeds``;
2. the text encoder (BERT-style, bidirectional) reads the question, ``[CLS]
   question [SEP]``; every one of its layers self-attends over the question and
   then cross-attends to ``image_embeds``: this is where the modalities meet;
3. the answer decoder generates the answer from ``[DEC]``, cross-attending to
   the text encoder's output.

What mmpid reads (the input-fusion protocol of a cross-attention model):

- ``X_image`` = ``image_embeds`` pooled over all its positions: the image
  features exactly as the cross-attention layers receive them.
- ``X_text`` = the text encoder's input embeddings (word + position embeddings
  after LayerNorm) pooled over the question's tokens, no [CLS]/[SEP]/padding.
- Layers: hidden state 0 is those input embeddings and hidden state ``l`` the
  output of text-encoder layer ``l`` (``l = 1..L``), each of which has seen the
  image through cross-attention; ``n_layers = L + 1`` with ``L =
  text_config.num_hidden_layers``. The text encoder has no final norm (BERT's
  layers end in LayerNorm), so the last hidden state is layer ``L``'s output.
- ``Y(l)`` = hidden state ``l`` at the encoder's first position, the [CLS]
  token: BLIP's multimodal summary token (its image-text matching head reads
  it), which every question token and, through cross-attention, every image
  embedding reaches. In a bidirectional encoder no later position "comes
  last"; the answer decoder reads all positions.
- Span protocol: the text span of layer ``l`` is the question tokens' hidden
  state ``l``. The image stream is not updated by the text encoder, so the
  image representation is ``image_embeds`` at every layer.
- Logits: the answer decoder's first-step next-token logits (after ``[DEC]``),
  i.e. the distribution of the answer's first token.

``image_mask`` in :class:`~mmpid.models.base.Encoded` indexes ``image_embeds``
(not the text sequence, which holds no image tokens).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch

from mmpid.errors import InputError, ModelFamilyError
from mmpid.extract_options import POOLINGS
from mmpid.models.base import Activations, Adapter, Encoded
from mmpid.models.hooks import capture_layers, pool

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["BlipVQAAdapter"]


class BlipVQAAdapter(Adapter):
    """BLIP for visual question answering (``BlipForQuestionAnswering``, e.g. ``Salesforce/blip-vqa-base``)."""

    family: ClassVar[str] = "blip"

    @classmethod
    def transformers_class(cls) -> Any:
        from transformers import BlipForQuestionAnswering

        return BlipForQuestionAnswering

    @classmethod
    def load(cls, path: str, *, device: str = "auto", dtype: str | torch.dtype | None = None) -> Adapter:
        """Load a BLIP VQA checkpoint; a BLIP captioning or retrieval checkpoint raises ModelFamilyError."""
        from transformers import AutoConfig

        archs = list(getattr(AutoConfig.from_pretrained(path), "architectures", None) or [])
        if archs and "BlipForQuestionAnswering" not in archs:
            raise ModelFamilyError(
                f"The BLIP checkpoint {path!r} is a {', '.join(archs)}, not a BlipForQuestionAnswering: its "
                "question encoder and answer decoder would be random. Use a BLIP VQA checkpoint "
                "(e.g. Salesforce/blip-vqa-base)."
            )
        return super().load(path, device=device, dtype=dtype)

    # ---- facts
    @property
    def n_layers(self) -> int:
        """Text-encoder layers + 1 (the input embeddings)."""
        return len(self.model.text_encoder.encoder.layer) + 1

    @property
    def hidden_size(self) -> int:
        """Width of the text encoder (X_text and Y)."""
        return int(self.model.config.text_config.hidden_size)

    @property
    def image_hidden_size(self) -> int:
        """Width of ``image_embeds`` (X_image); equals :attr:`hidden_size` in blip-vqa-base."""
        return int(self.model.config.vision_config.hidden_size)

    def describe(self) -> dict[str, Any]:
        """What the manifest records, plus the image width and what the layers are."""
        out = super().describe()
        out["image_hidden_size"] = self.image_hidden_size
        out["layers"] = "text encoder (self-attention over the question + cross-attention to the image)"
        return out

    def expected_image_embeddings(self) -> int:
        """Image embeddings per image from the vision config: patches + [CLS]."""
        vc = self.model.config.vision_config
        size = vc.image_size if isinstance(vc.image_size, (list, tuple)) else (vc.image_size, vc.image_size)
        patch = vc.patch_size if isinstance(vc.patch_size, (list, tuple)) else (vc.patch_size, vc.patch_size)
        return (int(size[0]) // int(patch[0])) * (int(size[1]) // int(patch[1])) + 1

    # ---- the work
    def build_prompt(self, question: str, n_images: int = 1) -> str:
        """BLIP reads the bare question (the tokenizer adds [CLS] and [SEP])."""
        if n_images != 1:
            raise InputError(f"BLIP VQA takes exactly one image per question. Got {n_images} images.")
        return question

    def answer_continuation(self, prompt: str, answer: str) -> list[int]:
        """Token ids of ``answer`` as the answer decoder writes them after ``[DEC]`` (no special tokens)."""
        return list(self.tokenizer(answer, add_special_tokens=False)["input_ids"])

    def encode(self, images: Sequence[Image.Image | Sequence[Image.Image]], questions: Sequence[str]) -> Encoded:
        if len(images) != len(questions):
            raise InputError(
                f"'images' and 'questions' must have the same length. Got {len(images)} and {len(questions)}."
            )
        if not questions:
            raise InputError("The batch is empty; give at least one (image, question) pair.")
        flat = []
        for x in images:
            ims = list(x) if isinstance(x, (list, tuple)) else [x]
            self.build_prompt("", len(ims))  # validates one image per question
            flat.append(ims[0])
        prompts = [self.build_prompt(q) for q in questions]
        tok = self.tokenizer
        old_side = getattr(tok, "padding_side", "right")
        tok.padding_side = "right"
        try:
            batch = self.processor(images=flat, text=prompts, padding=True, return_tensors="pt")
        finally:
            tok.padding_side = old_side
        ids = batch["input_ids"]
        attn = batch.get("attention_mask", torch.ones_like(ids))
        # the prompt is the bare question: every token but [CLS]/[SEP]/padding ([UNK] stands for question words)
        special = torch.tensor(sorted(set(tok.all_special_ids) - {tok.unk_token_id}), dtype=ids.dtype)
        text_mask = attn.bool() & ~torch.isin(ids, special)
        pixel_values = batch["pixel_values"]
        vc = self.model.config.vision_config
        patch = vc.patch_size if isinstance(vc.patch_size, (list, tuple)) else (vc.patch_size, vc.patch_size)
        n_img = (pixel_values.shape[-2] // int(patch[0])) * (pixel_values.shape[-1] // int(patch[1])) + 1
        b = len(prompts)
        dev, dt = self.device, self.dtype
        return Encoded(
            inputs={
                "input_ids": ids.to(dev),
                "attention_mask": attn.to(dev),
                "pixel_values": pixel_values.to(dev, dt),
            },
            image_mask=torch.ones(b, n_img, dtype=torch.bool, device=dev),
            text_mask=text_mask.to(dev),
            answer_index=torch.zeros(b, dtype=torch.long, device=dev),
            n_image_tokens=[n_img] * b,
            expected_image_tokens=[self.expected_image_embeddings()] * b,
            lengths=[int(n) for n in attn.sum(1)],
            prompts=prompts,
        )

    @torch.inference_mode()
    def run(self, encoded: Encoded, *, pooling: str = "mean") -> Activations:
        if pooling not in POOLINGS:
            raise InputError(f"The 'pooling' parameter must be one of {POOLINGS}. Got {pooling!r}.")
        if bool((encoded.text_mask.sum(1) == 0).any()):
            raise InputError("Some examples in the batch have no question tokens; cannot pool an empty span.")
        model = self.model
        inputs = encoded.inputs
        image_embeds = model.vision_model(pixel_values=inputs["pixel_values"]).last_hidden_state
        if image_embeds.shape[1] != encoded.image_mask.shape[1]:
            raise ModelFamilyError(
                f"The vision model returned {image_embeds.shape[1]} image embeddings; "
                f"the encoding expected {encoded.image_mask.shape[1]}."
            )
        image_pooled = pool(image_embeds, encoded.image_mask, pooling)
        n = self.n_layers
        rows = torch.arange(encoded.batch_size, device=encoded.answer_index.device)
        txt: list[torch.Tensor | None] = [None] * n
        ans: list[torch.Tensor | None] = [None] * n

        def reduce(i: int, h: torch.Tensor) -> None:
            txt[i] = pool(h, encoded.text_mask, pooling)
            ans[i] = h[rows, encoded.answer_index].float()

        encoder = model.text_encoder
        points = [(encoder.embeddings, "post")] + [(layer, "post") for layer in encoder.encoder.layer]
        image_attention = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        with capture_layers(points, reduce):
            question_embeds = encoder(
                input_ids=inputs["input_ids"],
                attention_mask=inputs["attention_mask"],
                encoder_hidden_states=image_embeds,
                encoder_attention_mask=image_attention,
            ).last_hidden_state
        if any(v is None for v in txt):
            missing = [i for i, v in enumerate(txt) if v is None]
            raise ModelFamilyError(f"Text-encoder layers {missing} of {type(model).__name__} were not captured.")
        logits = self._decoder_logits(question_embeds, encoded.lengths, [model.decoder_start_token_id])[:, -1, :]

        def stack(xs: list[torch.Tensor | None]) -> np.ndarray:
            return torch.stack(xs).cpu().numpy().astype(np.float32, copy=False)  # type: ignore[arg-type]

        image = np.broadcast_to(image_pooled.float().cpu().numpy(), (n, *image_pooled.shape)).copy()
        return Activations(
            image=image.astype(np.float32, copy=False),
            text=stack(txt),
            answer=stack(ans),
            logits=logits.float().cpu().numpy(),
        )

    def _decoder_logits(
        self, question_embeds: torch.Tensor, lengths: Sequence[int], decoder_ids: Sequence[int]
    ) -> torch.Tensor:
        """Answer-decoder logits, shape (B, len(decoder_ids), V), one decoder call per question length.

        ``decoder_ids`` (starting with ``[DEC]``) is the same for every example.
        transformers 5.x drops the mask of BLIP's cross-attention
        (``BlipTextAttention`` does not pass ``encoder_attention_mask`` on), so the
        decoder would attend to the padding of shorter questions and its answer
        would depend on the batch. Cutting each length group to its own length
        gives what an unpadded, one-question call gives.
        """
        if not lengths:
            raise InputError("The batch is empty; give at least one (image, question) pair.")
        out: torch.Tensor | None = None
        by_length: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            by_length.setdefault(int(n), []).append(i)
        for n, rows in by_length.items():
            idx = torch.tensor(rows, device=question_embeds.device)
            states = question_embeds[idx, :n]
            ids = torch.tensor([list(decoder_ids)] * len(rows), dtype=torch.long, device=states.device)
            logits = self.model.text_decoder(
                input_ids=ids,
                encoder_hidden_states=states,
                encoder_attention_mask=torch.ones(states.shape[:-1], dtype=torch.long, device=states.device),
                use_cache=False,
            ).logits
            if out is None:
                out = logits.new_empty((question_embeds.shape[0], *logits.shape[1:]))
            out[idx] = logits
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def score_answers(
        self,
        images: Sequence[Image.Image | Sequence[Image.Image]],
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> np.ndarray:
        """Log-probability (bits) of each answer's tokens under the answer decoder, shape (B, len(answers)).

        The image and question go through the vision model and text encoder once;
        each candidate is then one decoder pass (``[DEC]`` + answer tokens) per
        question length. The ``[SEP]`` that ends a generated answer is not scored.
        """
        enc = self.encode(images, questions)
        image_embeds = self.model.vision_model(pixel_values=enc.inputs["pixel_values"]).last_hidden_state
        question_embeds = self.model.text_encoder(
            input_ids=enc.inputs["input_ids"],
            attention_mask=enc.inputs["attention_mask"],
            encoder_hidden_states=image_embeds,
            encoder_attention_mask=torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device),
        ).last_hidden_state
        out = np.zeros((enc.batch_size, len(answers)))
        for j, answer in enumerate(answers):
            cont = self.answer_continuation("", answer)
            if not cont:
                raise InputError(f"The answer {answer!r} has no tokens; cannot score it.")
            ids = [self.model.decoder_start_token_id, *cont[:-1]]
            logp = torch.log_softmax(self._decoder_logits(question_embeds, enc.lengths, ids).float(), dim=-1)
            target = torch.tensor(cont, device=logp.device)
            picked = logp[:, torch.arange(len(cont), device=logp.device), target]
            out[:, j] = picked.sum(1).cpu().numpy() / np.log(2.0)
        return out
