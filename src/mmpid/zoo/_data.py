"""easy-vqa, read straight from the installed ``easy_vqa`` package, as arrays for training."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mmpid.errors import DatasetError, InputError

SPLITS = ("train", "test")


@dataclass(frozen=True)
class Split:
    """One easy-vqa split.

    Attributes
    ----------
    questions : list of str, length N
    answers : list of str, length N
    image_ids : np.ndarray of int64, shape (N,)
        Row of ``images`` that each question is asked about.
    images : np.ndarray of uint8, shape (M, 64, 64, 3)
        RGB images, row ``i`` is easy-vqa image id ``i``.
    """

    questions: list[str]
    answers: list[str]
    image_ids: np.ndarray
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.questions)


def load_questions(split: str) -> tuple[list[str], list[str], np.ndarray]:
    """(questions, answers, image_ids) of an easy-vqa split, without reading any image."""
    if split not in SPLITS:
        raise InputError(f"The 'split' parameter must be one of {SPLITS}. Got {split!r} instead.")
    try:
        import easy_vqa
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise DatasetError("easy-vqa is not installed: pip install easy-vqa") from exc
    get_q = easy_vqa.get_train_questions if split == "train" else easy_vqa.get_test_questions
    questions, answers, image_ids = get_q()
    return list(questions), list(answers), np.asarray(image_ids, dtype=np.int64)


def load_split(split: str) -> Split:
    """Load an easy-vqa split ("train": 38,575 questions on 4,000 images; "test": 9,673 on 1,000)."""
    import easy_vqa
    from PIL import Image

    questions, answers, image_ids = load_questions(split)
    get_p = easy_vqa.get_train_image_paths if split == "train" else easy_vqa.get_test_image_paths
    paths = get_p()
    if sorted(paths) != list(range(len(paths))):
        raise DatasetError(f"easy-vqa {split} image ids are not 0..{len(paths) - 1}; reinstall easy-vqa.")
    images = np.stack([np.asarray(Image.open(paths[i]).convert("RGB")) for i in range(len(paths))])
    return Split(questions, answers, image_ids, images)


def hint_split(split: Split, name: str, spec) -> tuple[Split, np.ndarray]:
    """``split`` with the questions ``spec`` chooses hinted (:mod:`mmpid.data.hints`).

    Parameters
    ----------
    split : Split
    name : ``"train"`` or ``"test"``: the sample ids are ``"{name}-{question index}"``.
    spec : :class:`mmpid.data.hints.HintSpec`

    Returns
    -------
    Split, and the (N,) bool mask of the hinted questions.
    """
    from dataclasses import replace

    from mmpid.data.hints import apply_hints

    if name not in SPLITS:
        raise InputError(f"The 'name' parameter must be one of {SPLITS}. Got {name!r} instead.")
    ids = [f"{name}-{i}" for i in range(len(split))]
    questions, hinted = apply_hints(ids, split.questions, split.answers, spec)
    return replace(split, questions=questions), hinted

