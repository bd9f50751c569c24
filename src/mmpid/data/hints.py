"""Hinted easy-vqa questions: a fixed fraction of the what-color / what-shape questions state the answer.

On a hinted question ("the shape is red. what color is the shape?") the image and the text each
determine the answer: the two modalities are redundant. The choice of which questions are hinted
is a deterministic function of the sample id (``"test-123"``), the seed and the fraction, so that
the same question is hinted at training time, at test time and in every subset of the split,
whatever other samples are loaded with it. Yes/no questions are never hinted.

>>> hinted_question("what color is the shape?", "red")
'the shape is red. what color is the shape?'
>>> hinted_question("what shape is present?", "circle")
'the shape is a circle. what shape is present?'
>>> hint_kind("is there a red shape?") is None
True
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from mmpid.errors import InputError

__all__ = [
    "DEFAULT_HINTS",
    "HINT_KINDS",
    "HINT_WORDS",
    "HintSpec",
    "apply_hints",
    "hint_kind",
    "hint_text",
    "hinted_question",
    "is_hinted",
]

#: The question types a hint can be added to: what-color and what-shape questions.
HINT_KINDS: tuple[str, ...] = ("color", "shape")

#: Every word a hint adds besides the answer itself (the tokenizer must know each one).
HINT_WORDS: tuple[str, ...] = ("the", "shape", "is", "a", ".")


@dataclass(frozen=True)
class HintSpec:
    """Which questions are hinted.

    Attributes
    ----------
    fraction : float
        Probability, in [0, 1], that a what-color or what-shape question is hinted; the draw is
        a hash of the seed and the sample id, so it is the same whatever else is loaded.
    seed : int
        Seeds the draw (a non-negative int).
    """

    fraction: float = 1.0 / 3.0
    seed: int = 0

    def __post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= float(f) <= 1.0:
            raise InputError(f"The 'fraction' parameter must be a number in [0, 1]. Got {f!r} instead.")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise InputError(f"The 'seed' parameter must be a non-negative int. Got {self.seed!r} instead.")

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values."""
        return asdict(self)


#: The hints of ``easy-vqa-hinted`` and of ``zoo:hinted``: one third of the questions, seed 0.
DEFAULT_HINTS = HintSpec()


def hint_kind(question: str) -> str | None:
    """``"color"`` for a what-color question, ``"shape"`` for a what-shape question, else None.

    "what color is the circle?" and "what is the color of the shape?" ask for the colour;
    "what is the red shape?" and "what shape is present?" ask for the shape.
    """
    q = str(question).lower().strip()
    if not q.startswith("what"):
        return None
    return "color" if "color" in q else "shape"


def hint_text(answer: str, kind: str) -> str:
    """The sentence stating ``answer``: ``"the shape is red."`` or ``"the shape is a circle."``."""
    if kind not in HINT_KINDS:
        raise InputError(f"The 'kind' parameter must be one of {HINT_KINDS}. Got {kind!r} instead.")
    return f"the shape is {answer}." if kind == "color" else f"the shape is a {answer}."


def hinted_question(question: str, answer: str) -> str:
    """``question`` preceded by the hint that states ``answer`` (a what-color/what-shape question)."""
    kind = hint_kind(question)
    if kind is None:
        raise InputError(f"Only what-color and what-shape questions take a hint. Got {question!r}.")
    return f"{hint_text(answer, kind)} {question}"


def _uniform(sample_id: str, seed: int) -> float:
    """A deterministic number in [0, 1) from the seed and the sample id."""
    digest = hashlib.blake2b(f"{seed}/{sample_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def is_hinted(sample_id: str, question: str, spec: HintSpec = DEFAULT_HINTS) -> bool:
    """Whether the question ``sample_id`` is hinted under ``spec`` (never a yes/no question)."""
    return hint_kind(question) is not None and _uniform(str(sample_id), spec.seed) < spec.fraction


def apply_hints(
    sample_ids: Sequence[str], questions: Sequence[str], answers: Sequence[str], spec: HintSpec = DEFAULT_HINTS,
) -> tuple[list[str], np.ndarray]:
    """Hint the chosen questions.

    Parameters
    ----------
    sample_ids, questions, answers : sequences of length N
        easy-vqa sample ids (``"train-7"``), questions and their true answers.
    spec : HintSpec

    Returns
    -------
    questions : list of str, length N
        Each chosen question preceded by the hint stating its true answer; the others unchanged.
    hinted : np.ndarray of bool, shape (N,)
    """
    if not isinstance(spec, HintSpec):
        raise InputError(f"The 'spec' parameter must be a HintSpec. Got {type(spec).__name__}.")
    n = len(sample_ids)
    if len(questions) != n or len(answers) != n:
        raise InputError(
            f"'sample_ids', 'questions' and 'answers' must have the same length. Got {n}, {len(questions)}, "
            f"{len(answers)}."
        )
    hinted = np.array([is_hinted(i, q, spec) for i, q in zip(sample_ids, questions)], dtype=bool)
    out = [hinted_question(q, a) if h else q for q, a, h in zip(questions, answers, hinted)]
    return out, hinted
