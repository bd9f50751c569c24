"""The adapter interface: what mmpid needs from a vision-language model family.

An adapter wraps one loaded model and its processor and turns a batch of
(image, question) pairs into pooled activations. Everything downstream (the
extraction loop, the store, the estimator) sees only :class:`Activations`.

What an adapter must provide
----------------------------
Subclass :class:`Adapter` (any architecture) or :class:`DecoderAdapter` (a
decoder VLM that scatters image features into the language model's input
embeddings: LLaVA, Idefics3, Qwen2-VL, PaliGemma, ...) and set:

``model_class`` or ``transformers_class()``
    The transformers class to load (``LlavaForConditionalGeneration``, ...);
    override the classmethod to import it lazily.
``family``
    A short name shown in manifests and messages.

and implement

``build_prompt(question, n_images)``
    The rendered prompt text (chat template applied, image placeholders in
    place, generation prompt appended). The question must appear verbatim.
``encode(images, questions)``
    Run the processor and return :class:`Encoded`: model inputs plus boolean
    masks of the image-token and question-token positions and the answer
    position (the last prompt token). :class:`DecoderAdapter` implements it
    from the processor's own image-token id and the tokenizer's offsets; a
    family usually only overrides :meth:`DecoderAdapter.image_token_id` or
    :meth:`DecoderAdapter.processor_kwargs`.
``run(encoded, *, pooling)``
    One forward pass returning :class:`Activations` (pooled, float32 numpy,
    hidden states of layers ``0..L``). :class:`DecoderAdapter` implements it
    with forward hooks on the language model's decoder layers (see
    :func:`capture_layers`); it needs :meth:`DecoderAdapter.language_model`
    (the text decoder, with ``.layers`` and usually ``.norm``) and
    :meth:`DecoderAdapter.backbone` (the module called with the processor's
    outputs; default ``model.model``, which skips the full-sequence LM head).

Layer convention: ``n_layers = L + 1`` hidden states for ``L`` decoder layers,
index 0 the merged input embeddings (image features already scattered into the
image-token positions), index ``l`` the output of decoder layer ``l``, and the
last index after the final norm: exactly what transformers returns with
``output_hidden_states=True``.

A cross-attention model (BLIP) subclasses :class:`Adapter` directly and documents
what its layers are.
"""

from __future__ import annotations

import abc
import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from mmpid.errors import InputError, ModelFamilyError
from mmpid.extract_options import POOLINGS

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

#: Entries kept per adapter in each of its caches (question-token runs, image-token counts); a full
#: cache is emptied and refilled. 4,096 question runs take a few MiB at most.
_CACHE_SIZE = 4096

__all__ = [
    "POOLINGS",
    "Activations",
    "Adapter",
    "DecoderAdapter",
    "Encoded",
    "capture_layers",
    "find_subsequence",
    "pool",
    "question_token_positions",
    "resolve_device",
    "resolve_dtype",
]


# --------------------------------------------------------------------------- data


@dataclass
class Encoded:
    """A processed batch, ready for :meth:`Adapter.run`.

    Attributes
    ----------
    inputs : dict of str to torch.Tensor
        Keyword arguments of the model call, on the model's device.
    image_mask, text_mask : torch.Tensor of bool, shape (B, T)
        Image-token positions (all tiles, all images) and question-token
        positions (no template boilerplate, no special tokens).
    answer_index : torch.Tensor of int64, shape (B,)
        Position of the last prompt token, whose hidden state predicts the answer.
    n_image_tokens : list of int
        Image tokens found in the ids, per example.
    expected_image_tokens : list of int or None
        Image tokens the processor says it inserted (None when it cannot say).
    image_check_skipped : str or None
        Why ``expected_image_tokens`` is None (the cross-check cannot run); None when it can.
    lengths : list of int
        Prompt length in tokens, per example.
    prompts : list of str
        The rendered prompts, per example.
    """

    inputs: dict[str, torch.Tensor]
    image_mask: torch.Tensor
    text_mask: torch.Tensor
    answer_index: torch.Tensor
    n_image_tokens: list[int]
    expected_image_tokens: list[int] | None
    lengths: list[int]
    prompts: list[str]
    extra: dict[str, Any] = field(default_factory=dict)
    image_check_skipped: str | None = None

    @property
    def batch_size(self) -> int:
        return int(self.answer_index.shape[0])


