"""Any Hugging Face ``datasets`` dataset, by name (from the local cache) or local path.

Columns are mapped with ``columns={"image": ..., "question": ..., "answer": ...}``
(optional ``"id"``, and ``"choices"`` for multiple choice). Presets, used when the
dataset name contains their key and no mapping is given:

=========  ==============================================================  ==========================
preset     typical source                                                  columns
=========  ==============================================================  ==========================
vqav2      HuggingFaceM4/VQAv2, lmms-lab/VQAv2                             image, question,
                                                                           multiple_choice_answer,
                                                                           id=question_id
gqa        lmms-lab/GQA-style exports with the image joined in             image, question, answer,
                                                                           id=question_id
scienceqa  derek-thomas/ScienceQA                                          image, question, answer
                                                                           (index into choices),
                                                                           choices
=========  ==============================================================  ==========================

With ``choices``, the options are appended to the question
(``"... Options: a, b, c."``) and an integer answer is read as an index into them.
Rows whose image is missing (ScienceQA has text-only questions) stay in the
dataset and are skipped, with their reason, by the extraction loop.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmpid.data.base import Sample, VQADataset, normalize_answer, subsample
from mmpid.errors import DatasetError, InputError

__all__ = ["PRESETS", "load_hf", "resolve_columns"]

DEFAULT_COLUMNS = {"image": "image", "question": "question", "answer": "answer"}

PRESETS: dict[str, dict[str, str]] = {
    "vqav2": {"image": "image", "question": "question", "answer": "multiple_choice_answer", "id": "question_id"},
    "gqa": {"image": "image", "question": "question", "answer": "answer", "id": "question_id"},
    "scienceqa": {"image": "image", "question": "question", "answer": "answer", "choices": "choices"},
}

_KEYS = ("image", "question", "answer", "id", "choices")


def resolve_columns(columns: dict[str, str] | None, *, name: str = "") -> dict[str, str]:
    """The column mapping: explicit ``columns`` over a preset matched by name over the defaults."""
    base = dict(DEFAULT_COLUMNS)
    flat = "".join(ch for ch in name.lower() if ch.isalnum())
    if columns is None:
        for key, preset in PRESETS.items():
            if key in flat:
                base = dict(preset)
                break
        return base
    if not isinstance(columns, dict):
        raise InputError(f"The 'columns' parameter must be a dict like {{'image': 'img'}}. Got {columns!r}.")
    unknown = sorted(set(columns) - set(_KEYS))
    if unknown:
        raise InputError(f"The 'columns' parameter has unknown key(s) {unknown}; allowed keys are {list(_KEYS)}.")
    base.update({k: str(v) for k, v in columns.items()})
    return base


def _open(name_or_path: str, split: str) -> Any:
    import datasets

    path = Path(name_or_path)
    try:
        if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
            ds = datasets.load_from_disk(str(path))
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise DatasetError(
                        f"The 'split' parameter is {split!r} but {name_or_path!r} has splits {sorted(ds)}."
                    )
                ds = ds[split]
            return ds
        return datasets.load_dataset(name_or_path, split=split)
    except DatasetError:
        raise
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as exc:
        raise DatasetError(
            f"Could not load the dataset {name_or_path!r} split {split!r} ({type(exc).__name__}: {exc}). "
            "Give 'easy-vqa', a JSONL file, a folder saved with Dataset.save_to_disk, or a dataset in the local cache."
        ) from exc


def load_hf(
    name_or_path: str,
    *,
    split: str = "test",
    limit: int | None = None,
    seed: int = 0,
    columns: dict[str, str] | None = None,
) -> VQADataset:
    """Load a Hugging Face dataset as a :class:`VQADataset` (images decoded lazily)."""
    import datasets

    cols = resolve_columns(columns, name=name_or_path)
    ds = _open(name_or_path, split)
    have = list(ds.column_names)
    needed = ["image", "question", "answer"] + [k for k in ("id", "choices") if k in cols]
    missing = {k: cols[k] for k in needed if cols[k] not in have}
    if missing:
        raise DatasetError(
            f"The dataset {name_or_path!r} has no column(s) {sorted(missing.values())} "
            f"(mapped from {sorted(missing)}); its columns are {have}. "
            "Map them with columns={'image': ..., 'question': ..., 'answer': ...}."
        )
    feature = ds.features[cols["image"]]
    if isinstance(feature, datasets.Image) and feature.decode:
        ds = ds.cast_column(cols["image"], datasets.Image(decode=False))
    keep = subsample(len(ds), limit=limit, seed=seed).tolist()

    def make(j: int) -> Sample:
        i = keep[j]
        row = ds[i]
        question = str(row[cols["question"]])
        answer = row[cols["answer"]]
        if "choices" in cols:
            choices = [str(c) for c in row[cols["choices"]]]
            if isinstance(answer, int) and not isinstance(answer, bool) and 0 <= answer < len(choices):
                answer = choices[answer]
            question = f"{question} Options: {', '.join(choices)}."
        sid = str(row[cols["id"]]) if "id" in cols else f"{split}-{i}"
        return Sample(id=sid, question=question, answer=str(answer), image_source=row[cols["image"]])

    answers = _answer_set(ds, cols)
    return VQADataset(
        make,
        name=str(name_or_path),
        split=split,
        answers=answers,
        length=len(keep),
        info={"limit": limit, "seed": seed, "total": len(ds), "columns": cols},
    )


def _answer_set(ds: Any, cols: dict[str, str]) -> list[str]:
    if "choices" in cols:
        out = {normalize_answer(c) for cs in ds[cols["choices"]] for c in cs}
    else:
        out = {normalize_answer(a) for a in ds[cols["answer"]]}
    return sorted(out)
