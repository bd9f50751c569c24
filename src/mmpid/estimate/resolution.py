"""Choose how finely to discretise each variable: the resolution the data support.

The rule behind ``clusters="auto"`` (the default). A coarse discretisation merges what the
variables tell apart and under-reads every atom (synergy first: it needs both sources
resolved at once); a fine one makes the plug-in estimate biased. Between the two, the data
say where the information stops growing:

1. Each continuous variable gets a ladder of resolutions, :data:`LADDER` clusters (never
   more than its distinct rows, nor fewer than :data:`MIN_PER_CLUSTER` samples per cluster
   on average), topped by its **exact values** when it has at most ``max_clusters``
   distinct rows (the question embeddings of a dataset with 107 distinct questions, say):
   nothing is merged there.
2. Every joint of the ladders (a grid: at most 13^3 candidates, each scored from label
   counts in about a millisecond) is scored by the Miller-Madow corrected plug-in
   I(X1, X2; Y) + I(X1; Y) + I(X2; Y), in bits. Each information is the plug-in minus its
   first-order bias ``(m_xy - m_x - m_y + 1) / (2 N ln 2)``, the m counting *occupied*
   cells; the single-source terms are there because the atoms split them too (a source
   left coarse where the other covers for it would under-read redundancy).
3. A candidate is admissible when the joint's first-order bias is at most ``max_bias``
   bits and its Good-Turing unseen mass (samples alone in their cell) at most
   :data:`MAX_MISSING`.
   The bias is counted on occupied cells, so a joint whose target is nearly a function of
   the sources (few occupied cells per source pair) may be resolved finely, while
   independent data (every cell occupied) get the bound of the ``"conservative"`` rule.
4. The coarsest admissible candidate (fewest cells) whose score is within
   :func:`tolerance` of the best admissible score is chosen: finer resolution must buy
   measurable information, more than the best candidate's own first-order bias (an
   embedded binary target split into 48 clusters gains 0.03 bits of noise that the
   first-order correction leaves). On independent data every score is 0 up to noise, so the
   coarsest step is kept.
5. If the chosen joint exceeds the solver's budget (:data:`MAX_WORK`), the target is
   coarsened one ladder step at a time, then the larger source: the sources' resolution is
   what the atoms are about, and the target's costs the solver the most.

No estimator is trained: the target enters only through the plug-in information of
cluster labels, the quantity whose bias step 3 bounds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

__all__ = [
    "LADDER",
    "MIN_PER_CLUSTER",
    "Resolution",
    "corrected_information",
    "solver_work",
    "choose_resolution",
    "tolerance",
]

LN2 = math.log(2.0)
#: Cluster counts tried for a continuous variable (below its exact values, if few).
LADDER: tuple[int, ...] = (2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
#: The fewest samples per cluster, on average, that a ladder step may leave.
MIN_PER_CLUSTER = 20
#: The most probability mass a candidate's joint may leave unseen (Good-Turing: the fraction
#: of samples alone in their cell). Beyond it most cells hold one or two samples, where the
#: first-order bias above is no longer the bias (it even shrinks as cells empty out).
MAX_MISSING = 0.10
#: The largest joint the rule may choose, by the exact solver's work per Newton step,
#: ``max(k1, k2) * ky * (min(k1, k2) * ky)**2`` (its Schur complement's rank-k update): 3e8
#: is a 107x24x16 table, about 0.1-0.2 s to solve on one core; 301 of them take 15-30 s
#: on 2 cores. A chosen joint above it is coarsened (step 5 of the rule).
MAX_WORK = 3e8


def tolerance(best: float, bias: float = 0.0) -> float:
    """Information (bits) a finer resolution must add to be preferred: 0.01 bits or 1% of
    the best score, whichever is larger, plus the best candidate's own first-order bias (the
    correction is first-order only: where cells are sparse, part of that much is still bias)."""
    return max(0.01, 0.01 * best) + max(bias, 0.0)


def solver_work(k1: int, k2: int, ky: int) -> float:
    """The exact solver's work per Newton step on a k1 x k2 x ky table (arbitrary units)."""
    return float(max(k1, k2)) * ky * (min(k1, k2) * ky) ** 2


def corrected_information(l1: np.ndarray, l2: np.ndarray, ly: np.ndarray) -> tuple[float, float, float]:
    """Miller-Madow corrected plug-in I(X1, X2; Y) of three label arrays (N,), in bits.

    Returns ``(corrected, bias, missing)``: the plug-in minus its first-order bias, that
    bias, ``(m123 - m12 - m3 + 1) / (2 N ln 2)`` with m the occupied cells of the joint of
    all three, of (X1, X2) and of Y; and the Good-Turing estimate of the joint's probability
    mass in cells the sample never saw (the fraction of samples alone in their cell).
    """
    n = len(ly)
    _, pair = np.unique(l1.astype(np.int64) * (int(l2.max()) + 1) + l2, return_inverse=True)
    pair = pair.ravel()
    ky = int(ly.max()) + 1
    joint = np.bincount(pair * ky + ly)
    c12 = np.bincount(pair)
    c3 = np.bincount(ly)

    def entropy(counts: np.ndarray) -> float:
        c = counts[counts > 0]
        return float(math.log2(n) - (c * np.log2(c)).sum() / n)

    plugin = entropy(c12) + entropy(c3) - entropy(joint)
    m123, m12, m3 = (int(np.count_nonzero(c)) for c in (joint, c12, c3))
    bias = (m123 - m12 - m3 + 1) / (2.0 * n * LN2)
    missing = int(np.count_nonzero(joint == 1)) / n
    return plugin - bias, bias, missing


