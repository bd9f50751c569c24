"""Samples and datasets: what the extraction loop iterates over."""

from __future__ import annotations

import hashlib
import io
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np

from mmpid.errors import DatasetError, InputError

__all__ = ["Sample", "VQADataset", "open_image", "subsample"]


def open_image(source: Any, *, sample_id: str = "?") -> Any:
    """Decode an image from a path, bytes, a ``{"bytes", "path"}`` dict or a PIL image, as RGB.

    Raises
    ------
    DatasetError
        When the file is missing or does not decode.
    """
    from PIL import Image, UnidentifiedImageError

    if isinstance(source, Image.Image):
        img = source
    else:
        if isinstance(source, dict):
            source = source.get("bytes") or source.get("path")
        try:
            if isinstance(source, (bytes, bytearray)):
                img = Image.open(io.BytesIO(source))
            elif isinstance(source, (str, Path)):
                img = Image.open(source)
            else:
                raise DatasetError(
                    f"Sample {sample_id!r}: the image must be a path, bytes or a PIL image. "
                    f"Got {type(source).__name__}."
                )
            img.load()
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise DatasetError(
                f"Sample {sample_id!r}: the image {str(source)[:120]!r} does not decode ({exc})."
            ) from exc
    return img.convert("RGB") if img.mode != "RGB" else img


@dataclass(frozen=True)
class Sample:
    """One VQA example. The image is decoded on access (``sample.image``).

    Attributes
    ----------
    id : str
        Stable identifier, recorded in the feature store.
    question, answer : str
    image_source : path, bytes, dict or PIL image
    """

    id: str
    question: str
    answer: str
    image_source: Any = field(repr=False)

    @property
    def image(self) -> Any:
        """The decoded RGB PIL image; DatasetError if it does not decode."""
        return open_image(self.image_source, sample_id=self.id)


def subsample(n: int, *, limit: int | None, seed: int) -> np.ndarray:
    """Indices of a seeded random subset of ``range(n)`` of size ``limit``, in their original order."""
    if limit is None or limit >= n:
        return np.arange(n)
    if not isinstance(limit, (int, np.integer)) or isinstance(limit, bool) or limit < 1:
        raise InputError(f"The 'limit' parameter must be a positive integer or None. Got {limit!r}.")
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=int(limit), replace=False))


class VQADataset(Sequence[Sample]):
    """A sequence of :class:`Sample` with the dataset's answer set.

    Attributes
    ----------
    name : str
    split : str
    answers : tuple of str
        The answer set (sorted unless the dataset defines its order); labels index it.
    """

    def __init__(
        self,
        samples: Sequence[Sample] | Callable[[int], Sample],
        *,
        name: str,
        split: str,
        answers: Sequence[str],
        length: int | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self._samples = samples
        self._len = len(samples) if length is None else int(length)  # type: ignore[arg-type]
        self.name = name
        self.split = split
        self.answers = tuple(answers)
        self._index = {a: i for i, a in enumerate(self.answers)}
        self.info = dict(info or {})

    def __len__(self) -> int:
        return self._len

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> list[Sample]: ...
    def __getitem__(self, i: int | slice) -> Sample | list[Sample]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._len))]
        if i < 0:
            i += self._len
        if not 0 <= i < self._len:
            raise IndexError(i)
        s = self._samples
        return s(i) if callable(s) else s[i]

    def __iter__(self) -> Iterator[Sample]:
        for i in range(self._len):
            yield self[i]

    def label(self, answer: str) -> int:
        """Index of ``answer`` in :attr:`answers`, or -1 when it is not in the set."""
        return self._index.get(normalize_answer(answer), self._index.get(answer, -1))

    def describe(self) -> dict[str, Any]:
        """What the manifest records about the dataset."""
        return {
            "name": self.name,
            "split": self.split,
            "n": len(self),
            "answers": list(self.answers),
            "fingerprint": self.fingerprint(),
            **self.info,
        }

    def fingerprint(self) -> str:
        """A hash of the samples (ids, questions, answers) when they are held in memory.

        Lazily read datasets (Hugging Face) are identified by name, split, size,
        limit and seed instead, so that describing them reads no rows.
        """
        h = hashlib.sha256()
        if callable(self._samples):
            h.update(json.dumps([self.name, self.split, self._len, self.info], sort_keys=True, default=str).encode())
        else:
            for s in self._samples:
                h.update(json.dumps([s.id, s.question, s.answer]).encode())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return f"VQADataset(name={self.name!r}, split={self.split!r}, n={len(self)}, answers={len(self.answers)})"


def normalize_answer(answer: Any) -> str:
    """Answers are compared as stripped lower-case strings."""
    return str(answer).strip().lower()
