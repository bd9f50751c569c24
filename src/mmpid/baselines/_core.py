"""What every baseline shares: the probe of one batch, the value function, masking, intervals.

The value function
------------------
Every output-based method scores the same number: the log-probability, in bits, of the
model's own unperturbed prediction ŷ among the dataset's answers, read at the answer position
(the last prompt token): ``v = log2 softmax(logits[answer tokens])[ŷ]``. ŷ is fixed from the
unperturbed input; a perturbation can only lower or raise its probability.

Masking
-------
The probe captures the keyword arguments the VLM hands its language model (the merged input
embeddings, after the image features were scattered into the image-token positions, and the
masks and positions the wrapper computed) with a forward pre-hook, then replays the language
model with modified embeddings:

- image masked: the features of a blank image of the same size (easy-vqa's mean colour unless
  told otherwise) at the image positions, so the number of image tokens does not change;
- question masked: the pad token's input embedding at every question position (the template
  around the question is kept).

Swapping images or permuting questions across samples re-encodes the swapped inputs and runs
the whole model (the token count may change with the question).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mmpid.errors import InputError, ModelFamilyError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from mmpid.data import VQADataset
    from mmpid.models.base import Adapter

__all__ = ["Interval", "MethodResult", "Probe", "bootstrap_mean", "bootstrap_share", "iter_probes"]

LOG2 = float(np.log(2.0))
#: easy-vqa's mean pixel colour: the blank image (about zero after normalisation).
BLANK_COLOR = (128, 128, 128)


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Interval:
    """A statistic over samples with its bootstrap interval (``level``, basic percentile)."""

    value: float
    ci_low: float
    ci_high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci_low": self.ci_low, "ci_high": self.ci_high}


@dataclass(frozen=True)
class MethodResult:
    """What one method says about one model on one dataset.

    Attributes
    ----------
    method : str
        ``"ablation"``, ``"perceptual"``, ``"shapley"``, ``"mmshap"``, ``"ig"`` or ``"attention"``.
    image_share : Interval
        The method's share of the image in [0, 1] (how each method defines it is in
        ``definition``), with a bootstrap interval over samples.
    stats : dict of str to Interval
        The method's aggregated numbers (bits for log-probabilities, fractions for rates).
    per_sample : dict of str to ndarray, shape (N,)
        The per-sample values the aggregates are means of.
    cost : dict
        ``seconds`` and ``forward_passes`` (language-model rows evaluated).
    definition : str
        How ``image_share`` is computed, in words.
    """

    method: str
    image_share: Interval
    stats: dict[str, Interval]
    per_sample: dict[str, np.ndarray] = field(repr=False)
    cost: dict[str, float]
    definition: str

    def to_dict(self, *, per_sample: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "method": self.method,
            "image_share": self.image_share.to_dict(),
            "stats": {k: v.to_dict() for k, v in self.stats.items()},
            "cost": dict(self.cost),
            "definition": self.definition,
        }
        if per_sample:
            out["per_sample"] = {k: np.asarray(v).tolist() for k, v in self.per_sample.items()}
        return out

    def to_frame(self) -> Any:
        """One row per statistic (``image_share`` first): value, ci_low, ci_high."""
        import pandas as pd

        rows = [{"method": self.method, "stat": "image_share", **self.image_share.to_dict()}]
        rows += [{"method": self.method, "stat": k, **v.to_dict()} for k, v in self.stats.items()]
        return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- intervals


def _resamples(n: int, n_boot: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def bootstrap_mean(values: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Mean of ``values`` (N,) with a percentile bootstrap interval over samples."""
    v = np.asarray(values, dtype=float)
    if v.ndim != 1 or v.size == 0:
        raise InputError(f"The 'values' parameter must be a non-empty 1-D array. Got shape {v.shape}.")
    means = v[_resamples(v.size, n_boot, seed)].mean(1)
    a = (1 - level) / 2
    return Interval(float(v.mean()), float(np.quantile(means, a)), float(np.quantile(means, 1 - a)))


def bootstrap_share(
    image: np.ndarray, text: np.ndarray, *, n_boot: int = 1000, level: float = 0.95, seed: int = 0
) -> Interval:
    """|mean(image)| / (|mean(image)| + |mean(text)|) with a bootstrap interval (NaN when both are 0)."""
    i, t = np.asarray(image, dtype=float), np.asarray(text, dtype=float)
    idx = _resamples(i.size, n_boot, seed)

    def share(mi: np.ndarray, mt: np.ndarray) -> np.ndarray:
        den = np.abs(mi) + np.abs(mt)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, np.abs(mi) / np.where(den > 0, den, 1.0), np.nan)

    point = float(share(np.array(i.mean()), np.array(t.mean())))
    boots = share(i[idx].mean(1), t[idx].mean(1))
    a = (1 - level) / 2
    if np.all(np.isnan(boots)):
        return Interval(point, float("nan"), float("nan"))
    return Interval(point, float(np.nanquantile(boots, a)), float(np.nanquantile(boots, 1 - a)))