@dataclass(frozen=True)
class Activations:
    """Pooled activations of one batch, float32 numpy, on the CPU.

    Attributes
    ----------
    image : ndarray, shape (n_layers, B, d)
        Image-token hidden states pooled per layer. ``image[0]`` is X_image of the
        input-fusion protocol (image features as they enter the language model).
    text : ndarray, shape (n_layers, B, d)
        Question-token hidden states pooled per layer; ``text[0]`` is X_text.
    answer : ndarray, shape (n_layers, B, d)
        Hidden state at the answer position (last prompt token), per layer.
    logits : ndarray, shape (B, V) or None
        Next-token logits at the answer position.
    """

    image: np.ndarray
    text: np.ndarray
    answer: np.ndarray
    logits: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"image": self.image, "text": self.text, "answer": self.answer, "logits": self.logits}


# ---------------------------------------------------------------------- helpers


def resolve_device(device: str | torch.device) -> torch.device:
    """Map ``"auto" | "cpu" | "cuda" | "cuda:N"`` to a torch device."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise InputError(f"The 'device' parameter must be 'auto', 'cpu' or 'cuda[:N]'. Got {device!r}.")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu" or device.startswith("cuda"):
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"The 'device' parameter is {device!r} but CUDA is not available. Use 'cpu' or 'auto'.")
        return torch.device(device)
    raise InputError(f"The 'device' parameter must be 'auto', 'cpu' or 'cuda[:N]'. Got {device!r}.")


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """Map a dtype name to a torch dtype; None means float32 on CPU and bfloat16 on CUDA."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str) and dtype.lower() in _DTYPES:
        return _DTYPES[dtype.lower()]
    raise InputError(
        f"The 'dtype' parameter must be one of {sorted(set(_DTYPES))}, 'auto' or None. Got {dtype!r}."
    )


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool hidden states over the positions of a mask.

    Parameters
    ----------
    hidden : Tensor, shape (B, T, d)
    mask : Tensor of bool, shape (B, T); every row must have at least one True.
    how : {"mean", "last", "max"}
        ``last`` takes the last masked position of each row.

    Returns
    -------
    Tensor, shape (B, d), float32.
    """
    h = hidden.float()
    m = mask.to(h.device)
    if how == "mean":
        w = m.to(h.dtype).unsqueeze(-1)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)
    if how == "max":
        neg = torch.finfo(h.dtype).min
        return h.masked_fill(~m.unsqueeze(-1), neg).amax(1)
    if how == "last":
        t = torch.arange(m.shape[1], device=m.device)
        last = torch.where(m, t, -1).amax(1).clamp_min(0)
        return h[torch.arange(h.shape[0], device=h.device), last]
    raise InputError(f"The 'pooling' parameter must be one of {POOLINGS}. Got {how!r}.")


def find_subsequence(haystack: Sequence[int], needle: Sequence[int]) -> int:
    """Start of the last occurrence of ``needle`` in ``haystack``, or -1."""
    n, m = len(haystack), len(needle)
    if m == 0 or m > n:
        return -1
    hay, want = list(haystack), list(needle)
    first = want[0]
    for start in range(n - m, -1, -1):
        if hay[start] == first and hay[start : start + m] == want:
            return start
    return -1


def question_token_positions(
    offsets: Sequence[tuple[int, int]],
    span: tuple[int, int],
    special: Sequence[bool],
) -> list[int]:
    """Token indices whose character offsets overlap ``span`` and that are not special.

    Parameters
    ----------
    offsets : sequence of (start, end) character offsets, one per token
    span : (start, end) character span of the question in the text
    special : sequence of bool, one per token (True for special tokens)
    """
    s0, s1 = span
    return [i for i, ((a, b), sp) in enumerate(zip(offsets, special)) if not sp and b > a and a < s1 and b > s0]


@contextlib.contextmanager
def capture_layers(
    points: Sequence[tuple[nn.Module, str]],
    reduce: Callable[[int, torch.Tensor], None],
) -> Iterator[None]:
    """Call ``reduce(layer_index, hidden)`` at each capture point during a forward pass.

    Parameters
    ----------
    points : sequence of (module, "pre" | "post")
        Capture point ``i`` reads the first input (``"pre"``) or the output
        (``"post"``; first element of a tuple output) of its module.
    reduce : callable
        Receives the layer index and the hidden states, shape (B, T, d); it must
        keep only what it needs (pooled, detached copies).

    The hooks are removed on exit, also when the forward pass raises.
    """
    handles = []

    def _pre(i: int):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs.get("hidden_states")
            reduce(i, h.detach())

        return hook

    def _post(i: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, (tuple, list)) else output
            if hasattr(h, "last_hidden_state"):
                h = h.last_hidden_state
            reduce(i, h.detach())

        return hook

    try:
        for i, (module, where) in enumerate(points):
            if where == "pre":
                handles.append(module.register_forward_pre_hook(_pre(i), with_kwargs=True))
            elif where == "post":
                handles.append(module.register_forward_hook(_post(i)))
            else:  # pragma: no cover - programming error
                raise ValueError(f"capture point must be 'pre' or 'post', got {where!r}")
        yield
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------------- adapters


class Adapter(abc.ABC):
    """One loaded VLM and its processor, seen through what mmpid needs.

    Subclasses set :attr:`model_class` and :attr:`family` and implement
    :meth:`build_prompt`, :meth:`encode` and :meth:`run` (see the module docstring).
    """

    family: ClassVar[str] = ""
    model_class: ClassVar[Any] = None
    #: Why the last :meth:`encode` could not cross-check its image tokens (None: it could).
    image_check_skipped: str | None = None

    @classmethod
    def transformers_class(cls) -> Any:
        """The transformers model class this adapter loads."""
        if cls.model_class is None:
            raise NotImplementedError(f"{cls.__name__} must set model_class or override transformers_class().")
        return cls.model_class

    def __init__(self, model: nn.Module, processor: Any, *, model_id: str, revision: str | None = None) -> None:
        self.model = model
        self.processor = processor
        self.model_id = model_id
        self.revision = revision
        self.model.eval()

    # ---- loading
    @classmethod
    def load(cls, path: str, *, device: str = "auto", dtype: str | torch.dtype | None = None) -> Adapter:
        """Load model and processor from a hub id (cached) or a local folder."""
        from transformers import AutoProcessor

        dev = resolve_device(device)
        dt = resolve_dtype(dtype, dev)
        try:
            processor = AutoProcessor.from_pretrained(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelFamilyError(
                f"Could not load a processor from {path!r} ({type(exc).__name__}: {exc}). "
                "The model folder must contain the processor files: save them with processor.save_pretrained(path)."
            ) from exc
        if not hasattr(processor, "image_processor") or not hasattr(processor, "tokenizer"):
            raise ModelFamilyError(
                f"The folder {path!r} holds no multimodal processor (found {type(processor).__name__}: "
                "an image processor and a tokenizer are both needed). "
                "Save the model's processor with processor.save_pretrained(path)."
            )
        try:
            model = cls.transformers_class().from_pretrained(path, dtype=dt)
        except OSError as exc:
            raise ModelFamilyError(
                f"Could not load the {cls.family} model weights from {path!r} ({exc}). "
                "Save the model with model.save_pretrained(path), or give a hub id in the local cache."
            ) from exc
        model.to(dev)
        revision = getattr(model.config, "_commit_hash", None)
        return cls(model, processor, model_id=str(path), revision=revision)

    # ---- facts
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    @property
    def tokenizer(self) -> Any:
        return self.processor.tokenizer

    @property
    @abc.abstractmethod
    def n_layers(self) -> int:
        """Number of hidden states returned per layer sweep (decoder layers + 1)."""

    @property
    @abc.abstractmethod
    def hidden_size(self) -> int:
        """Width d of the pooled vectors."""

    @property
    def max_length(self) -> int | None:
        """Context length in tokens, or None if the config does not say."""
        cfg = getattr(self.model.config, "text_config", self.model.config)
        return getattr(cfg, "max_position_embeddings", None)

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the model."""
        return {
            "id": self.model_id,
            "revision": self.revision,
            "family": self.family,
            "model_type": getattr(self.model.config, "model_type", None),
            "class": type(self.model).__name__,
            "n_layers": self.n_layers,
            "hidden_size": self.hidden_size,
            "dtype": str(self.dtype).replace("torch.", ""),
            "device": str(self.device),
        }

    # ---- the work
    @abc.abstractmethod
    def build_prompt(self, question: str, n_images: int = 1) -> str:
        """Rendered prompt text with image placeholders; contains ``question`` verbatim."""

    @abc.abstractmethod
    def encode(self, images: Sequence[Image.Image | Sequence[Image.Image]], questions: Sequence[str]) -> Encoded:
        """Process a batch; each entry of ``images`` is one image or a list of images."""

    @abc.abstractmethod
    def run(self, encoded: Encoded, *, pooling: str = "mean") -> Activations:
        """One forward pass; pooled activations of every layer."""

    def answer_continuation(self, prompt: str, answer: str) -> list[int]:
        """Token ids of ``answer`` as the model would write it right after ``prompt``."""
        tok = self.tokenizer
        sep = "" if (not prompt or prompt[-1].isspace()) else " "
        base = tok(prompt, add_special_tokens=False)["input_ids"]
        full = tok(prompt + sep + answer, add_special_tokens=False)["input_ids"]
        if full[: len(base)] == base and len(full) > len(base):
            return list(full[len(base) :])
        return list(tok(sep + answer, add_special_tokens=False)["input_ids"])


