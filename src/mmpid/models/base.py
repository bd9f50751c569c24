"""The adapter interface: what mmpid needs from a vision-language model family.

An adapter wraps one loaded model and its processor and turns a batch of
(image, question) pairs into pooled activations. Everything downstream (the
extraction loop, the store, the estimator) sees only :class:`Activations`.

What an adapter must provide
----------------------------
Subclass :class:`Adapter` (any architecture) or
:class:`~mmpid.models.decoder.DecoderAdapter` (a decoder VLM that scatters image features into the language model's input
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
    :func:`mmpid.models.hooks.capture_layers`); it needs :meth:`DecoderAdapter.language_model`
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

The package's modules, one job each: this one (the interface, devices and dtypes, answer
tokens), :mod:`mmpid.models.hooks` (layer hooks and pooling), :mod:`mmpid.models.spans`
(finding the question's tokens) and :mod:`mmpid.models.decoder` (the decoder adapter).
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

from mmpid.errors import InputError, ModelFamilyError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = [
    "Activations",
    "Adapter",
    "Encoded",
    "TokenActivations",
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


@dataclass(frozen=True)
class TokenActivations:
    """Unpooled token sets of one batch (the ``tokens`` protocol), float32 numpy, on the CPU.

    Attributes
    ----------
    image : list of B arrays, shape (T_image_b, d)
        The image tokens as they enter the language model (hidden state 0 at the image-token
        positions, in sequence order, all tiles and images).
    text : list of B arrays, shape (T_text_b, d)
        The question's input embeddings (hidden state 0 at the question-token positions).
    hidden : list of B arrays, shape (n_layers, T_b, d)
        Every hidden state of every prompt position (no padding): exactly
        ``output_hidden_states`` of the forward pass, row ``T_b - 1`` the answer position.
    logits : ndarray, shape (B, V) or None
        Next-token logits at the answer position.
    """

    image: list[np.ndarray]
    text: list[np.ndarray]
    hidden: list[np.ndarray]
    logits: np.ndarray | None = None


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
        #: (template tail, answers) -> the answers' single tokens, or None (see first_token_answers)
        self._answer_tokens: dict[tuple[str, tuple[str, ...]], list[int] | None] = {}

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

    def run_tokens(self, encoded: Encoded) -> TokenActivations:
        """One forward pass; the unpooled token sets of the ``tokens`` protocol.

        Implemented by decoder VLMs (:class:`~mmpid.models.decoder.DecoderAdapter`), whose image
        tokens, question tokens and hidden states share one sequence.
        """
        raise ModelFamilyError(
            f"protocol='tokens' needs a decoder VLM whose image and question tokens share one "
            f"sequence; the {self.family or type(self).__name__} adapter does not store token sets. "
            "Use protocol='input-fusion' or 'span'."
        )

    def answer_continuation(self, prompt: str, answer: str) -> list[int]:
        """Token ids of ``answer`` as the model would write it right after ``prompt``."""
        tok = self.tokenizer
        sep = "" if (not prompt or prompt[-1].isspace()) else " "
        base = tok(prompt, add_special_tokens=False)["input_ids"]
        full = tok(prompt + sep + answer, add_special_tokens=False)["input_ids"]
        if full[: len(base)] == base and len(full) > len(base):
            return list(full[len(base) :])
        return list(tok(sep + answer, add_special_tokens=False)["input_ids"])

    def first_token_answers(self, prompt: str, question: str, answers: Sequence[str]) -> list[int] | None:
        """Each answer's token id when every answer is one token after ``prompt`` and all differ.

        The model's prediction is then read from the next-token logits of the forward pass
        already made (free); None means the answers must be scored as sequences
        (:meth:`score_answers`, one pass per answer). Cached per template tail (the prompt's
        text after ``question``) and answer set.
        """
        tail = prompt[prompt.rfind(question) + len(question):]
        key = (tail, tuple(answers))
        if key not in self._answer_tokens:
            conts = [self.answer_continuation(prompt, a) for a in answers]
            firsts = [c[0] for c in conts if c]
            single = all(len(c) == 1 for c in conts) and len(set(firsts)) == len(conts)
            self._answer_tokens[key] = firsts if single else None
        return self._answer_tokens[key]