# ----------------------------------------------------------------------------- the probe


def derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(n)`` with no fixed point (n >= 2)."""
    if n < 2:
        raise InputError(f"Swapping needs at least 2 samples in a batch. Got {n}.")
    perm = rng.permutation(n)
    return perm[(np.argsort(perm) + 1) % n]  # i -> perm[pos(i) + 1]: a single cycle, no fixed point


def _select(key: str, value: Any, idx: torch.Tensor, batch: int) -> Any:
    """Rows ``idx`` of every per-sample tensor in a captured keyword argument."""
    import torch

    if isinstance(value, torch.Tensor):
        if key == "position_ids" and value.ndim == 3:  # multimodal rope positions (3 or 4, B, T)
            return value[:, idx]
        if value.ndim >= 1 and value.shape[0] == batch:
            return value[idx]
        return value
    if isinstance(value, dict):
        return {k: _select(k, v, idx, batch) for k, v in value.items()}
    return value


class Probe:
    """One batch of (image, question) pairs, encoded, run once, ready to be replayed.

    Attributes
    ----------
    embeds : torch.Tensor, shape (B, T, d)
        The merged input embeddings the language model received.
    blank_embeds : torch.Tensor, shape (B, T, d)
        The same with a blank image of each image's size.
    image_mask, text_mask : torch.Tensor of bool, shape (B, T)
    answer_index : torch.Tensor, shape (B,)
    logp : ndarray, shape (B, K)
        Log-probabilities (bits) of the dataset's K answers on the unperturbed input.
    pred : ndarray of int, shape (B,)
        ŷ, the index of the model's answer among the dataset's answers.
    """

    def __init__(
        self,
        adapter: Adapter,
        images: Sequence[Any],
        questions: Sequence[str],
        answers: Sequence[str],
        *,
        blank_color: tuple[int, int, int] = BLANK_COLOR,
        attn_eager: bool = False,
    ) -> None:
        import torch

        from mmpid.models.decoder import DecoderAdapter

        if not isinstance(adapter, DecoderAdapter):
            raise ModelFamilyError(
                f"The baselines need a decoder VLM that merges image features into the language model's "
                f"input embeddings; the {adapter.family!r} family ({type(adapter).__name__}) does not."
            )
        self.adapter = adapter
        self.images = list(images)
        self.questions = list(questions)
        self.answers = tuple(answers)
        self.blank_color = blank_color
        self.n_passes = 0
        enc = adapter.encode(self.images, self.questions)
        self.encoded = enc
        self.batch = enc.batch_size
        self.answer_tokens = self._answer_tokens(enc.prompts[0], self.questions[0])
        self.image_mask = enc.image_mask
        self.text_mask = enc.text_mask
        self.answer_index = enc.answer_index
        with torch.no_grad():
            self.kwargs, logits = self._capture(enc)
            self.embeds = self.kwargs.pop("inputs_embeds").detach()
            blanks = [self._blank(im) for im in self.images]
            benc = adapter.encode(blanks, self.questions)
            if not torch.equal(benc.image_mask, enc.image_mask):
                raise ModelFamilyError(
                    "A blank image of the same size gave a different number of image tokens; "
                    "the image cannot be masked without moving the question."
                )
            bkw, _ = self._capture(benc)
            self.blank_embeds = bkw["inputs_embeds"].detach()
        pad = adapter.tokenizer.pad_token_id
        if pad is None:
            pad = adapter.tokenizer.eos_token_id
        if pad is None:
            raise ModelFamilyError("The tokenizer has neither a pad nor an eos token to mask the question with.")
        emb = adapter.language_model().get_input_embeddings()
        with torch.no_grad():
            self.pad_embed = emb(torch.tensor([pad], device=self.embeds.device))[0].to(self.embeds.dtype)
        self.logp = self.answer_logp(logits).cpu().numpy()
        self.pred = self.logp.argmax(1)

    # ---- construction helpers
    def _blank(self, image: Any) -> Any:
        from PIL import Image

        ims = image if isinstance(image, (list, tuple)) else [image]
        out = [Image.new("RGB", im.size, self.blank_color) for im in ims]
        return out if isinstance(image, (list, tuple)) else out[0]

    def _answer_tokens(self, prompt: str, question: str) -> list[int]:
        toks = self.adapter.first_token_answers(prompt, question, self.answers)
        if toks is None:
            raise ModelFamilyError(
                "The baselines read ŷ and its log-probability from the next-token logits, so every answer "
                f"must be one distinct token after the prompt; the answers {list(self.answers)[:8]} are not."
            )
        return toks

    def _capture(self, enc: Any) -> tuple[dict[str, Any], torch.Tensor]:
        """Run the whole model once; the language model's keyword arguments and the answer logits."""
        import torch

        captured: dict[str, Any] = {}

        def hook(module: Any, args: tuple, kwargs: dict) -> None:
            if args:
                raise ModelFamilyError(
                    f"{type(self.adapter.model).__name__} calls its language model with positional "
                    "arguments; the baselines cannot replay it."
                )
            captured.update(kwargs)

        lm = self.adapter.language_model()
        handle = lm.register_forward_pre_hook(hook, with_kwargs=True)
        try:
            out = self.adapter.backbone()(**self.adapter.forward_kwargs(enc))
        finally:
            handle.remove()
        if captured.get("inputs_embeds") is None:
            raise ModelFamilyError(
                f"{type(self.adapter.model).__name__} did not hand its language model inputs_embeds; "
                "the baselines cannot mask its modalities."
            )
        self.n_passes += enc.batch_size
        hidden = out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]
        rows = torch.arange(enc.batch_size, device=hidden.device)
        logits = self.adapter.answer_logits(hidden[rows, enc.answer_index]).float()
        kw = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in captured.items()}
        for k in ("past_key_values", "cache"):  # the cache object of the captured pass is not replayed
            if not isinstance(kw.get(k), torch.Tensor):
                kw.pop(k, None)
        kw["use_cache"] = False
        return kw, logits

    # ---- evaluation
    def answer_logp(self, logits: torch.Tensor) -> torch.Tensor:
        """(R, V) next-token logits -> (R, K) log-probabilities in bits over the dataset's answers."""
        import torch

        idx = torch.tensor(self.answer_tokens, device=logits.device)
        return torch.log_softmax(logits.float()[:, idx], dim=-1) / LOG2

    def replay(
        self, embeds: torch.Tensor, rows: np.ndarray | None = None, *, output_attentions: bool = False
    ) -> Any:
        """Run the language model on ``embeds`` (R, T, d) for the samples ``rows`` (R,) of the batch.

        Returns the language model's output; ``answer_logits`` of its last hidden state at each
        row's answer position gives the logits. Gradients flow when enabled by the caller.
        """
        import torch

        if rows is None:
            rows = np.arange(self.batch)
        idx = torch.as_tensor(np.asarray(rows), device=embeds.device, dtype=torch.long)
        kw = {k: _select(k, v, idx, self.batch) for k, v in self.kwargs.items()}
        kw["inputs_embeds"] = embeds
        if output_attentions:
            kw["output_attentions"] = True
        self.n_passes += int(embeds.shape[0])
        return self.adapter.language_model()(**kw)

    def value(self, embeds: torch.Tensor, rows: np.ndarray | None = None) -> torch.Tensor:
        """log2 p(ŷ) (R,) of each row's own unperturbed prediction, at the answer position."""
        import torch

        if rows is None:
            rows = np.arange(self.batch)
        out = self.replay(embeds, rows)
        idx = torch.as_tensor(np.asarray(rows), device=embeds.device, dtype=torch.long)
        h = out.last_hidden_state[torch.arange(len(idx), device=embeds.device), self.answer_index[idx]]
        logp = self.answer_logp(self.adapter.answer_logits(h))
        pred = torch.as_tensor(self.pred, device=logp.device)[idx]
        return logp[torch.arange(len(idx), device=logp.device), pred]

    def full_logp(self, embeds: torch.Tensor) -> np.ndarray:
        """(B, K) answer log-probabilities (bits) of the whole batch on ``embeds``."""
        import torch

        out = self.replay(embeds)
        rows = torch.arange(self.batch, device=embeds.device)
        h = out.last_hidden_state[rows, self.answer_index]
        return self.answer_logp(self.adapter.answer_logits(h)).detach().cpu().numpy()

    def masked(self, *, image: bool, text: bool) -> torch.Tensor:
        """The merged embeddings with the image and/or the question masked (B, T, d)."""
        import torch

        e = self.embeds
        if image:
            e = torch.where(self.image_mask[..., None], self.blank_embeds, e)
        if text:
            e = torch.where(self.text_mask[..., None], self.pad_embed.expand_as(e), e)
        return e

    def logp_of(self, images: Sequence[Any], questions: Sequence[str]) -> np.ndarray:
        """(B, K) answer log-probabilities (bits) of the whole model on other inputs (re-encoded)."""
        import torch

        enc = self.adapter.encode(list(images), list(questions))
        with torch.no_grad():
            _, logits = self._capture(enc)
        return self.answer_logp(logits).cpu().numpy()


def iter_probes(
    adapter: Adapter,
    dataset: VQADataset,
    *,
    batch_size: int,
    blank_color: tuple[int, int, int] = BLANK_COLOR,
) -> Iterator[tuple[Probe, np.ndarray]]:
    """The dataset in probes of ``batch_size`` samples, each with its labels (-1 outside the answer set)."""
    n = len(dataset)
    bounds = list(range(0, n, batch_size)) + [n]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] < 2:  # a batch of one cannot swap: merge it
        del bounds[-2]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        samples = dataset[lo:hi]
        labels = np.array([dataset.label(s.answer) for s in samples])
        probe = Probe(adapter, [s.image for s in samples], [s.question for s in samples], dataset.answers,
                      blank_color=blank_color)
        yield probe, labels


def check_positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise OptionError(name, value, f"an integer >= {minimum}")
    return int(value)


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    import torch

    with torch.no_grad():
        yield
