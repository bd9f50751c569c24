"""What the estimators say when the PID solver leaves tables uncertified."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from mmpid.errors import ConvergenceWarning
from mmpid.estimate.solve import AtomColumns

__all__ = ["GAP_WARN", "convergence_note"]

#: Certified solver gaps (bits) above this raise a ConvergenceWarning; smaller ones are noted.
GAP_WARN = 1e-3


def convergence_note(cols: AtomColumns, note: Any, *, primary: int = 0) -> int:
    """Record tables the solver did not converge on; warn only when the gap can show.

    The first ``primary`` tables (the plug-in) enter the result directly; the others
    (resamples) enter through means and quantiles over hundreds of tables, where a few
    tables off by a small gap move nothing. A ConvergenceWarning is raised when a primary
    table, or more than 5% of all tables, is left with a certified gap above
    :data:`GAP_WARN` bits; otherwise the fact is only noted in ``warnings``.
    """
    bad = ~cols.converged
    if not bad.any():
        return 0
    gap = float(np.nanmax(cols.gap[bad]))
    large = bad & (cols.gap > GAP_WARN)
    message = (
        f"The PID solver did not converge on {int(bad.sum())} of {len(cols)} tables; their atoms "
        f"are within the certified gap of the optimum (largest {gap:.2e} bits)."
    )
    if large[:primary].any() or large.mean() > 0.05:
        message += " That gap can show in the result: use fewer clusters."
        warnings.warn(message, ConvergenceWarning, stacklevel=4)
    note(message, emit=False)
    return int(bad.sum())
