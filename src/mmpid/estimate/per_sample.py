"""The paper's per-sample, token-level protocol, with the noise floor it never reported.

Per example: the image, text and target token sets are each compressed by k-means to a common
length L (the centroids, in k-means order: this is how the reference code pairs tokens across
sets), each set of L centroids is discretised on its own (L2 rows, PCA, k-means), the L label
triples form a joint, and its PID is one example's result. The dataset figure is the mean over
examples (and the contribution the mean of per-example ratios).

Its noise floor is the same procedure on the same examples with the target token sets shuffled
across examples (a derangement, so no example keeps its own target): the values a pipeline of
this kind reports when the target has nothing to do with the sources. With L in the tens and
10 clusters per set, that floor is several tenths of a bit to over a bit per atom (3 bits in
all for 20-25 independent tokens per set).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmpid.errors import EstimateWarning, InputError, SampleSizeError
from mmpid.estimate.bootstrap import interval
from mmpid.estimate.contribution import contribution_image
from mmpid.estimate.convergence import convergence_note
from mmpid.estimate.discretise import n_distinct_rows, single_thread
from mmpid.estimate.result import BIT_ATOMS, AtomEstimate, Estimate
from mmpid.estimate.solve import solve_tables

__all__ = ["estimate_per_sample", "small_kmeans", "token_sets"]

_VARS = ("x_image", "x_text", "y")


def token_sets(x: Any, name: str) -> list[np.ndarray]:
    """Validate N token sets: an (N, T, d) array or a sequence of (T_i, d) arrays."""
    if isinstance(x, np.ndarray) and x.ndim == 3:
        sets = list(x)
    elif isinstance(x, Sequence) or (isinstance(x, np.ndarray) and x.dtype == object):
        sets = list(x)
    else:
        shape = getattr(x, "shape", None)
        raise InputError(
            f"With protocol='per-sample', '{name}' must be an (N, T, d) array or a sequence of N "
            f"(T_i, d) token arrays; got {type(x).__name__}" + (f" of shape {shape}." if shape else ".")
        )
    if not sets:
        raise InputError(f"'{name}' holds no examples.")
    out = []
    dim = None
    for i, s in enumerate(sets):
        arr = np.asarray(s, dtype=np.float64)
        if arr.ndim != 2 or arr.shape[0] < 2:
            raise InputError(
                f"{name}[{i}] must be a (T, d) token array with T >= 2; got shape {arr.shape}."
            )
        if dim is None:
            dim = arr.shape[1]
        elif arr.shape[1] != dim:
            raise InputError(
                f"{name}[{i}] has dimension {arr.shape[1]} but {name}[0] has {dim}; "
                "all token sets of one variable must share d."
            )
        if not np.isfinite(arr).all():
            raise InputError(f"{name}[{i}] has NaN or inf values; drop or impute them.")
        out.append(arr)
    return out


def _derangement(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation without fixed points (one random cycle through all n)."""
    order = rng.permutation(n)
    perm = np.empty(n, dtype=np.int64)
    perm[order] = np.roll(order, -1)
    return perm


class _SetLabels:
    """Compress-then-discretise one token set, memoised by (variable, example, length)."""

    def __init__(self, sets: dict[str, list[np.ndarray]], *, clusters: int, n_components: int | None,
                 normalize: bool, seed: int) -> None:
        self.sets, self.clusters, self.n_components = sets, clusters, n_components
        self.normalize, self.seed = normalize, seed
        self.cache: dict[tuple[int, int, int], np.ndarray] = {}

    def _state(self, *key: int) -> int:
        return int(np.random.SeedSequence([self.seed, *key]).generate_state(1)[0])

    def __call__(self, var: int, i: int, length: int) -> np.ndarray:
        key = (var, i, length)
        if key not in self.cache:
            tokens = self.sets[_VARS[var]][i]
            if tokens.shape[0] > length:
                tokens, _ = small_kmeans(tokens, length, seed=self._state(0, *key))
            if self.clusters >= tokens.shape[0] and n_distinct_rows(tokens) == tokens.shape[0]:
                # as many clusters as distinct points: each point is its own cluster (k-means++
                # seeds every point), so the labels, by first appearance, are 0..L-1
                self.cache[key] = np.arange(tokens.shape[0], dtype=np.int64)
                return self.cache[key]
            nc = None if self.n_components is None else min(self.n_components, length - 1)
            z = _reduce(tokens, normalize=self.normalize, n_components=nc)
            k = min(self.clusters, n_distinct_rows(z))
            _, raw = small_kmeans(z, k, seed=self._state(2, *key))
            _, first = np.unique(raw, return_index=True)  # relabel by first appearance
            remap = np.empty(int(raw.max()) + 1, dtype=np.int64)
            remap[raw[np.sort(first)]] = np.arange(first.size)
            self.cache[key] = remap[raw]
        return self.cache[key]


