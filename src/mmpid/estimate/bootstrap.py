"""Bias correction and bootstrap intervals from resampled atoms.

The rule (used by :func:`mmpid.estimate.estimate`): with plug-in value ``t``, bootstrap
replicates ``t*_b`` and a bias estimate ``bias``, the corrected value is ``t - bias`` and the
interval is the set of quantiles of the *reflected* replicates ``t - bias + (mean(t*) - t*_b)``
at ``(1 - level)/2`` and ``(1 + level)/2``. With the bootstrap's own bias estimate,
``bias = mean(t*) - t``, the reflected replicates are ``2 t - t*_b``: the corrected value is the
classical bootstrap bias-corrected estimate and the interval the basic (reverse-percentile)
bootstrap interval, centred on it.

Where an atom sits on its boundary (a unique atom truly 0 beside real redundancy) the plug-in's
bias shrinks like ``N^(-1/2)``, not ``1/N``, and ``mean(t*) - t`` measures only ``sqrt(2) - 1``
(41%) of it. :func:`extrapolated_bias` estimates each atom's rate from a second set of
resamples of size ``m = N/4`` and scales the bootstrap's estimate by it.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "bootstrap_bias",
    "extrapolated_bias",
    "reflected_replicates",
    "interval",
    "SOLVER_ATOL",
    "SUBSAMPLE_FRACTION",
]

#: Accuracy of the exact solver's atoms, in bits. Intervals of the bit atoms are widened by
#: it, so that an atom that is zero in every resample is not excluded from its own interval
#: by rounding.
SOLVER_ATOL = 1e-6
#: The size of the second set of resamples, as a fraction of N (see :func:`extrapolated_bias`).
SUBSAMPLE_FRACTION = 4
#: The range of bias rates ``r`` (bias ~ c / N^r) that :func:`extrapolated_bias` fits: from a
#: kink at the boundary (1/2) to a smooth interior atom (1).
RATE_RANGE = (0.5, 1.0)


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


def extrapolated_bias(
    plugin: np.ndarray, replicates: np.ndarray, sub_replicates: np.ndarray, n: int, m: int
) -> tuple[np.ndarray, np.ndarray]:
    """The plug-in's bias per column, with its rate estimated from resamples of two sizes.

    Model: the expected plug-in from data with sampling variance ``v`` is ``theta + c v^r``.
    The plug-in has ``v = 1/N``; a resample of size ``m`` drawn from the data adds ``1/m``. So
    ``D_n = mean(t*_n) - t`` estimates ``c N^-r (2^r - 1)`` and ``D_m = mean(t*_m) - t`` estimates
    ``c N^-r ((1 + N/m)^r - 1)``; their ratio gives ``r`` (clipped to [1/2, 1]) and the bias is
    ``D_n / (2^r - 1)``. A smooth atom (``r = 1``) gets the classical ``D_n``; an atom on its
    boundary (``r = 1/2``) gets ``D_n / (sqrt(2) - 1)``, 2.41 times as much.

    Parameters
    ----------
    plugin : (m_cols,) plug-in values, bits.
    replicates : (B, m_cols) values of resamples of size ``n`` (the ordinary bootstrap).
    sub_replicates : (B', m_cols) values of resamples of size ``m < n`` (with replacement).
    n, m : the two resample sizes.

    Returns
    -------
    (bias, rate), each (m_cols,): the bias in bits and the fitted rate ``r``.

    >>> t = np.array([0.0]); c = 0.1
    >>> boot = np.full((4, 1), c * (2 ** 0.5 - 1)); sub = np.full((4, 1), c * (5 ** 0.5 - 1))
    >>> bias, rate = extrapolated_bias(t, boot, sub, 100, 25)
    >>> round(float(bias[0]), 6), round(float(rate[0]), 3)
    (0.1, 0.5)
    """
    d_n = bootstrap_bias(plugin, replicates)
    d_m = bootstrap_bias(plugin, sub_replicates)
    k = 1.0 + n / m
    rates = np.linspace(RATE_RANGE[0], RATE_RANGE[1], 201)
    ratios = ((k**rates) - 1.0) / ((2.0**rates) - 1.0)  # increasing in r
    usable = np.abs(d_n) > SOLVER_ATOL
    ratio = np.where(usable, d_m / np.where(usable, d_n, 1.0), ratios[-1])
    rate = np.interp(ratio, ratios, rates)  # clipped to the range at both ends
    return d_n / (2.0**rate - 1.0), rate
