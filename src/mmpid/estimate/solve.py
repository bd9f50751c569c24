"""One batched PID solve for a stack of count tables, returned as atom columns.

Each table is solved on its own, so a stack may be cut into chunks solved anywhere (the Ray
engine's tasks) and put back together: the atoms are the same to the last bit. Inside
:func:`splitting_solves`, :func:`solve_tables` hands its stack to the given splitter.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, fields

import numpy as np

__all__ = ["RETRY_MAX_ITER", "AtomColumns", "solve_tables", "splitting_solves"]

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

    def head(self, count: int) -> AtomColumns:
        """The first ``count`` tables' columns."""
        return AtomColumns(*(getattr(self, name)[:count] for name, _, _ in _FIELDS))

    @classmethod
    def concatenate(cls, parts: Sequence[AtomColumns]) -> AtomColumns:
        """The columns of ``parts``, one after another (chunks of one stack, in order)."""
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})


#: A splitter: ``(tables, method, backend) -> AtomColumns``, solving the stack its own way.
Splitter = Callable[[np.ndarray, str, str], AtomColumns]
_SPLITTER: ContextVar[Splitter | None] = ContextVar("mmpid_solve_splitter", default=None)


@contextlib.contextmanager
def splitting_solves(splitter: Splitter) -> Iterator[None]:
    """Inside the block, :func:`solve_tables` calls ``splitter`` instead of solving in this process.

    The splitter must give every table the atoms :func:`solve_tables` gives it (chunks solved
    by :func:`solve_tables` and joined with :meth:`AtomColumns.concatenate` do).
    """
    token = _SPLITTER.set(splitter)
    try:
        yield
    finally:
        _SPLITTER.reset(token)


def solve_tables(tables: np.ndarray, *, method: str = "exact", backend: str = "numpy") -> AtomColumns:
    """BROJA PID of every table (B, k_image, k_text, k_target) of counts, in one batched call.

    Source 1 (axis 1 of ``tables``) is the image, source 2 the text, the last axis the target.
    Tables left unconverged by the solver's default iteration limit are solved again with
    ``max_iter=RETRY_MAX_ITER``; whatever still fails keeps ``converged=False`` and its gap.
    """
    splitter = _SPLITTER.get()
    if splitter is not None:
        token = _SPLITTER.set(None)  # the splitter's own calls solve here
        try:
            return splitter(tables, method, backend)
        finally:
            _SPLITTER.reset(token)

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
