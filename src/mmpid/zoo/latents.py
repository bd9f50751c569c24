"""easy-vqa's generating latents: each image's shape x colour, each question's meaning.

easy-vqa draws every image from a shape (3) and a colour (8), and every question from a
template about them. These latents are read back from the data itself:

- a question's **meaning** is parsed from its words: ``what-shape``, ``what-color``, or a
  yes/no question about one colour or one shape, possibly negated ("is there not a red
  shape?"). The test split has 24 meanings over 107 distinct strings.
- an image's **shape** and **colour** are read from the answers to the questions asked about
  it: "what shape ..." answers the shape, "what color is the circle?" answers the colour and
  names the shape, a yes/no answer about a colour says whether the image has it, and so on.
  An answer can also rule values out ("does the image not contain a circle?" - "yes"), and a
  shape or colour is settled once all others are ruled out. Images whose questions never
  settle one of them keep it unknown (-1): 8,879 of the test split's 9,673 questions are
  about an image whose shape and colour are both known.

A zoo model's prediction is (nearly) a function of these latents, so the PID of the
prediction against them (:func:`mmpid.zoo.oracle.oracle`) says what the model's behaviour
depends on, with no discretisation of embeddings.

>>> lat = latents("test")
>>> len(lat.meaning_names), int(lat.known.sum())
(24, 8879)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mmpid.errors import DatasetError

__all__ = ["SHAPES", "COLORS", "SUBSETS", "Latents", "TextLatent", "hinted", "latents", "question_meaning",
           "subset_indices", "text_latent"]

SHAPES = ("circle", "rectangle", "triangle")
COLORS = ("black", "blue", "brown", "gray", "green", "red", "teal", "yellow")
_NEGATION = re.compile(r"\b(not|no)\b")


@dataclass(frozen=True)
class Latents:
    """The latents of one easy-vqa split, one entry per question.

    Attributes
    ----------
    meaning : (N,) int64, index into ``meaning_names``.
    meaning_names : the distinct meanings, e.g. ``"what-shape"``, ``"yes/no: red"``,
        ``"yes/no: not circle"``, sorted.
    shape, color : (N,) int64, index into :data:`SHAPES` / :data:`COLORS` of the question's
        image, -1 where the split's questions about that image do not settle it.
    image : (N,) int64, ``shape * 8 + color`` (24 classes), -1 unless both are known.
    known : (N,) bool, ``image >= 0``.
    """

    meaning: np.ndarray
    meaning_names: tuple[str, ...]
    shape: np.ndarray
    color: np.ndarray
    image: np.ndarray
    known: np.ndarray


def _word(question: str, vocabulary: tuple[str, ...]) -> str | None:
    words = set(re.findall(r"[a-z]+", question.lower()))
    found = [w for w in vocabulary if w in words]
    if len(found) > 1:
        raise DatasetError(f"Cannot parse the easy-vqa question {question!r}: it names {found}.")
    return found[0] if found else None


def question_meaning(question: str) -> str:
    """The meaning of one easy-vqa question, e.g. ``"what-color"`` or ``"yes/no: not red"``."""
    q = question.lower().strip()
    if q.startswith("what"):
        # "what is the blue shape?" asks for the shape; "what color is the circle?" for the colour
        return "what-color" if "color" in q else "what-shape"
    subject = _word(q, COLORS) or _word(q, SHAPES)
    if subject is None:
        raise DatasetError(f"Cannot parse the easy-vqa question {question!r}: no colour or shape named.")
    return f"yes/no: {'not ' if _NEGATION.search(q) else ''}{subject}"


def _facts(question: str, answer: str) -> tuple[str | None, str | None, str | None, str | None]:
    """(shape, colour) the answer settles, and (shape, colour) the image is known NOT to have."""
    q, a = question.lower(), answer.lower()
    meaning = question_meaning(q)
    if meaning == "what-shape":
        return a, _word(q, COLORS), None, None
    if meaning == "what-color":
        return _word(q, SHAPES), a, None, None
    negated = meaning.startswith("yes/no: not ")
    subject = meaning.rsplit(" ", 1)[1]
    present = (a == "yes") != negated
    is_color = subject in COLORS
    if present:
        return (None, subject, None, None) if is_color else (subject, None, None, None)
    return (None, None, None, subject) if is_color else (None, None, subject, None)


def _settle(found: set[str], ruled_out: set[str], vocabulary: tuple[str, ...]) -> int:
    if len(found) > 1:
        raise DatasetError(f"easy-vqa's answers disagree about one image: {sorted(found)}.")
    if found:
        return vocabulary.index(found.pop())
    left = [v for v in vocabulary if v not in ruled_out]
    return vocabulary.index(left[0]) if len(left) == 1 else -1


@lru_cache(maxsize=2)
def latents(split: str = "test") -> Latents:
    """The latents of every question of an easy-vqa split (in easy-vqa's question order).

    Parameters
    ----------
    split : ``"train"`` (38,575 questions) or ``"test"`` (9,673).
    """
    from mmpid.zoo._data import load_questions

    questions, answers, image_ids = load_questions(split)
    meanings = [question_meaning(q) for q in questions]
    names = tuple(sorted(set(meanings)))
    n_images = int(image_ids.max()) + 1
    shapes: list[tuple[set[str], set[str]]] = [(set(), set()) for _ in range(n_images)]
    colors: list[tuple[set[str], set[str]]] = [(set(), set()) for _ in range(n_images)]
    for q, a, i in zip(questions, answers, image_ids):
        shape, color, not_shape, not_color = _facts(q, a)
        for value, slot in ((shape, shapes[i][0]), (color, colors[i][0]),
                            (not_shape, shapes[i][1]), (not_color, colors[i][1])):
            if value is not None:
                slot.add(value)
    shape_of = np.array([_settle(set(f), r, SHAPES) for f, r in shapes], dtype=np.int64)
    color_of = np.array([_settle(set(f), r, COLORS) for f, r in colors], dtype=np.int64)
    shape, color = shape_of[image_ids], color_of[image_ids]
    known = (shape >= 0) & (color >= 0)
    image = np.where(known, shape * len(COLORS) + color, -1)
    meaning = np.array([names.index(m) for m in meanings], dtype=np.int64)
    return Latents(meaning, names, shape, color, image, known)


@dataclass(frozen=True)
class TextLatent:
    """What the text of each question of a split says, hints included.

    Attributes
    ----------
    label : (N,) int64, index into ``names``.
    names : the distinct values, sorted: a question's meaning (``"what-color"``), and for a hinted
        question its meaning and the answer its hint states (``"what-color | hint: red"``).
    hinted : (N,) bool, the hinted questions.
    """

    label: np.ndarray
    names: tuple[str, ...]
    hinted: np.ndarray


def hinted(split: str = "test", hints=None) -> np.ndarray:
    """(N,) bool: the questions of ``split`` that ``hints`` (a HintSpec, or None: none) hints."""
    from mmpid.data.hints import is_hinted
    from mmpid.zoo._data import load_questions

    questions, _, _ = load_questions(split)
    if hints is None:
        return np.zeros(len(questions), dtype=bool)
    return np.array([is_hinted(f"{split}-{i}", q, hints) for i, q in enumerate(questions)], dtype=bool)


def text_latent(split: str = "test", hints=None) -> TextLatent:
    """The text latent of every question of ``split``: its meaning, times the stated answer where hinted.

    Parameters
    ----------
    split : ``"train"`` or ``"test"``.
    hints : :class:`mmpid.data.hints.HintSpec` or None
        The hints of the dataset variant (``easy-vqa-hinted``: ``DEFAULT_HINTS``); None: the
        plain questions, whose text latent is :attr:`Latents.meaning`.

    On a hinted question the text alone determines the answer, so I(text latent; answer) =
    H(answer) there.
    """
    from mmpid.zoo._data import load_questions

    lat = latents(split)
    mask = hinted(split, hints)
    _, answers, _ = load_questions(split)
    values = [
        f"{lat.meaning_names[m]} | hint: {a.strip().lower()}" if h else lat.meaning_names[m]
        for m, a, h in zip(lat.meaning, answers, mask)
    ]
    names = tuple(sorted(set(values)))
    index = {n: i for i, n in enumerate(names)}
    return TextLatent(np.array([index[v] for v in values], dtype=np.int64), names, mask)


#: The subsets :func:`subset_indices` knows, with the information structure of the answer given
#: the latents: ``what-color`` / ``what-shape`` (without hint: unique to the image once the
#: question type is fixed), ``yes/no`` (synergy), ``hinted what-color`` / ``hinted what-shape``
#: (image and text each suffice: redundancy) and ``hinted`` (both hinted types).
SUBSETS: tuple[str, ...] = ("what-color", "what-shape", "yes/no", "hinted what-color", "hinted what-shape", "hinted")


def subset_indices(name: str, split: str = "test", *, hints=None, known_only: bool = True) -> np.ndarray:
    """Question indices of one subset of ``split``, sorted (int64, shape (K,)).

    Parameters
    ----------
    name : one of :data:`SUBSETS`. The unhinted subsets leave the hinted questions out.
    hints : the dataset's :class:`mmpid.data.hints.HintSpec` (None: no question is hinted, and the
        hinted subsets are empty).
    known_only : keep only questions whose image's shape and colour are settled (the oracle's).
    """
    from mmpid.errors import InputError

    if name not in SUBSETS:
        raise InputError(f"The 'name' parameter must be one of {SUBSETS}. Got {name!r} instead.")
    lat = latents(split)
    mask = hinted(split, hints)
    meaning = np.array(lat.meaning_names, dtype=object)[lat.meaning]
    is_yes_no = np.array([m.startswith("yes/no") for m in meaning], dtype=bool)
    if name == "yes/no":
        keep = is_yes_no & ~mask
    elif name == "hinted":
        keep = mask
    else:
        kind = name.removeprefix("hinted ")
        keep = (meaning == kind) & (mask if name.startswith("hinted ") else ~mask)
    if known_only:
        keep &= lat.known
    return np.flatnonzero(keep).astype(np.int64)

