"""The permutation null: what the estimator reports when the target carries no information."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["NullSummary", "summarise_null"]


@dataclass(frozen=True)
class NullSummary:
    """Per-atom null mean, standard deviation and one-sided permutation p-value, each (m,)."""

    mean: np.ndarray
    sd: np.ndarray
    p_value: np.ndarray


def summarise_null(plugin: np.ndarray, null: np.ndarray, *, atol: float = 0.0) -> NullSummary:
    """Summarise null replicates (P, m) against the plug-in values (m,).

    The p-value is ``(1 + #{null >= plugin - atol}) / (P + 1)``: the chance that data without
    any dependence of the target on the sources gives a value at least as large.
    """
    p = null.shape[0]
    exceed = np.sum(null >= (plugin - atol)[None, :], axis=0)
    return NullSummary(
        mean=np.mean(null, axis=0),
        sd=np.std(null, axis=0, ddof=1) if p > 1 else np.full(null.shape[1], np.nan),
        p_value=(1.0 + exceed) / (p + 1.0),
    )
