"""easy-vqa: 64x64 images of coloured shapes, shipped in the ``easy-vqa`` package (offline)."""

from __future__ import annotations

from mmpid.data.base import Sample, VQADataset, subsample
from mmpid.data.hints import DEFAULT_HINTS, HintSpec, apply_hints
from mmpid.errors import DatasetError, InputError

__all__ = ["HINTED_NAME", "load_easy_vqa"]

SPLITS = ("train", "test")

#: The dataset name of easy-vqa with hints (:mod:`mmpid.data.hints`).
HINTED_NAME = "easy-vqa-hinted"


def load_easy_vqa(
    *, split: str = "test", limit: int | None = None, seed: int = 0, hints: HintSpec | bool | None = None,
) -> VQADataset:
    """Load easy-vqa's questions (13 single-word answers, in the package's order).

    Sample ids are ``"{split}-{question index}"``.

    Parameters
    ----------
    hints : HintSpec, True or None
        Hint a fraction of the what-color and what-shape questions: each chosen question is
        preceded by a sentence stating its answer ("the shape is red. what color is the shape?").
        True means :data:`mmpid.data.hints.DEFAULT_HINTS` (one third, seed 0: the questions
        ``zoo:hinted`` was trained and tested on). The choice depends on the sample id only, so a
        ``limit`` subset holds the same hinted questions as the whole split. The dataset is then
        named ``"easy-vqa-hinted"`` and its ``info["hints"]`` records the spec.
    """
    import easy_vqa

    if hints is True:
        hints = DEFAULT_HINTS
    if hints is False:
        hints = None
    if hints is not None and not isinstance(hints, HintSpec):
        raise InputError(f"The 'hints' parameter must be a HintSpec, True or None. Got {hints!r}.")
    if split not in SPLITS:
        raise DatasetError(f"The 'split' parameter for easy-vqa must be one of {SPLITS}. Got {split!r}.")
    if split == "train":
        questions, answers, image_ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        questions, answers, image_ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    keep = subsample(len(questions), limit=limit, seed=seed).tolist()
    ids = [f"{split}-{i}" for i in keep]
    asked = [questions[i] for i in keep]
    info = {"limit": limit, "seed": seed, "total": len(questions)}
    if hints is not None:
        asked, hinted = apply_hints(ids, asked, [answers[i] for i in keep], hints)
        info["hints"] = {**hints.to_dict(), "n_hinted": int(hinted.sum())}
    samples = [
        Sample(id=sid, question=q, answer=answers[i], image_source=paths[image_ids[i]])
        for sid, q, i in zip(ids, asked, keep)
    ]
    return VQADataset(
        samples,
        name="easy-vqa" if hints is None else HINTED_NAME,
        split=split,
        answers=[a.strip().lower() for a in easy_vqa.get_answers()],
        info=info,
    )
