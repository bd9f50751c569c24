"""The options of one extraction, validated once when built, before any model or data loads.

:class:`ExtractOptions` is shared by :func:`mmpid.extract.extract`,
:func:`mmpid.pipeline.extract_features`, :func:`mmpid.pipeline.analyze` and the command line,
so a bad option is reported in the same words everywhere and before the expensive part.
This module imports nothing heavy (no torch): the command line checks options before torch loads.

>>> ExtractOptions(protocol="span", target="label").target
'label'
>>> ExtractOptions(limit=0)
Traceback (most recent call last):
...
mmpid.errors.OptionError: 'limit' must be an int >= 1 (or left out for every sample); got 0.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mmpid.errors import OptionError

__all__ = [
    "COLUMN_ROLES",
    "DEVICES",
    "DTYPES",
    "ExtractOptions",
    "POOLINGS",
    "PROTOCOLS",
    "TARGETS",
]

#: What X_image, X_text and Y are (see :mod:`mmpid.extract`).
PROTOCOLS = ("input-fusion", "span", "tokens")
#: How a span's token positions become one vector.
POOLINGS = ("mean", "last", "max")
#: Y of the span protocol.
TARGETS = ("prediction", "label")
COLUMN_ROLES = ("image", "question", "answer", "id", "choices")
DEVICES = ("auto", "cpu", "cuda", "cuda:N")
DTYPES = ("auto", "float32", "fp32", "float16", "fp16", "half", "bfloat16", "bf16")
_CUDA = re.compile(r"cuda(:\d+)?")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class ExtractOptions:
    """Every option of an extraction (dataset, model placement, protocol), validated when built.

    ``target`` applies to the span protocol only: input-fusion stores both the prediction
    and the label, so ``target="label"`` with it is refused rather than ignored.

    Raises
    ------
    OptionError
        Naming the option, the value received and what is allowed.
    """

    dataset: str = "easy-vqa"
    split: str = "test"
    limit: int | None = None
    data_seed: int = 0
    columns: Mapping[str, str] | None = None
    protocol: str = "input-fusion"
    pooling: str = "mean"
    target: str = "prediction"
    batch_size: int = 16
    shard_size: int | None = None
    device: str = "auto"
    dtype: str | None = None

    def __post_init__(self) -> None:
        for name in ("dataset", "split"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise OptionError(name, value, "a non-empty string")
        if self.limit is not None and (not _is_int(self.limit) or self.limit < 1):
            raise OptionError("limit", self.limit, "an int >= 1 (or left out for every sample)")
        if not _is_int(self.data_seed) or self.data_seed < 0:
            raise OptionError("data_seed", self.data_seed, "a non-negative int")
        self._check_easy_vqa()
        if self.columns is not None:
            if not isinstance(self.columns, Mapping):
                raise OptionError("columns", self.columns, "a dict ROLE -> column name")
            unknown = sorted(set(self.columns) - set(COLUMN_ROLES), key=str)
            if unknown:
                raise OptionError(
                    "columns", dict(self.columns), f"a dict whose keys are among {list(COLUMN_ROLES)}",
                    hint=f"Unknown roles: {unknown}.",
                )
            object.__setattr__(self, "columns", {str(k): str(v) for k, v in self.columns.items()})
        if self.protocol not in PROTOCOLS:
            raise OptionError("protocol", self.protocol, f"one of {list(PROTOCOLS)}")
        if self.pooling not in POOLINGS:
            raise OptionError("pooling", self.pooling, f"one of {list(POOLINGS)}")
        if self.target not in TARGETS:
            raise OptionError("target", self.target, f"one of {list(TARGETS)}")
        if self.protocol != "span" and self.target != "prediction":
            raise OptionError(
                "target", self.target, f"left at its default ('prediction') with protocol={self.protocol!r}",
                hint=f"The target belongs to protocol='span'; {self.protocol}'s Y is a hidden state and "
                "its store keeps both the prediction and the label.",
            )
        if not _is_int(self.batch_size) or self.batch_size < 1:
            raise OptionError("batch_size", self.batch_size, "an int >= 1")
        if self.shard_size is not None and (not _is_int(self.shard_size) or self.shard_size < 1):
            raise OptionError("shard_size", self.shard_size, "None or an int >= 1")
        if not isinstance(self.device, str) or not (
            self.device in ("auto", "cpu") or _CUDA.fullmatch(self.device)
        ):
            raise OptionError("device", self.device, "'auto', 'cpu', 'cuda' or 'cuda:N'")
        if self.dtype is not None and (not isinstance(self.dtype, str) or self.dtype.lower() not in DTYPES):
            raise OptionError("dtype", self.dtype, f"None or one of {list(DTYPES)}")

    def _check_easy_vqa(self) -> None:
        """easy-vqa has two splits and fixed columns: say so before anything loads."""
        from mmpid.data import EASY_VQA_HINTED_NAMES, EASY_VQA_NAMES
        from mmpid.data.easy_vqa import SPLITS

        if self.dataset.lower() not in EASY_VQA_NAMES | EASY_VQA_HINTED_NAMES:
            return
        if self.split not in SPLITS:
            raise OptionError("split", self.split, f"one of {list(SPLITS)} for easy-vqa")
        if self.columns:
            raise OptionError(
                "columns", dict(self.columns), "left out for easy-vqa", hint="Its columns are fixed."
            )

    @property
    def span_target(self) -> str | None:
        """Y of the span protocol, None for input-fusion (what the store's config records)."""
        return self.target if self.protocol == "span" else None

    def shard_rows(self) -> int:
        """Samples per shard: ``shard_size`` (default 256) rounded up to a multiple of ``batch_size``."""
        size = self.batch_size * max(1, 256 // self.batch_size) if self.shard_size is None else self.shard_size
        return -(-size // self.batch_size) * self.batch_size
