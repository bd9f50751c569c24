"""Finding the question's tokens in a processor's (expanded) input ids.

:class:`SpanFinder` locates a question in its rendered prompt (just before the template's
tail, which is the same for every question), reads the question's tokens from the tokenizer's
character offsets (special tokens dropped) and finds that id run in the expanded ids. It owns
its caches: the runs per (prompt, question) and the special-token ids.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import torch

from mmpid.errors import InputError

__all__ = ["CACHE_SIZE", "SpanFinder", "find_subsequence", "question_token_positions"]

#: Entries kept in the question-run cache; a full cache is emptied and refilled. 4,096
#: question runs take a few MiB at most.
CACHE_SIZE = 4096
#: Stands in for the question when the template is rendered to learn its tail.
_MARKER = "mmpidquestionmarker"


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


class SpanFinder:
    """The question-token positions of a batch, for one tokenizer and prompt template.

    Parameters
    ----------
    tokenizer : the processor's tokenizer (fast, with offsets).
    build_prompt : renders a question into the full prompt (``Adapter.build_prompt``).
    special_ids : token ids never counted as question tokens (beyond the tokenizer's own
        special tokens), e.g. the image token.

    The run of a question and its tokens' offsets in it depend on the prompt text alone, so
    they are cached per (prompt, question) (VQA datasets repeat questions: easy-vqa has 107
    distinct ones); only new prompts are tokenized, and each row costs one search of its ids.
    """

    def __init__(
        self, tokenizer: Any, build_prompt: Callable[[str], str], *, special_ids: Sequence[int] = ()
    ) -> None:
        self.tokenizer = tokenizer
        self.build_prompt = build_prompt
        self.extra_special = set(special_ids)
        #: (prompt, question) -> (id run, the question tokens' offsets in it)
        self.cache: dict[tuple[str, str], tuple[list[int], list[int]]] = {}

    def clear(self) -> None:
        """Forget every cached run."""
        self.cache.clear()

    def positions(
        self, prompts: Sequence[str], questions: Sequence[str], ids: torch.Tensor, lengths: torch.Tensor
    ) -> list[list[int]]:
        """Positions of each question's tokens in the processor's (expanded) ids, per row.

        Image placeholders are special tokens, so the text between them tokenizes the same
        before and after the processor expands them; the run is found (its last occurrence)
        in each row's ids.
        """
        keys = list(zip(prompts, questions))
        runs = {k: self.cache[k] for k in keys if k in self.cache}
        new = [k for k in dict.fromkeys(keys) if k not in runs]
        if new:
            found = self.runs([p for p, _ in new], [q for _, q in new])
            runs.update(zip(new, found))
            if len(self.cache) + len(new) > CACHE_SIZE:
                self.cache.clear()
            self.cache.update(zip(new, found))
        out = []
        for row, length, key in zip(ids.tolist(), lengths.tolist(), keys):
            run, rel = runs[key]
            at = find_subsequence(row[:length], run)
            if at < 0:
                raise InputError(
                    f"Could not find the question's tokens in the processor's input ids for {key[1]!r}; "
                    "the processor tokenizes the prompt differently from its tokenizer."
                )
            out.append([at + r for r in rel])
        return out

    def runs(self, prompts: Sequence[str], questions: Sequence[str]) -> list[tuple[list[int], list[int]]]:
        """Per prompt: the id run from the question's first token to the prompt's end, and its
        question tokens' offsets in it. One tokenizer pass over the unexpanded prompts."""
        out = []
        for (tok_ids, offsets, special_mask), prompt, question in zip(
            self.tokenize_with_offsets(prompts), prompts, questions
        ):
            start = self.question_start(prompt, question)
            if start < 0 or not question.strip():
                raise InputError(f"The prompt template dropped the question {question!r}; cannot find its tokens.")
            special = [bool(sm) or t in self.special_ids for sm, t in zip(special_mask, tok_ids)]
            local = question_token_positions(offsets, (start, start + len(question)), special)
            if not local:
                raise InputError(f"The question {question!r} has no tokens after removing special tokens.")
            first = local[0]
            # the run reaches the prompt's end: the template's tail after the question makes
            # its last occurrence in the expanded ids the question's, even when the tail
            # repeats the question's own tokens
            out.append((list(tok_ids[first:]), [i - first for i in local]))
        return out

    def question_start(self, prompt: str, question: str) -> int:
        """Where ``question`` begins in ``prompt`` (-1 if it is not there).

        The template's text after the question is the same for every question, so the question
        is the text just before it; searching for the question's last occurrence instead would,
        for a question that also occurs in the template's tail (``"ASSISTANT:"``), find the
        template's copy. The search remains the fallback for a template that varies its tail.
        """
        tail = self.template_tail
        if tail is not None and prompt.endswith(question + tail):
            return len(prompt) - len(tail) - len(question)
        return prompt.rfind(question)

    @functools.cached_property
    def template_tail(self) -> str | None:
        """The rendered template's text after the question (None if the marker does not survive)."""
        prompt = self.build_prompt(_MARKER)
        if prompt.count(_MARKER) != 1:
            return None
        return prompt[prompt.index(_MARKER) + len(_MARKER):]

    @functools.cached_property
    def special_ids(self) -> set[int]:
        """The tokenizer's special ids plus ``special_ids`` given."""
        return set(self.tokenizer.all_special_ids) | self.extra_special

    def tokenize_with_offsets(
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