class DecoderAdapter(Adapter):
    """A decoder VLM whose image features replace image-token embeddings.

    Subclasses implement :meth:`build_prompt` and may override
    :meth:`language_model`, :meth:`backbone`, :meth:`image_token_id`,
    :meth:`processor_kwargs` and :meth:`expected_image_tokens`.
    """

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
        cache: dict[tuple[int, int], int] = self.__dict__.setdefault("_mmpid_image_tokens", {})
        sizes = [[(im.height, im.width) for im in ims] for ims in images]
        needed = list(dict.fromkeys(sz for row in sizes for sz in row))
        known = {sz: cache[sz] for sz in needed if sz in cache}
        missing = [sz for sz in needed if sz not in known]
        if missing:
            counts = count(missing)
            if counts is None:
                return None
            known.update(zip(missing, counts))
            if len(cache) + len(missing) > _CACHE_SIZE:
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
        positions = self._question_positions(prompts, questions, ids, lengths)
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

    def _question_positions(
        self, prompts: Sequence[str], questions: Sequence[str], ids: torch.Tensor, lengths: torch.Tensor
    ) -> list[list[int]]:
        """Positions of each question's tokens in the processor's (expanded) ids.

        The question is located by characters in the unexpanded prompt, its tokens
        are read from the tokenizer's offset mapping (special tokens dropped), and
        that id run is found (its last occurrence) in the expanded ids: image
        placeholders are special tokens, so the text between them tokenizes the
        same before and after the processor expands them.

        The run and the question tokens' offsets in it depend on the prompt text
        alone, so they are cached per (prompt, question) on the adapter (VQA
        datasets repeat questions: easy-vqa has 107 distinct ones); only new
        prompts are tokenized, and each row costs one search of its ids.
        """
        cache: dict[tuple[str, str], tuple[list[int], list[int]]] = self.__dict__.setdefault(
            "_mmpid_question_runs", {}
        )
        keys = list(zip(prompts, questions))
        runs = {k: cache[k] for k in keys if k in cache}
        new = [k for k in dict.fromkeys(keys) if k not in runs]
        if new:
            found = self._question_runs([p for p, _ in new], [q for _, q in new])
            runs.update(zip(new, found))
            if len(cache) + len(new) > _CACHE_SIZE:
                cache.clear()
            cache.update(zip(new, found))
        rows = ids.tolist()
        out = []
        for row, length, key in zip(rows, lengths.tolist(), keys):
            run, rel = runs[key]
            at = find_subsequence(row[:length], run)
            if at < 0:
                raise InputError(
                    f"Could not find the question's tokens in the processor's input ids for {key[1]!r}; "
                    "the processor tokenizes the prompt differently from its tokenizer."
                )
            out.append([at + r for r in rel])
        return out

    def _question_runs(
        self, prompts: Sequence[str], questions: Sequence[str]
    ) -> list[tuple[list[int], list[int]]]:
        """Per prompt: the id run from the question's first token to the prompt's end, and its question tokens' offsets in it.

        One tokenizer pass over the unexpanded prompts, with character offsets.
        """
        rows = self._tokenize_with_offsets(prompts)
        special_ids = self._special_ids()
        out = []
        for (tok_ids, offsets, special_mask), prompt, question in zip(rows, prompts, questions):
            start = self._question_start(prompt, question)
            if start < 0 or not question.strip():
                raise InputError(f"The prompt template dropped the question {question!r}; cannot find its tokens.")
            special = [bool(sm) or t in special_ids for sm, t in zip(special_mask, tok_ids)]
            local = question_token_positions(offsets, (start, start + len(question)), special)
            if not local:
                raise InputError(f"The question {question!r} has no tokens after removing special tokens.")
            first = local[0]
            # the run reaches the prompt's end: the template's tail after the question makes
            # its last occurrence in the expanded ids the question's, even when the tail
            # repeats the question's own tokens
            out.append((list(tok_ids[first:]), [i - first for i in local]))
        return out

    def _question_start(self, prompt: str, question: str) -> int:
        """Where ``question`` begins in ``prompt`` (-1 if it is not there).

        The template's text after the question is the same for every question, so the question
        is the text just before it; searching for the question's last occurrence instead would,
        for a question that also occurs in the template's tail (``"ASSISTANT:"``), find the
        template's copy. The search remains the fallback for a template that varies its tail.
        """
        tail = self._template_tail
        if tail is not None and prompt.endswith(question + tail):
            return len(prompt) - len(tail) - len(question)
        return prompt.rfind(question)

    @functools.cached_property
    def _template_tail(self) -> str | None:
        """The rendered template's text after the question (None if the marker does not survive)."""
        marker = "mmpidquestionmarker"
        prompt = self.build_prompt(marker)
        if prompt.count(marker) != 1:
            return None
        return prompt[prompt.index(marker) + len(marker):]

    def _special_ids(self) -> set[int]:
        cached = self.__dict__.get("_mmpid_special_ids")
        if cached is None:
            cached = set(self.tokenizer.all_special_ids) | {self.image_token_id()}
            self.__dict__["_mmpid_special_ids"] = cached
        return cached

    def _tokenize_with_offsets(
        self, prompts: Sequence[str]
    ) -> list[tuple[list[int], list[tuple[int, int]], list[int]]]:
        """(ids, character offsets, special-token mask) per prompt, without special tokens added."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is not None and hasattr(backend, "encode"):
            # one prompt at a time: encode_batch wakes the tokenizers thread pool, which on
            # many-core hosts costs more CPU than these few short prompts take to tokenize
            encs = [backend.encode(p, add_special_tokens=False) for p in prompts]
            return [(e.ids, e.offsets, e.special_tokens_mask) for e in encs]
        enc = self.tokenizer(
            list(prompts), add_special_tokens=False, return_offsets_mapping=True, return_special_tokens_mask=True
        )
        return list(zip(enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]))

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
        cached = self.__dict__.get("_mmpid_use_cache")
        if cached is None or cached[0] is not getattr(forward, "__func__", forward):
            params = inspect.signature(forward).parameters
            takes = "use_cache" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
            cached = (getattr(forward, "__func__", forward), takes)
            self.__dict__["_mmpid_use_cache"] = cached
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
            raise InputError(f"The 'pooling' parameter must be one of {POOLINGS}. Got {pooling!r}.")
        spans = torch.stack((encoded.image_mask, encoded.text_mask)).any(-1).all(-1).tolist()  # one sync
        for name, ok in zip(("image", "question"), spans):
            if not ok:
                raise InputError(f"Some examples in the batch have no {name} tokens; cannot pool an empty span.")
        points = self.__dict__.get("_mmpid_capture_points")
        if points is None:  # the module tree is fixed once loaded: look the capture points up once
            points = self.__dict__["_mmpid_capture_points"] = self.capture_points()
        n = len(points)  # = n_layers
        b = encoded.batch_size
        rows = torch.arange(b, device=encoded.answer_index.device)
        pooled: list[torch.Tensor | None] = [None] * n  # per layer (B, 3, d): image, text, answer
        last_full: list[torch.Tensor] = []
        weights = _pool_weights(encoded, pooling)  # (B, 3, T) for the linear poolings, else None

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


def _pool_weights(encoded: Encoded, pooling: str) -> torch.Tensor | None:
    """Rows of a (B, 3, T) matrix whose product with hidden states (B, T, d) pools image, text, answer.

    Mean and last pooling are linear in the hidden states, so one batched matrix
    product per layer does all three; max pooling returns None (pooled directly).
    """
    if pooling == "max":
        return None
    b, t = encoded.image_mask.shape
    dev = encoded.image_mask.device
    pos = torch.arange(t, device=dev)
    answer = pos == encoded.answer_index.unsqueeze(-1)  # (B, T)
    masks = torch.stack((encoded.image_mask, encoded.text_mask, answer), dim=1)  # (B, 3, T)
    if pooling == "last":
        last = torch.where(masks, pos, -1).amax(-1, keepdim=True)  # (B, 3, 1)
        masks = pos == last
    w = masks.to(torch.float32)
    return w / w.sum(-1, keepdim=True).clamp_min(1.0)
