"""Both estimators on the same inputs, and where they disagree.

The discrete estimator (clusters + exact BROJA) and the Gaussian one (the ~G-PID of the
PCA-reduced features) answer the same question with different blind spots: the Gaussian PID
sees only linear (second-order) dependence, so it cannot see XOR-type synergy or categorical
structure; the discrete one sees nothing finer than its clusters, and counts information in
bits of cluster labels (at most log2 of the alphabet), where the Gaussian mutual information
counts continuous detail without such a bound. Where they differ, the difference says which
kind of dependence carries the atom.

**Disagreement**, precisely: for one atom (R, U_image, U_text or S; the contributions are not
compared) at one layer, the two estimators *disagree* when their intervals are disjoint **and**
their corrected values differ by more than :data:`DISAGREE_BITS` (0.05 bits). Both conditions
are needed: disjoint intervals alone flag differences of a few thousandths of a bit at large N
(the two estimators measure different quantities, which are never exactly equal), and a large
difference with overlapping intervals is not established by the data.

>>> d = {"synergy": (0.98, 0.95, 1.01)}
>>> g = {"synergy": (0.00, -0.01, 0.01)}
>>> [x.atom for x in compare_atoms(d, g)]
['synergy']
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mmpid.errors import InputError
from mmpid.estimate.result import BIT_ATOMS, Estimate

__all__ = [
    "DISAGREE_BITS",
    "DISAGREEMENT_RULE",
    "Disagreement",
    "EstimatorComparison",
    "compare_atoms",
    "disagreements",
    "estimate_both",
    "reading",
]

#: Corrected values further apart than this (bits), with disjoint intervals, disagree.
DISAGREE_BITS = 0.05
#: The rule in words (results.json's ``config["disagreement_rule"]`` and the report say it).
DISAGREEMENT_RULE = (
    "an atom (R, U_image, U_text, S) at a layer where the discrete and the Gaussian "
    f"estimators' intervals are disjoint and their corrected values differ by more than "
    f"{DISAGREE_BITS} bits"
)

_MODALITY = {"unique_image": "image", "unique_text": "text"}


def reading(atom: str, discrete_higher: bool) -> str:
    """The likely meaning of a disagreement on ``atom``, in one line.

    ``discrete_higher``: the discrete estimator's corrected value is the larger one.
    """
    if atom == "synergy":
        if discrete_higher:
            return (
                "synergy that only the discrete estimator sees is nonlinear (XOR-type): the "
                "Gaussian PID sees only linear dependence and cannot see it"
            )
        return (
            "synergy that only the Gaussian PID sees is fine-grained (e.g. a target close to a "
            "difference of the two sources): the clusters do not resolve it; finer clusters or "
            "more samples would show whether it is there"
        )
    if atom == "redundancy":
        if discrete_higher:
            return (
                "redundancy that only the discrete estimator sees is nonlinear: both modalities "
                "carry the same categorical (not linear) information about the target"
            )
        return (
            "redundancy that only the Gaussian PID sees is continuous detail the clusters "
            "merge (shared information is lost first when both sources are coarsened), or a "
            "Gaussian over-reading of well-separated clusters (its information is not bounded "
            "by the clusters' entropy)"
        )
    if atom in _MODALITY:
        mod = _MODALITY[atom]
        if discrete_higher:
            return (
                f"unique {mod} information that only the discrete estimator sees is nonlinear "
                f"in the {mod} features (the Gaussian PID sees only their linear part)"
            )
        return (
            f"unique {mod} information that only the Gaussian PID sees is detail of the {mod} "
            "features finer than the clusters resolve, or linear structure the discrete "
            "estimator counts elsewhere (it splits the same total differently)"
        )
    raise InputError(f"'atom' must be one of {list(BIT_ATOMS)}; got {atom!r}.")


@dataclass(frozen=True)
class Disagreement:
    """One atom at one layer on which the two estimators disagree (see the module docstring).

    Attributes
    ----------
    layer : the layer (None for a single estimate).
    atom : ``redundancy``, ``unique_image``, ``unique_text`` or ``synergy``.
    discrete, gaussian : each estimator's (corrected, ci_low, ci_high), bits.
    difference : discrete minus Gaussian corrected value, bits.
    reading : the likely meaning, one line (:func:`reading`).
    """

    layer: int | None
    atom: str
    discrete: tuple[float, float, float]
    gaussian: tuple[float, float, float]
    difference: float
    reading: str

    def to_dict(self) -> dict[str, Any]:
        """A JSON object: the values as ``{"corrected", "ci_low", "ci_high"}``, bits."""
        def values(v: tuple[float, float, float]) -> dict[str, float]:
            return dict(zip(("corrected", "ci_low", "ci_high"), (float(x) for x in v)))

        return {
            "layer": self.layer,
            "atom": self.atom,
            "discrete": values(self.discrete),
            "gaussian": values(self.gaussian),
            "difference": float(self.difference),
            "reading": self.reading,
        }

    @classmethod
    def from_dict(cls, row: Mapping[str, Any]) -> Disagreement:
        """Read back :meth:`to_dict`'s object; InputError naming what is missing or wrong."""
        if not isinstance(row, Mapping):
            raise InputError(f"each disagreement must be a JSON object; got {row!r}.")
        need = ("layer", "atom", "discrete", "gaussian", "difference", "reading")
        lacking = [k for k in need if k not in row]
        if lacking:
            raise InputError(f"a disagreement lacks the keys {lacking}; it needs {list(need)}.")
        if row["atom"] not in BIT_ATOMS:
            raise InputError(
                f"a disagreement's 'atom' must be one of {list(BIT_ATOMS)}; got {row['atom']!r}."
            )
        try:
            trio = {
                k: tuple(float(row[k][f]) for f in ("corrected", "ci_low", "ci_high"))
                for k in ("discrete", "gaussian")
            }
            layer = None if row["layer"] is None else int(row["layer"])
            difference = float(row["difference"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"a disagreement does not follow the schema ({exc!r}): {row!r}.") from None
        return cls(layer, row["atom"], trio["discrete"], trio["gaussian"], difference,
                   str(row["reading"]))


def compare_atoms(
    discrete: Mapping[str, tuple[float, float, float]],
    gaussian: Mapping[str, tuple[float, float, float]],
    *,
    layer: int | None = None,
    threshold: float = DISAGREE_BITS,
) -> tuple[Disagreement, ...]:
    """The atoms present in both mappings (atom -> (corrected, ci_low, ci_high), bits) on
    which the estimators disagree, in the order of :data:`BIT_ATOMS`. NaN never disagrees."""
    out = []
    for atom in BIT_ATOMS:
        if atom not in discrete or atom not in gaussian:
            continue
        d, g = (tuple(float(v) for v in x) for x in (discrete[atom], gaussian[atom]))
        if any(math.isnan(v) for v in (*d, *g)):
            continue
        disjoint = d[1] > g[2] or g[1] > d[2]
        diff = d[0] - g[0]
        if disjoint and abs(diff) > threshold:
            out.append(Disagreement(layer, atom, d, g, diff, reading(atom, diff > 0)))  # type: ignore[arg-type]
    return tuple(out)


def _atoms_of(est: Any) -> dict[str, tuple[float, float, float]]:
    frame = est.to_frame()
    if "atom" not in frame.columns and frame.index.name == "atom":
        frame = frame.reset_index()
    return {
        str(r["atom"]): (r["corrected"], r["ci_low"], r["ci_high"])
        for r in frame.to_dict(orient="records")
        if r["atom"] in BIT_ATOMS
    }


def disagreements(
    discrete: Any, gaussian: Any, *, layer: int | None = None, threshold: float = DISAGREE_BITS
) -> tuple[Disagreement, ...]:
    """Where two estimates of the same data disagree (objects with ``to_frame()``, such as
    :class:`Estimate`: one row per atom with ``corrected, ci_low, ci_high``)."""
    return compare_atoms(_atoms_of(discrete), _atoms_of(gaussian), layer=layer, threshold=threshold)


@dataclass(frozen=True)
class EstimatorComparison:
    """The discrete and the Gaussian estimate of the same inputs, and where they disagree."""

    discrete: Estimate
    gaussian: Estimate
    disagreements: tuple[Disagreement, ...]

    def to_frame(self) -> pd.DataFrame:
        """Both estimates' rows (one per atom each), with a first column ``estimator``."""
        frames = []
        for name, est in (("discrete", self.discrete), ("gaussian", self.gaussian)):
            frame = est.to_frame()
            if "atom" not in frame.columns:
                frame = frame.reset_index()
            frame.insert(0, "estimator", name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """Both estimates (:meth:`Estimate.to_dict`), the disagreements and the rule."""
        return {
            "discrete": self.discrete.to_dict(),
            "gaussian": self.gaussian.to_dict(),
            "disagreements": [d.to_dict() for d in self.disagreements],
            "disagreement_rule": DISAGREEMENT_RULE,
        }


def estimate_both(x_image: Any, x_text: Any, y: Any, **options: Any) -> EstimatorComparison:
    """Run the discrete and the Gaussian estimator on the same inputs and compare them.

    ``options`` are :func:`mmpid.estimate`'s (without ``estimator``); the discrete-only ones
    (``clusters``, ``n_init``, ...) go to the discrete estimator alone, the shared ones
    (``seed``, ``n_bootstrap``, ``n_permutations``, ``level``, ``correction``, ``normalize``,
    ``n_components``) to both, so both reduce the features with the same PCA seeds. The
    inputs must suit both: continuous features for every variable (the Gaussian PID refuses
    labels). ``mmpid.estimate(..., estimator="both")`` points here: ``estimate`` returns one
    :class:`Estimate`, this returns an :class:`EstimatorComparison`.

    Returns
    -------
    EstimatorComparison: ``.discrete``, ``.gaussian`` (Estimates, bits) and
    ``.disagreements`` (see the module docstring for the rule).

    Examples
    --------
    >>> from mmpid import synthetic
    >>> d = synthetic.make("xor", 1000, dim_image=16, dim_text=16, dim_target=16, seed=0)
    >>> both = estimate_both(d.x_image, d.x_text, d.y, n_bootstrap=20, n_permutations=5)
    >>> [(x.atom, x.difference > 0.9) for x in both.disagreements]
    [('synergy', True)]
    """
    from mmpid.estimate.core import estimate
    from mmpid.estimate.options import DISCRETE_ONLY, EstimateOptions

    if "estimator" in options:
        raise InputError(
            "estimate_both runs both estimators; leave 'estimator' out "
            f"(got estimator={options['estimator']!r})."
        )
    EstimateOptions(estimator="both", **options)  # every option checked before any work
    shared = {k: v for k, v in options.items() if k not in DISCRETE_ONLY}
    # the Gaussian first: it is the faster, and refuses inputs (labels) the discrete one takes
    gaussian = estimate(x_image, x_text, y, estimator="gaussian", **shared)
    discrete = estimate(x_image, x_text, y, estimator="discrete", **options)
    return EstimatorComparison(discrete, gaussian, disagreements(discrete, gaussian))
