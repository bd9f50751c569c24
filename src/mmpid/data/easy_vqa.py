"""easy-vqa: 64x64 images of coloured shapes, shipped in the ``easy-vqa`` package (offline)."""

from __future__ import annotations

from mmpid.data.base import Sample, VQADataset, subsample
from mmpid.errors import DatasetError

__all__ = ["load_easy_vqa"]

SPLITS = ("train", "test")


def load_easy_vqa(*, split: str = "test", limit: int | None = None, seed: int = 0) -> VQADataset:
    """Load easy-vqa's questions (13 single-word answers, in the package's order).

    Sample ids are ``"{split}-{question index}"``.
    """
    import easy_vqa

    if split not in SPLITS:
        raise DatasetError(f"The 'split' parameter for easy-vqa must be one of {SPLITS}. Got {split!r}.")
    if split == "train":
        questions, answers, image_ids = easy_vqa.get_train_questions()
        paths = easy_vqa.get_train_image_paths()
    else:
        questions, answers, image_ids = easy_vqa.get_test_questions()
        paths = easy_vqa.get_test_image_paths()
    keep = subsample(len(questions), limit=limit, seed=seed)
    samples = [
        Sample(id=f"{split}-{i}", question=questions[i], answer=answers[i], image_source=paths[image_ids[i]])
        for i in keep.tolist()
    ]
    return VQADataset(
        samples,
        name="easy-vqa",
        split=split,
        answers=[a.strip().lower() for a in easy_vqa.get_answers()],
        info={"limit": limit, "seed": seed, "total": len(questions)},
    )
