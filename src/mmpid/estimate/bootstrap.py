"""Bias correction and bootstrap intervals from resampled atoms.

The rule (used by :func:`mmpid.estimate.estimate`): with plug-in value ``t``, bootstrap
replicates ``t*_b`` and a bias estimate ``bias``, the corrected value is ``t - bias`` and the
interval is the set of quantiles of the *reflected* replicates ``t - bias + (mean(t*) - t*_b)``
at ``(1 - level)/2`` and ``(1 + level)/2``. With the bootstrap's own bias estimate,
``bias = mean(t*) - t``, the reflected replicates are ``2 t - t*_b``: the corrected value is the
classical bootstrap bias-corrected estimate and the interval the basic (reverse-percentile)
bootstrap interval, centred on it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["bootstrap_bias", "reflected_replicates", "interval", "SOLVER_ATOL"]

#: Accuracy of the exact solver's atoms, in bits. Intervals of the bit atoms are widened by
#: it, so that an atom that is zero in every resample is not excluded from its own interval
#: by rounding.
SOLVER_ATOL = 1e-6


def bootstrap_bias(plugin: np.ndarray, replicates: np.ndarray) -> np.ndarray:
    """The bootstrap estimate of the plug-in's bias, ``mean(t*) - t``, per column."""
    return np.mean(replicates, axis=0) - plugin


def reflected_replicates(plugin: np.ndarray, replicates: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Replicates of the corrected value: ``t - bias + mean(t*) - t*_b``; shape of ``replicates``."""
    return (plugin - bias + np.mean(replicates, axis=0))[None, :] - replicates


def interval(values: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed quantiles of ``values`` (B, m) at ``level``, ignoring NaN rows per column.

    Columns with no finite value give NaN bounds.
    """
    alpha = (1.0 - level) / 2.0
    values = np.asarray(values, dtype=np.float64)
    lo = np.full(values.shape[1], np.nan)
    hi = np.full(values.shape[1], np.nan)
    for j in range(values.shape[1]):
        col = values[:, j]
        col = col[np.isfinite(col)]
        if col.size:
            lo[j], hi[j] = np.quantile(col, [alpha, 1.0 - alpha])
    return lo, hi
