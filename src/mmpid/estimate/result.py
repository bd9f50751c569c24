"""The result objects of :func:`mmpid.estimate.estimate`: one :class:`AtomEstimate` per atom."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ATOMS", "BIT_ATOMS", "CONTRIBUTIONS", "FIELDS", "AtomEstimate", "Estimate"]

#: The four PID atoms, in bits. Source 1 is the image, source 2 the text.
BIT_ATOMS: tuple[str, ...] = ("redundancy", "unique_image", "unique_text", "synergy")
#: The modality-contribution metric, as fractions in [0, 1] (NaN when undefined).
CONTRIBUTIONS: tuple[str, ...] = ("contribution_image", "contribution_text")
#: Every row of an :class:`Estimate`, in order.
ATOMS: tuple[str, ...] = BIT_ATOMS + CONTRIBUTIONS
#: The numbers reported for every atom.
FIELDS: tuple[str, ...] = ("plugin", "null_mean", "corrected", "ci_low", "ci_high")


@dataclass(frozen=True, eq=False)
class AtomEstimate:
    """One atom's estimate (bits for the atoms, fractions for the contributions).

    Attributes
    ----------
    plugin : the value on the empirical joint of the discretised data.
    null_mean : the mean of the same estimate over the permutation null (target shuffled).
    corrected : the bias-corrected value (see :func:`mmpid.estimate.estimate` for the rule).
    ci_low, ci_high : the bootstrap confidence interval of the corrected value.

    NaN marks an undefined value (a contribution when both unique atoms are indistinguishable
    from zero); two estimates are equal when every field is, NaN matching NaN. Negative atoms
    are reported as they are, never clamped.
    """

    plugin: float
    null_mean: float
    corrected: float
    ci_low: float
    ci_high: float

    def __post_init__(self) -> None:
        for name in FIELDS:
            object.__setattr__(self, name, float(getattr(self, name)))

    def _key(self) -> tuple[float | None, ...]:
        return tuple(None if math.isnan(v) else v for v in (getattr(self, f) for f in FIELDS))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AtomEstimate):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @property
    def defined(self) -> bool:
        """False when the corrected value is undefined (NaN)."""
        return not math.isnan(self.corrected)

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies inside the confidence interval (bounds included)."""
        return bool(self.ci_low <= value <= self.ci_high)

    def to_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FIELDS}


@dataclass(frozen=True)
class Estimate:
    """The PID of (image, text) about a target, with null, bias correction and intervals.

    Attributes
    ----------
    redundancy, unique_image, unique_text, synergy : :class:`AtomEstimate` in bits.
    contribution_image, contribution_text : :class:`AtomEstimate` as fractions,
        ``C_image = U_image / (U_image + U_text)`` and ``C_text = 1 - C_image``.
    n : the number of samples (examples for the per-sample protocol).
    clusters : alphabet sizes used, ``{"image": k1, "text": k2, "target": ky}``.
    config : every setting used, JSON-serialisable.
    warnings : messages worth reading before trusting the numbers.
    details : diagnostics (null spread and p-values per atom, solver convergence, cluster
        sizes), JSON-serialisable.
    timing : seconds spent per stage (pca, kmeans, tables, solve); not part of equality or
        of :meth:`to_dict`, so that equal inputs and seeds give equal estimates.

    Each atom is also reachable by name: ``est["synergy"] is est.synergy``.
    """

    redundancy: AtomEstimate
    unique_image: AtomEstimate
    unique_text: AtomEstimate
    synergy: AtomEstimate
    contribution_image: AtomEstimate
    contribution_text: AtomEstimate
    n: int
    clusters: dict[str, int]
    config: dict[str, Any]
    warnings: tuple[str, ...] = ()
    details: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, float] = field(default_factory=dict, compare=False, repr=False)

    def __getitem__(self, atom: str) -> AtomEstimate:
        if atom not in ATOMS:
            raise KeyError(f"{atom!r} is not an atom; the atoms are {list(ATOMS)}.")
        value: AtomEstimate = getattr(self, atom)
        return value

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(ATOMS)

    def atoms(self) -> dict[str, AtomEstimate]:
        """Atom name -> :class:`AtomEstimate`, in the order of :data:`ATOMS`."""
        return {atom: getattr(self, atom) for atom in ATOMS}

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict: the atoms (NaN stays NaN) plus metadata."""
        return {
            "atoms": {atom: est.to_dict() for atom, est in self.atoms().items()},
            "n": self.n,
            "clusters": dict(self.clusters),
            "config": dict(self.config),
            "warnings": list(self.warnings),
            "details": dict(self.details),
        }

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per atom: atom, plugin, null_mean, corrected, ci_low, ci_high."""
        import pandas as pd

        rows = [{"atom": atom, **est.to_dict()} for atom, est in self.atoms().items()]
        return pd.DataFrame(rows, columns=["atom", *FIELDS])
