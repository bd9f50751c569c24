"""The decoder adapter: a VLM whose image features replace image-token embeddings in the
language model's input (LLaVA, Idefics3, Qwen2-VL, PaliGemma, ...).

It implements :meth:`~mmpid.models.base.Adapter.encode` from the processor's own image-token
id and the question spans found by :class:`~mmpid.models.spans.SpanFinder`, and
:meth:`~mmpid.models.base.Adapter.run` with forward hooks on the decoder layers
(:func:`~mmpid.models.hooks.capture_layers`). A family usually overrides only
:meth:`DecoderAdapter.image_token_id`, :meth:`DecoderAdapter.processor_kwargs` or
:meth:`DecoderAdapter.expected_image_tokens`.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from mmpid.errors import InputError, ModelFamilyError
from mmpid.extract_options import POOLINGS
from mmpid.models.base import Activations, Adapter, Encoded, TokenActivations
from mmpid.models.hooks import capture_layers, pool, pool_weights
from mmpid.models.spans import SpanFinder

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["IMAGE_CACHE_SIZE", "DecoderAdapter"]

#: Image sizes whose token counts an adapter keeps; a full cache is emptied and refilled.
IMAGE_CACHE_SIZE = 4096


class DecoderAdapter(Adapter):
    """A decoder VLM whose image features replace image-token embeddings.

    Subclasses implement :meth:`build_prompt` and may override
    :meth:`language_model`, :meth:`backbone`, :meth:`image_token_id`,
    :meth:`processor_kwargs` and :meth:`expected_image_tokens`.
    """

    def __init__(self, model: nn.Module, processor: Any, *, model_id: str, revision: str | None = None) -> None:
        super().__init__(model, processor, model_id=model_id, revision=revision)
        #: (height, width) -> image tokens the processor inserts for one image of that size
        self.image_token_cache: dict[tuple[int, int], int] = {}
        self._capture_points: list[tuple[nn.Module, str]] | None = None
        self._takes_use_cache: tuple[Any, bool] | None = None

    @functools.cached_property
    def spans(self) -> SpanFinder:
        """Finds the question's tokens in the processor's ids (and owns that cache)."""
        return SpanFinder(self.tokenizer, self.build_prompt, special_ids=[self.image_token_id()])

    # ---- architecture accessors
    def language_model(self) -> nn.Module:
        """The text decoder (has ``.layers`` and usually ``.norm``)."""
        inner = getattr(self.model, "model", self.model)
        for name in ("language_model", "text_model"):
            lm = getattr(inner, name, None)
            if lm is not None:
                return getattr(lm, "model", lm)
        raise ModelFamilyError(
            f"{type(self.model).__name__} has no language_model/text_model; override language_model()."
        )

    def backbone(self) -> nn.Module:
        """The module called with the processor's outputs (no full-sequence LM head)."""
        return getattr(self.model, "model", self.model)

    def decoder_layers(self) -> Sequence[nn.Module]:
        return self.language_model().layers

    def final_norm(self) -> nn.Module | None:
        return getattr(self.language_model(), "norm", None)

    def image_token_id(self) -> int:
        """The id the processor inserts for each image feature, from config or processor."""
        for obj in (self.model.config, self.processor):
            for name in ("image_token_id", "image_token_index"):
                v = getattr(obj, name, None)
                if isinstance(v, int):
                    return v
        tok = getattr(self.processor, "image_token", None)
        if isinstance(tok, str):
            return int(self.tokenizer.convert_tokens_to_ids(tok))
        raise ModelFamilyError(f"Cannot find the image-token id of {type(self.model).__name__}.")

    def processor_kwargs(self) -> dict[str, Any]:
        return {}

    # ---- facts
    @property
    def n_layers(self) -> int:
        return len(self.decoder_layers()) + 1

    @property
    def hidden_size(self) -> int:
        cfg = getattr(self.model.config, "text_config", self.model.config)
        return int(cfg.hidden_size)

    # ---- encode
    def expected_image_tokens(self, images: Sequence[Sequence[Image.Image]]) -> list[int] | None:
        """Image tokens the processor inserts per example, from its own bookkeeping.

        None when the processor cannot say; :attr:`image_check_skipped` then says why.
        """
        fn = getattr(self.processor, "_get_num_multimodal_tokens", None)
        if fn is None:
            self.image_check_skipped = f"{type(self.processor).__name__} has no _get_num_multimodal_tokens"
            return None

        def count(sizes: list[tuple[int, int]]) -> list[int] | None:
            try:
                data = fn(image_sizes=sizes)
            except (TypeError, ValueError, KeyError, AttributeError) as exc:
                self.image_check_skipped = (
                    f"{type(self.processor).__name__}._get_num_multimodal_tokens failed "
                    f"({type(exc).__name__}: {exc})"
                )
                return None
            counts = getattr(data, "num_image_tokens", None)
            if counts is None and isinstance(data, dict):
                counts = data.get("num_image_tokens")
            if counts is None or len(counts) != len(sizes):
                self.image_check_skipped = (
                    f"{type(self.processor).__name__}._get_num_multimodal_tokens gave no per-image counts"
                )
                return None
            return [int(c) for c in counts]

        return self._image_token_counts(images, count)

    def _image_token_counts(
        self,
        images: Sequence[Sequence[Image.Image]],
        count: Callable[[list[tuple[int, int]]], list[int] | None],
    ) -> list[int] | None:
        """Per-example sums of per-image token counts, ``count`` called once per new image size.

        The processor's count depends on an image's (height, width) only, so the
        counts are cached per size on the adapter; ``count`` maps a list of sizes
        to their counts (or None when the processor cannot say, which is not cached).
        """
        cache = self.image_token_cache
        sizes = [[(im.height, im.width) for im in ims] for ims in images]
        needed = list(dict.fromkeys(sz for row in sizes for sz in row))
        known = {sz: cache[sz] for sz in needed if sz in cache}
        missing = [sz for sz in needed if sz not in known]
        if missing:
            counts = count(missing)
            if counts is None:
                return None
            known.update(zip(missing, counts))
            if len(cache) + len(missing) > IMAGE_CACHE_SIZE:
                cache.clear()
            cache.update(zip(missing, counts))
        return [sum(known[sz] for sz in row) for row in sizes]

    def _call_processor(self, images: list[list[Image.Image]], prompts: list[str]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        old_side = getattr(tok, "padding_side", "right")
        tok.padding_side = "right"
        try:
            batch = self.processor(
                images=images, text=prompts, padding=True, return_tensors="pt", **self.processor_kwargs()
            )
        finally:
            tok.padding_side = old_side
        return dict(batch)

    def encode(self, images: Sequence[Image.Image | Sequence[Image.Image]], questions: Sequence[str]) -> Encoded:
        if len(images) != len(questions):
            raise InputError(
                f"'images' and 'questions' must have the same length. Got {len(images)} and {len(questions)}."
            )
        ims = [list(x) if isinstance(x, (list, tuple)) else [x] for x in images]
        prompts = [self.build_prompt(q, len(i)) for q, i in zip(questions, ims)]
        inputs = self._call_processor(ims, prompts)
        ids = inputs["input_ids"]
        attn = inputs.get("attention_mask")
        lengths = attn.sum(1) if attn is not None else torch.full((ids.shape[0],), ids.shape[1])
        image_mask = ids == self.image_token_id()
        positions = self.spans.positions(prompts, questions, ids, lengths)
        text_mask = np.zeros(tuple(ids.shape), dtype=bool)  # numpy: cheaper than torch for this small scatter
        text_mask[[b for b, pos in enumerate(positions) for _ in pos], [p for pos in positions for p in pos]] = True
        dev, dt = self.device, self.dtype
        model_inputs = {
            k: (v.to(dev, dt) if torch.is_floating_point(v) else v.to(dev))
            for k, v in inputs.items()
            if isinstance(v, torch.Tensor)
        }
        expected = self.expected_image_tokens(ims)
        return Encoded(
            inputs=model_inputs,
            image_mask=image_mask.to(dev),
            text_mask=torch.from_numpy(text_mask).to(dev),
            answer_index=(lengths - 1).to(dev, torch.long),
            n_image_tokens=image_mask.sum(1).tolist(),
            expected_image_tokens=expected,
            lengths=lengths.tolist(),
            prompts=prompts,
            image_check_skipped=None if expected is not None else (
                self.image_check_skipped or f"{type(self).__name__} cannot count the image tokens it expects"
            ),
        )

    # ---- run
    def capture_points(self) -> list[tuple[nn.Module, str]]:
        layers = list(self.decoder_layers())
        norm = self.final_norm()
        points: list[tuple[nn.Module, str]] = [(layers[0], "pre")]
        points += [(layer, "post") for layer in layers[:-1]]
        points.append((norm, "post") if norm is not None else (layers[-1], "post"))
        return points

    def answer_logits(self, last_hidden: torch.Tensor) -> torch.Tensor:
        """Next-token logits from the final hidden state at the answer position, (B, d) -> (B, V)."""
        head = self.model.get_output_embeddings()
        return head(last_hidden.to(head.weight.dtype))

    def forward_kwargs(self, encoded: Encoded) -> dict[str, Any]:
        kw = dict(encoded.inputs)
        if self._backbone_takes_use_cache():
            kw["use_cache"] = False
        return kw

    def _backbone_takes_use_cache(self) -> bool:
        forward = self.backbone().forward
        cached = self._takes_use_cache
        if cached is None or cached[0] is not getattr(forward, "__func__", forward):
            params = inspect.signature(forward).parameters
            takes = "use_cache" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
            cached = self._takes_use_cache = (getattr(forward, "__func__", forward), takes)
        return cached[1]

    @torch.inference_mode()
    def score_answers(
        self,
        images: Sequence[Image.Image | Sequence[Image.Image]],
        questions: Sequence[str],
        answers: Sequence[str],
    ) -> np.ndarray:
        """Log-probability (bits) of each answer's tokens after each prompt, shape (B, len(answers)).

        One batched forward pass per candidate answer: the answer is appended to
        the rendered prompt and the log-probabilities of its tokens are summed.
        """
        ims = [list(x) if isinstance(x, (list, tuple)) else [x] for x in images]
        prompts = [self.build_prompt(q, len(i)) for q, i in zip(questions, ims)]
        base = self._call_processor(ims, prompts)
        base_len = base.get("attention_mask", torch.ones_like(base["input_ids"])).sum(1)
        out = np.zeros((len(prompts), len(answers)))
        for j, answer in enumerate(answers):
            full_prompts = [p + ("" if p[-1:].isspace() else " ") + answer for p in prompts]
            inputs = self._call_processor(ims, full_prompts)
            ids = inputs["input_ids"]
            full_len = inputs.get("attention_mask", torch.ones_like(ids)).sum(1)
            kw = {
                k: (v.to(self.device, self.dtype) if torch.is_floating_point(v) else v.to(self.device))
                for k, v in inputs.items()
                if isinstance(v, torch.Tensor)
            }
            logits = self.model(**kw, use_cache=False).logits.float()
            logp = torch.log_softmax(logits, dim=-1)
            for b in range(len(prompts)):
                lo, hi = int(base_len[b]), int(full_len[b])
                if hi <= lo:
                    raise InputError(f"The answer {answer!r} adds no tokens to the prompt; cannot score it.")
                pos = torch.arange(lo, hi)
                tok = ids[b, pos].to(logp.device)
                out[b, j] = float(logp[b, pos - 1, tok].sum()) / float(np.log(2.0))
        return out

    @torch.inference_mode()
    def run(self, encoded: Encoded, *, pooling: str = "mean") -> Activations:
        if pooling not in POOLINGS:
            raise InputError(f"The 'pooling' parameter must be one of {list(POOLINGS)}. Got {pooling!r}.")
        spans = torch.stack((encoded.image_mask, encoded.text_mask)).any(-1).all(-1).tolist()  # one sync
        for name, ok in zip(("image", "question"), spans):
            if not ok:
                raise InputError(f"Some examples in the batch have no {name} tokens; cannot pool an empty span.")
        points = self._capture_points
        if points is None:  # the module tree is fixed once loaded: look the capture points up once
            points = self._capture_points = self.capture_points()
        n = len(points)  # = n_layers
        b = encoded.batch_size
        rows = torch.arange(b, device=encoded.answer_index.device)
        pooled: list[torch.Tensor | None] = [None] * n  # per layer (B, 3, d): image, text, answer
        last_full: list[torch.Tensor] = []
        weights = pool_weights(encoded, pooling)  # (B, 3, T) for the linear poolings, else None

        def reduce(i: int, h: torch.Tensor) -> None:
            if weights is not None:
                pooled[i] = torch.bmm(weights.to(h.device), h.float())
            else:
                pooled[i] = torch.stack(
                    [
                        pool(h, encoded.image_mask, pooling),
                        pool(h, encoded.text_mask, pooling),
                        h[rows, encoded.answer_index].float(),
                    ],
                    dim=1,
                )
            if i == n - 1:
                last_full.append(h[rows, encoded.answer_index])

        with capture_layers(points, reduce):
            self.backbone()(**self.forward_kwargs(encoded))
        if any(v is None for v in pooled):
            missing = [i for i, v in enumerate(pooled) if v is None]
            raise ModelFamilyError(f"Layers {missing} of {type(self.model).__name__} were not captured.")
        logits = self.answer_logits(last_full[-1]).float()
        allp = torch.stack(pooled).cpu().numpy().astype(np.float32, copy=False)  # type: ignore[arg-type]
        return Activations(image=allp[:, :, 0], text=allp[:, :, 1], answer=allp[:, :, 2], logits=logits.cpu().numpy())

    @torch.inference_mode()
    def run_tokens(self, encoded: Encoded) -> TokenActivations:
        """One forward pass; the image tokens and question embeddings (hidden state 0 at their
        positions) and every layer's hidden states over every prompt position, per example."""
        spans = torch.stack((encoded.image_mask, encoded.text_mask)).any(-1).all(-1).tolist()
        for name, ok in zip(("image", "question"), spans):
            if not ok:
                raise InputError(f"Some examples in the batch have no {name} tokens; a token set would be empty.")
        points = self._capture_points
        if points is None:
            points = self._capture_points = self.capture_points()
        n = len(points)
        captured: list[torch.Tensor | None] = [None] * n

        def reduce(i: int, h: torch.Tensor) -> None:
            captured[i] = h.float().cpu()

        with capture_layers(points, reduce):
            self.backbone()(**self.forward_kwargs(encoded))
        if any(v is None for v in captured):
            missing = [i for i, v in enumerate(captured) if v is None]
            raise ModelFamilyError(f"Layers {missing} of {type(self.model).__name__} were not captured.")
        stack = torch.stack(captured)  # type: ignore[arg-type]  # (n_layers, B, T, d)
        rows = torch.arange(encoded.batch_size)
        answer = encoded.answer_index.cpu()
        logits = self.answer_logits(stack[-1][rows, answer].to(self.device)).float().cpu().numpy()
        hidden = stack.numpy()
        image_mask = encoded.image_mask.cpu().numpy()
        text_mask = encoded.text_mask.cpu().numpy()
        lengths = encoded.lengths
        return TokenActivations(
            image=[np.ascontiguousarray(hidden[0, b, image_mask[b]]) for b in range(encoded.batch_size)],
            text=[np.ascontiguousarray(hidden[0, b, text_mask[b]]) for b in range(encoded.batch_size)],
            hidden=[np.ascontiguousarray(hidden[:, b, : int(lengths[b])]) for b in range(encoded.batch_size)],
            logits=logits,
        )