@dataclass(frozen=True)
class Resolution:
    """The clusters chosen for each variable, and how.

    Attributes
    ----------
    clusters : name -> alphabet size (``"image"``, ``"text"``, ``"target"``).
    exact : names of the continuous variables kept at their exact distinct values.
    score : the chosen candidate's score, corrected I(X1, X2; Y) + I(X1; Y) + I(X2; Y), bits.
    bias : the first-order plug-in bias of its I(X1, X2; Y), bits.
    trace : every candidate scored, in order: ``{"image": k1, "text": k2, "target": ky,
        "score": bits, "bias": bits, "missing": unseen mass, "work": solver work,
        "admissible": bool}``.
    """

    clusters: dict[str, int]
    exact: tuple[str, ...]
    score: float
    bias: float
    trace: tuple[dict[str, object], ...] = field(default=())

    def summary(self) -> dict[str, object]:
        return {
            "clusters": dict(self.clusters),
            "exact": list(self.exact),
            "score_bits": self.score,
            "bias_bits": self.bias,
            "candidates": len(self.trace),
        }


def ladder(n: int, distinct: int, max_clusters: int) -> list[int]:
    """The resolutions tried for a continuous variable with ``distinct`` distinct rows."""
    cap = max(2, n // MIN_PER_CLUSTER)
    steps = [k for k in LADDER if k < distinct and k <= cap]
    if distinct <= max_clusters:
        steps.append(distinct)  # its exact values
    return steps or [min(distinct, 2)]


def choose_resolution(
    labels: Callable[[str, int], np.ndarray],
    ladders: Mapping[str, list[int]],
    fixed: Mapping[str, np.ndarray],
    distinct: Mapping[str, int],
    *,
    max_bias: float,
    max_missing: float = MAX_MISSING,
    max_work: float = MAX_WORK,
) -> Resolution:
    """Run the rule of this module's docstring.

    Parameters
    ----------
    labels : ``labels(name, k)`` -> (N,) int labels of continuous variable ``name`` at k
        clusters, or its exact values when k is its number of distinct rows (the caller
        caches them).
    ladders : name -> increasing cluster counts to try, for each continuous variable.
    fixed : name -> (N,) labels of the variables given as labels (never re-resolved).
    distinct : name -> distinct rows of each continuous variable (k equal to it means the
        exact values).
    max_bias : the admissible first-order plug-in bias, bits.
    max_missing : the admissible Good-Turing unseen mass of the joint.
    max_work : the largest :func:`solver_work` chosen (step 5).
    """
    names = ("image", "text", "target")
    free = list(ladders)
    trace: list[dict[str, object]] = []
    for ks in itertools.product(*(ladders[v] for v in free)):
        chosen = dict(zip(free, ks))
        arrays = [fixed[v] if v in fixed else labels(v, chosen[v]) for v in names]
        value, bias, missing = corrected_information(*arrays)
        # each source's own information counts too: the atoms split I(X1;Y) and I(X2;Y),
        # so a source left coarse where the other covers for it (redundancy) under-reads them
        one = np.zeros_like(arrays[0])
        value += corrected_information(arrays[0], one, arrays[2])[0]
        value += corrected_information(one, arrays[1], arrays[2])[0]
        trace.append({**{v: int(a.max()) + 1 if v not in chosen else int(chosen[v])
                         for v, a in zip(names, arrays)},
                      "score": value, "bias": bias, "missing": missing,
                      "work": solver_work(*(int(a.max()) + 1 for a in arrays)),
                      "admissible": bool(bias <= max_bias and missing <= max_missing)})
    ok = [t for t in trace if t["admissible"]] or [trace[0]]
    top = max(ok, key=lambda t: float(t["score"]))
    best = float(top["score"])
    near = [t for t in ok if float(t["score"]) >= best - tolerance(best, float(top["bias"]))]
    pick = min(near, key=lambda t: (int(t["image"]) * int(t["text"]) * int(t["target"]), -float(t["score"])))
    # Over the solver's budget: coarsen the target first (the work grows with its cube),
    # then the larger source, one ladder step at a time.
    by_ks = {tuple(t[v] for v in names): t for t in trace}
    while pick["work"] > max_work:
        order = ["target"] + sorted(("image", "text"), key=lambda v: -int(pick[v]))
        movable = [v for v in order if v in ladders and ladders[v].index(int(pick[v])) > 0]
        if not movable:
            break
        v = movable[0]
        ks = {u: int(pick[u]) for u in names}
        ks[v] = ladders[v][ladders[v].index(ks[v]) - 1]
        pick = by_ks[tuple(ks[u] for u in names)]
    clusters = {v: int(pick[v]) for v in names}
    exact = tuple(v for v in ladders if clusters[v] == distinct[v])
    return Resolution(clusters, exact, float(pick["score"]), float(pick["bias"]), tuple(trace))
