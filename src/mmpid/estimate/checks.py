"""Checks on the data given to an estimate that warn rather than refuse."""

from __future__ import annotations

import numpy as np

__all__ = ["MAX_LABEL_VALUES", "label_like_floats"]

#: A one-column float input with at most this many distinct whole-number values looks like labels.
MAX_LABEL_VALUES = 256


def label_like_floats(data: np.ndarray, name: str, k: int) -> str | None:
    """A warning when a float input looks like class labels, else None.

    A 1-D float array is one continuous feature and is clustered; class labels stored as floats
    (13 answers as ``float32``) would be merged into ``k`` clusters where integer labels keep
    every class. ``data`` is the (N, 1) or (N, d) float array ``estimate`` works on.

    >>> label_like_floats(np.arange(6.0)[:, None] % 3, "y", 2) is not None
    True
    >>> label_like_floats(np.linspace(0, 1, 6)[:, None], "y", 2) is None
    True
    """
    if data.ndim != 2 or data.shape[1] != 1:
        return None
    column = data[:, 0]
    if not np.array_equal(column, np.round(column)):
        return None
    values = np.unique(column)
    if len(values) > MAX_LABEL_VALUES or len(values) * 2 > len(column):
        return None
    return (
        f"'{name}' is a float array holding only {len(values)} distinct whole numbers: it is "
        f"treated as one continuous feature and clustered into {k} clusters, not used as "
        f"{len(values)} classes. If these are class labels, pass them as integers "
        f"({name}.astype(int))."
    )
