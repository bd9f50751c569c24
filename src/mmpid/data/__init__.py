"""Datasets: easy-vqa (offline), Hugging Face datasets with a column mapping, JSONL files.

``load_dataset(name_or_path)`` picks the loader: ``"easy-vqa"`` (``"easy-vqa-hinted"``: a third
of its what-color / what-shape questions state their answer, see :mod:`mmpid.data.hints`); a ``.jsonl`` file;
anything else goes to Hugging Face ``datasets`` (a cached hub name or a local path).
"""

from __future__ import annotations

from pathlib import Path

from mmpid.data.base import Sample, VQADataset, normalize_answer, open_image
from mmpid.data.hf import PRESETS, resolve_columns
from mmpid.errors import InputError

__all__ = ["EASY_VQA_HINTED_NAMES", "EASY_VQA_NAMES", "PRESETS", "Sample", "VQADataset", "load_dataset", "normalize_answer", "open_image", "resolve_columns"]

#: The names that select easy-vqa (case-insensitive).
EASY_VQA_NAMES = frozenset({"easy-vqa", "easy_vqa", "easyvqa"})
#: The names that select easy-vqa with hints (:data:`mmpid.data.hints.DEFAULT_HINTS`).
EASY_VQA_HINTED_NAMES = frozenset({"easy-vqa-hinted", "easy_vqa_hinted"})


def load_dataset(
    name_or_path: str,
    *,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    columns: dict[str, str] | None = None,
) -> VQADataset:
    """Load a VQA dataset.

    Parameters
    ----------
    name_or_path : str
        ``"easy-vqa"``, ``"easy-vqa-hinted"``, a ``.jsonl`` file of ``{"image", "question", "answer"}``
        records, or a Hugging Face dataset name / local path.
    split : str
        Split to read (easy-vqa: ``train`` or ``test``; ignored for JSONL).
    limit : int, optional
        Keep a seeded random subset of this many samples (original order kept).
    seed : int
        Seed of that subset.
    columns : dict, optional
        Column mapping for HF/JSONL: keys ``image``, ``question``, ``answer``,
        optional ``id`` and ``choices``.

    Returns
    -------
    VQADataset
        Samples with ``id``, ``image`` (decoded on access), ``question``, ``answer``;
        ``.answers`` is the answer set.

    Examples
    --------
    >>> ds = load_dataset("easy-vqa", limit=3, seed=0)
    >>> len(ds), len(ds.answers), ds[0].image.size
    (3, 13, (64, 64))
    """
    if not isinstance(name_or_path, (str, Path)):
        raise InputError(f"The 'dataset' parameter must be a name or a path. Got {name_or_path!r}.")
    name = str(name_or_path)
    if name.lower() in EASY_VQA_NAMES | EASY_VQA_HINTED_NAMES:
        from mmpid.data.easy_vqa import load_easy_vqa

        if columns:
            raise InputError("The 'columns' parameter does not apply to easy-vqa; leave it out.")
        return load_easy_vqa(split=split, limit=limit, seed=seed, hints=name.lower() in EASY_VQA_HINTED_NAMES)
    if name.lower().endswith((".jsonl", ".ndjson")):
        from mmpid.data.jsonl import load_jsonl

        return load_jsonl(name, limit=limit, seed=seed, columns=columns)
    from mmpid.data.hf import load_hf

    return load_hf(name, split=split, limit=limit, seed=seed, columns=columns)
