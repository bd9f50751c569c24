"""Result objects of the PID solvers: one table (`PID`) or a stack of tables (`PIDBatch`)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np

ATOMS = ("redundancy", "unique_1", "unique_2", "synergy")

# Atoms above -NONNEGATIVE_TOL bits count as non-negative (float and solver noise).
NONNEGATIVE_TOL = 1e-6


@dataclass(frozen=True)
class PID:
    """The BROJA partial information decomposition of one table, in bits.

    The four atoms sum to `mutual_information` = I(X1,X2;Y). Negative atoms are
    reported as they are; `nonnegative` says whether all are >= -1e-6 bits.

    Attributes
    ----------
    redundancy, unique_1, unique_2, synergy : the atoms, bits.
    mutual_information : I(X1,X2;Y) of the input table, bits.
    method : "exact" or "ipfp".
    iterations : Newton steps (exact: the primal-dual pass plus any barrier fallback) or outer
        alternations (ipfp); one unit per method.
    fallback_rounds : IPFP alternations run by the exact method's last fallback on a table
        the Newton passes left uncertified (0 for almost every table, and for ipfp).
    converged : whether the solver met its stopping rule (for "exact": certified gap <= tol).
    gap : a certified upper bound, bits, on how far the reported I_q(X1,X2;Y) lies above
        the true minimum; every atom is within `gap` of its exact BROJA value.
    marginal_error : max abs violation of the two marginal constraints by the q used.
    """

    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float
    mutual_information: float
    method: str
    iterations: int
    fallback_rounds: int
    converged: bool
    gap: float
    marginal_error: float

    @property
    def nonnegative(self) -> bool:
        """True when every atom is >= -1e-6 bits."""
        return all(getattr(self, a) >= -NONNEGATIVE_TOL for a in ATOMS)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of every field plus `nonnegative`."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["nonnegative"] = self.nonnegative
        return out


@dataclass(frozen=True)
class PIDBatch:
    """PIDs of a stack of B tables: every field is a numpy array of shape (B,).

    Same fields as `PID` (bits), except `method`, one string for the stack.
    `batch[i]` is the `PID` of table i; `to_frame()` gives one row per table.
    """

    redundancy: np.ndarray
    unique_1: np.ndarray
    unique_2: np.ndarray
    synergy: np.ndarray
    mutual_information: np.ndarray
    method: str
    iterations: np.ndarray
    fallback_rounds: np.ndarray
    converged: np.ndarray
    gap: np.ndarray
    marginal_error: np.ndarray

    def __len__(self) -> int:
        return int(self.redundancy.shape[0])

    def __getitem__(self, i: int) -> PID:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise IndexError(f"PIDBatch index must be an int in [-{n}, {n}); got {i!r}.")
        vals = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name == "method":
                vals[f.name] = v
            elif f.name in ("iterations", "fallback_rounds"):
                vals[f.name] = int(v[i])
            elif f.name == "converged":
                vals[f.name] = bool(v[i])
            else:
                vals[f.name] = float(v[i])
        return PID(**vals)

    @property
    def nonnegative(self) -> np.ndarray:
        """Boolean array (B,): every atom of table i is >= -1e-6 bits."""
        return np.all([getattr(self, a) >= -NONNEGATIVE_TOL for a in ATOMS], axis=0)

    def to_dict(self) -> dict[str, Any]:
        """Dict of lists (one entry per table) plus `method`."""
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            out[f.name] = v if f.name == "method" else v.tolist()
        out["nonnegative"] = self.nonnegative.tolist()
        return out

    def to_frame(self) -> Any:
        """pandas DataFrame, one row per table, one column per field."""
        import pandas as pd

        cols = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "method"}
        frame = pd.DataFrame(cols)
        frame.insert(len(ATOMS) + 1, "method", self.method)
        frame["nonnegative"] = self.nonnegative
        return frame
