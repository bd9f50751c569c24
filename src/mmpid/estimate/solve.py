"""One batched PID solve for a stack of count tables, returned as atom columns."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["AtomColumns", "solve_tables"]


@dataclass(frozen=True)
class AtomColumns:
    """The four atoms of B tables, bits, each shape (B,); plus the solver's diagnostics."""

    redundancy: np.ndarray
    unique_image: np.ndarray
    unique_text: np.ndarray
    synergy: np.ndarray
    converged: np.ndarray
    gap: np.ndarray

    def stack(self) -> np.ndarray:
        """(B, 4): redundancy, unique_image, unique_text, synergy."""
        return np.stack([self.redundancy, self.unique_image, self.unique_text, self.synergy], 1)

    def __len__(self) -> int:
        return len(self.redundancy)


def solve_tables(tables: np.ndarray, *, method: str = "exact", backend: str = "numpy") -> AtomColumns:
    """BROJA PID of every table (B, k_image, k_text, k_target) of counts, in one batched call.

    Source 1 (axis 1 of ``tables``) is the image, source 2 the text, the last axis the target.
    """
    from mmpid.errors import ConvergenceWarning
    from mmpid.pid import decompose_many

    # Non-convergence is summarised by the caller (once, with its size in bits), not per call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = decompose_many(tables, method=method, backend=backend)
    return AtomColumns(
        redundancy=np.asarray(res.redundancy, dtype=np.float64),
        unique_image=np.asarray(res.unique_1, dtype=np.float64),
        unique_text=np.asarray(res.unique_2, dtype=np.float64),
        synergy=np.asarray(res.synergy, dtype=np.float64),
        converged=np.asarray(res.converged, dtype=bool),
        gap=np.asarray(res.gap, dtype=np.float64),
    )
