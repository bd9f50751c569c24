"""One batched PID solve for a stack of count tables, returned as atom columns."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

__all__ = ["AtomColumns", "solve_tables", "RETRY_MAX_ITER"]

#: Iteration limit of the second run given to tables the solver's default left unconverged.
RETRY_MAX_ITER = 2_000

_FIELDS = (
    ("redundancy", "redundancy", np.float64),
    ("unique_image", "unique_1", np.float64),
    ("unique_text", "unique_2", np.float64),
    ("synergy", "synergy", np.float64),
    ("converged", "converged", bool),
    ("gap", "gap", np.float64),
)


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

    def head(self, count: int) -> "AtomColumns":
        """The first ``count`` tables' columns."""
        return AtomColumns(*(getattr(self, name)[:count] for name, _, _ in _FIELDS))


def solve_tables(tables: np.ndarray, *, method: str = "exact", backend: str = "numpy") -> AtomColumns:
    """BROJA PID of every table (B, k_image, k_text, k_target) of counts, in one batched call.

    Source 1 (axis 1 of ``tables``) is the image, source 2 the text, the last axis the target.
    Tables left unconverged by the solver's default iteration limit are solved again with
    ``max_iter=RETRY_MAX_ITER``; whatever still fails keeps ``converged=False`` and its gap.
    """
    from mmpid.errors import ConvergenceWarning
    from mmpid.pid import decompose_many

    # Non-convergence is summarised by the caller (once, with its size in bits), not per call.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        res = decompose_many(tables, method=method, backend=backend)
        cols = {
            name: np.array(getattr(res, field), dtype=dtype)
            for name, field, dtype in _FIELDS
        }
        bad = np.flatnonzero(~cols["converged"])
        if bad.size:  # the few hard tables get a second, longer run
            again = decompose_many(tables[bad], method=method, backend=backend, max_iter=RETRY_MAX_ITER)
            better = np.asarray(again.gap) < cols["gap"][bad]
            for name, field, dtype in _FIELDS:
                cols[name][bad[better]] = np.asarray(getattr(again, field), dtype=dtype)[better]
    return AtomColumns(**cols)
