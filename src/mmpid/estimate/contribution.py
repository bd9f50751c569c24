"""The paper's modality-contribution metric, C_image = U_image / (U_image + U_text)."""

from __future__ import annotations

import numpy as np

__all__ = ["contribution_image"]


def contribution_image(unique_image: np.ndarray | float, unique_text: np.ndarray | float) -> np.ndarray:
    """``C_image = U_image / (U_image + U_text)`` elementwise; ``C_text = 1 - C_image``.

    A unique atom below zero (possible after bias correction) counts as zero here, since a
    share of a negative amount has no meaning; the atoms themselves are reported unclamped.
    Where both uniques are <= 0 the ratio is undefined and the result is NaN.

    Parameters
    ----------
    unique_image, unique_text : arrays of the same shape, bits.

    Returns
    -------
    Array of fractions in [0, 1], NaN where undefined.

    Examples
    --------
    >>> contribution_image(np.array([0.3, 0.0, -0.1]), np.array([0.1, 0.0, 0.2])).round(2)
    array([0.75,  nan, 0.  ])
    """
    ui = np.maximum(np.asarray(unique_image, dtype=np.float64), 0.0)
    ut = np.maximum(np.asarray(unique_text, dtype=np.float64), 0.0)
    total = ui + ut
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, ui / np.where(total > 0, total, 1.0), np.nan)