def _reduce(x: np.ndarray, *, normalize: bool, n_components: int | None) -> np.ndarray:
    """Row L2-normalisation and a full-SVD PCA (the few rows of one token set need no more)."""
    z = x
    if normalize and x.shape[1] >= 2:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        z = x / np.where(norms > 0, norms, 1.0)
    if n_components is None or n_components >= z.shape[1] or z.shape[0] <= n_components:
        return z
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return centred @ vt[:n_components].T


#: Lloyd iterations of :func:`small_kmeans` at most (it stops when the labels stop changing).
_MAX_ITER = 300


def small_kmeans(x: np.ndarray, k: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """k-means of a few points (one token set): k-means++ seeding, then Lloyd to convergence.

    A plain numpy twin of scikit-learn's ``KMeans(n_init=1)`` for sets of tens of points,
    where scikit-learn's per-call overhead (threads, validation) is 10-100x the arithmetic.

    Parameters
    ----------
    x : (T, d) float points, T >= k >= 1.
    k : clusters.
    seed : seeds the k-means++ draws.

    Returns
    -------
    centres : (k, d) float64, in seeding order; labels : (T,) int64 in 0..k-1.
    """
    x = np.asarray(x, dtype=np.float64)
    rng = np.random.default_rng(seed)
    t = x.shape[0]
    sq = np.einsum("ij,ij->i", x, x)
    centres = np.empty((k, x.shape[1]))
    first = int(rng.integers(t))
    centres[0] = x[first]
    d2 = np.maximum(sq - 2 * x @ x[first] + sq[first], 0.0)
    for c in range(1, k):
        total = d2.sum()
        pick = int(rng.choice(t, p=d2 / total)) if total > 0 else int(rng.integers(t))
        centres[c] = x[pick]
        d2 = np.minimum(d2, np.maximum(sq - 2 * x @ x[pick] + sq[pick], 0.0))
    labels = np.full(t, -1, dtype=np.int64)
    for _ in range(_MAX_ITER):
        dist = sq[:, None] - 2 * x @ centres.T + np.einsum("ij,ij->i", centres, centres)[None, :]
        new = np.argmin(dist, axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        counts = np.bincount(labels, minlength=k)
        sums = np.zeros_like(centres)
        np.add.at(sums, labels, x)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return centres, labels


def estimate_per_sample(
    x_image: Any,
    x_text: Any,
    y: Any,
    *,
    clusters: int = 10,
    length: int | None = None,
    n_shuffles: int = 1,
    n_components: int | None = 10,
    normalize: bool = True,
    n_bootstrap: int = 200,
    level: float = 0.95,
    seed: int = 0,
    method: str = "exact",
    backend: str = "numpy",
) -> Estimate:
    """The paper's per-example token-level PID, averaged over examples, with its noise floor.

    Parameters
    ----------
    x_image, x_text, y : N token sets each, an (N, T, d) array or a sequence of (T_i, d)
        arrays (image tokens, text tokens, target hidden states).
    clusters : k-means clusters per set (the paper's 10); fewer when a set has fewer
        distinct points.
    length : the common length L the sets are compressed to; default per example the
        shortest of its three sets.
    n_shuffles : how many derangements of the targets across examples form the noise floor.
    n_components, normalize : per-set PCA components and row normalisation.
    n_bootstrap, level, seed, method, backend : as in :func:`mmpid.estimate.estimate`.

    Returns
    -------
    Estimate whose ``plugin`` is the mean over examples of the per-example atoms (for the
    contributions: the mean of per-example ratios, as in the paper), ``null_mean`` the same
    mean under the shuffled targets (the noise floor), ``corrected = plugin - null_mean``
    (for the contributions: the ratio of the corrected uniques), and the interval a bootstrap
    over examples (paired, so the floor's uncertainty is included). ``details["per_example"]``
    holds the per-example atoms.
    """
    sets = {name: token_sets(arr, name) for name, arr in zip(_VARS, (x_image, x_text, y))}
    counts = {name: len(v) for name, v in sets.items()}
    if len(set(counts.values())) != 1:
        raise InputError(f"x_image, x_text and y must hold the same number of examples; got {counts}.")
    n = counts["x_image"]
    if n < 2:
        raise SampleSizeError(f"The per-sample noise floor needs at least 2 examples; got {n}.")
    if isinstance(clusters, bool) or not isinstance(clusters, (int, np.integer)) or clusters < 1:
        raise InputError(
            f"With protocol='per-sample', 'clusters' must be an int >= 1 (the paper uses 10); "
            f"got {clusters!r}."
        )
    if isinstance(n_shuffles, bool) or not isinstance(n_shuffles, (int, np.integer)) or n_shuffles < 1:
        raise InputError(f"'n_shuffles' must be an int >= 1; got {n_shuffles!r}.")
    lengths = np.array([[len(sets[v][i]) for v in _VARS] for i in range(n)])
    if length is not None:
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 2:
            raise InputError(f"'length' must be None or an int >= 2; got {length!r}.")
        short = np.flatnonzero(lengths.min(axis=1) < length)
        if short.size:
            raise SampleSizeError(
                f"'length' is {length} but example {int(short[0])} has a token set of only "
                f"{int(lengths[short[0]].min())} tokens; use a smaller length or None."
            )

    def common(i: int, j: int) -> int:
        if length is not None:
            return int(length)
        return int(min(lengths[i, 0], lengths[i, 1], lengths[j, 2]))

    labels = _SetLabels(sets, clusters=int(clusters), n_components=n_components,
                        normalize=normalize, seed=int(seed))
    k = int(clusters)
    shape = (k, k, k)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7]))
    pairs = [(i, i) for i in range(n)]
    for _ in range(int(n_shuffles)):
        perm = _derangement(n, rng)
        pairs += [(i, int(perm[i])) for i in range(n)]
    tables = np.zeros((len(pairs), *shape))
    with single_thread():
        for row, (i, j) in enumerate(pairs):
            ell = common(i, j)
            np.add.at(tables[row], (labels(0, i, ell), labels(1, i, ell), labels(2, j, ell)), 1.0)
    cols = solve_tables(tables, method=method, backend=backend)
    atoms = cols.stack()
    own = atoms[:n]
    floor = atoms[n:].reshape(int(n_shuffles), n, 4).mean(axis=0)

    boot_rng = np.random.default_rng(np.random.SeedSequence([int(seed), 11]))
    idx = boot_rng.integers(0, n, size=(int(n_bootstrap), n))
    own_b = own[idx].mean(axis=1)  # (B, 4)
    floor_b = floor[idx].mean(axis=1)
    plugin, null_mean = own.mean(axis=0), floor.mean(axis=0)
    corrected = plugin - null_mean
    lo, hi = interval(own_b - floor_b, level)

    out: dict[str, AtomEstimate] = {
        atom: AtomEstimate(plugin[j], null_mean[j], corrected[j], lo[j], hi[j])
        for j, atom in enumerate(BIT_ATOMS)
    }
    notes = [
        "Per-sample protocol: each example's PID rests on its own few tokens; the noise floor "
        "(targets shuffled across examples) is "
        + ", ".join(f"{a} = {null_mean[j]:.3f}" for j, a in enumerate(BIT_ATOMS))
        + " bits, so plug-in values of that size are estimator noise."
    ]
    within = [a for a in BIT_ATOMS if out[a].ci_low <= 0]
    if within:
        notes.append(f"Not distinguishable from the per-sample noise floor: {', '.join(within)}.")

    iu, it = BIT_ATOMS.index("unique_image"), BIT_ATOMS.index("unique_text")
    ratios = contribution_image(own[:, iu], own[:, it])
    floor_ratios = contribution_image(atoms[n:, iu], atoms[n:, it])
    c_plugin = float(np.mean(ratios[np.isfinite(ratios)])) if np.isfinite(ratios).any() else math.nan
    c_null = (
        float(np.mean(floor_ratios[np.isfinite(floor_ratios)]))
        if np.isfinite(floor_ratios).any()
        else math.nan
    )
    if out["unique_image"].ci_low <= 0 and out["unique_text"].ci_low <= 0:
        c_corr = c_lo = c_hi = math.nan
        notes.append(
            "The contribution metric is undefined: neither unique atom rises above the noise "
            "floor. (The paper's figure, the mean of per-example ratios, is the plugin value.)"
        )
    else:
        c_corr = float(contribution_image(corrected[iu], corrected[it]))
        rep = contribution_image(own_b[:, iu] - floor_b[:, iu], own_b[:, it] - floor_b[:, it])
        c_lo_arr, c_hi_arr = interval(rep[:, None], level)
        c_lo, c_hi = float(c_lo_arr[0]), float(c_hi_arr[0])
    out["contribution_image"] = AtomEstimate(c_plugin, c_null, c_corr, c_lo, c_hi)
    out["contribution_text"] = AtomEstimate(1 - c_plugin, 1 - c_null, 1 - c_corr, 1 - c_hi, 1 - c_lo)
    bad = convergence_note(cols, lambda message, emit: notes.append(message))
    if n < 30:
        message = (
            f"Only {n} examples: the per-sample averages and their intervals are rough."
        )
        notes.append(message)
        warnings.warn(message, EstimateWarning, stacklevel=3)
    config = {
        "protocol": "per-sample",
        "clusters": k,
        "length": length,
        "n_shuffles": int(n_shuffles),
        "n_components": n_components,
        "normalize": bool(normalize),
        "n_bootstrap": int(n_bootstrap),
        "level": float(level),
        "seed": int(seed),
        "method": method,
        "backend": backend,
    }
    details = {
        "per_example": {a: own[:, j].tolist() for j, a in enumerate(BIT_ATOMS)},
        "noise_floor_per_example": {a: floor[:, j].tolist() for j, a in enumerate(BIT_ATOMS)},
        "lengths": [common(i, i) for i in range(n)],
        "solver": {"tables": len(cols), "not_converged": bad},
    }
    return Estimate(
        **out,
        n=n,
        clusters={"image": k, "text": k, "target": k},
        config=config,
        warnings=tuple(notes),
        details=details,
    )
