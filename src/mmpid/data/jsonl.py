"""A JSONL file of ``{"image": path, "question": ..., "answer": ...}`` records.

Relative image paths are read relative to the file's folder. An optional ``id``
field names the sample (default: ``"line-{n}"``).
"""

from __future__ import annotations

import json
from pathlib import Path

from mmpid.data.base import Sample, VQADataset, normalize_answer, subsample
from mmpid.errors import DatasetError

__all__ = ["load_jsonl"]


def load_jsonl(
    path: str | Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    columns: dict[str, str] | None = None,
) -> VQADataset:
    """Read a JSONL VQA file; ``columns`` maps ``image``/``question``/``answer``/``id`` to field names."""
    from mmpid.data.hf import resolve_columns

    path = Path(path)
    cols = resolve_columns(columns)
    if not path.is_file():
        raise DatasetError(f"The dataset file {str(path)!r} does not exist.")
    records = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{n}: not valid JSON ({exc}).") from exc
            if not isinstance(rec, dict):
                raise DatasetError(f"{path}:{n}: each line must be a JSON object. Got {type(rec).__name__}.")
            missing = [cols[k] for k in ("image", "question", "answer") if cols[k] not in rec]
            if missing:
                raise DatasetError(
                    f"{path}:{n}: missing field(s) {missing}; the record has {sorted(rec)}. "
                    "Map the fields with columns={'image': ..., 'question': ..., 'answer': ...}."
                )
            image = rec[cols["image"]]
            if isinstance(image, str) and not Path(image).is_absolute():
                image = str(path.parent / image)
            sid = str(rec.get(cols.get("id", "id"), f"line-{n}"))
            question, answer = str(rec[cols["question"]]), str(rec[cols["answer"]])
            records.append(Sample(id=sid, question=question, answer=answer, image_source=image))
    if not records:
        raise DatasetError(f"The dataset file {str(path)!r} holds no records.")
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        raise DatasetError(f"{path}: sample ids are not unique; give each record a distinct 'id'.")
    keep = subsample(len(records), limit=limit, seed=seed)
    samples = [records[i] for i in keep.tolist()]
    answers = sorted({normalize_answer(r.answer) for r in records})
    return VQADataset(
        samples,
        name=str(path),
        split="all",
        answers=answers,
        info={"limit": limit, "seed": seed, "total": len(records)},
    )
