"""Turn each variable into cluster labels: row L2-normalisation, PCA, seeded k-means.

Integer labels pass through (relabelled 0..K-1). The number of clusters of the continuous
variables is chosen by :func:`auto_clusters` from the sample size unless given.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmpid.errors import InputError, SampleSizeError

__all__ = [
    "Variable",
    "Discretised",
    "as_variable",
    "reduce",
    "kmeans_labels",
    "exact_labels",
    "single_thread",
    "auto_clusters",
    "plugin_bias_bits",
]

LN2 = math.log(2.0)


@dataclass(frozen=True)
class Variable:
    """A validated input: either labels (N,) or continuous features (N, d)."""

    name: str
    data: np.ndarray
    kind: str  # "labels" or "continuous"

    @property
    def n(self) -> int:
        return int(self.data.shape[0])


@dataclass(frozen=True)
class Discretised:
    """One variable as cluster labels.

    Attributes
    ----------
    labels : (N,) int64 in ``0..n_clusters-1``.
    n_clusters : the alphabet size (labels never used by any sample count as clusters too).
    kind : ``"labels"`` (given) or ``"continuous"`` (clustered).
    sizes : samples per label, shape (n_clusters,).
    n_components : PCA components used (None when PCA was skipped).
    explained_variance : fraction of the variance the PCA kept (None when skipped).
    """

    labels: np.ndarray
    n_clusters: int
    kind: str
    sizes: np.ndarray
    n_components: int | None = None
    explained_variance: float | None = None

    def summary(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "n_clusters": int(self.n_clusters),
            "smallest_cluster": int(self.sizes.min()),
            "largest_cluster": int(self.sizes.max()),
            "n_components": self.n_components,
            "explained_variance": self.explained_variance,
        }


def as_variable(x: object, name: str) -> Variable:
    """Validate one input: (N,) labels (integer, bool or str dtype) or (N, d) finite floats.

    A 1-D float array is one continuous feature, not labels. Raises InputError naming
    ``name`` on a wrong rank, an empty array, or NaN/inf rows.
    """
    try:
        arr = np.asarray(x)
    except Exception as exc:  # ragged lists and the like
        raise InputError(f"'{name}' must be an array of shape (N,) or (N, d); {exc}") from exc
    if arr.ndim not in (1, 2):
        raise InputError(
            f"'{name}' must have shape (N,) (labels) or (N, d) (features); got shape {arr.shape}."
        )
    if arr.shape[0] == 0:
        raise InputError(f"'{name}' is empty (shape {arr.shape}); it needs at least 2 samples.")
    if arr.ndim == 1 and (arr.dtype.kind in "iub" or arr.dtype.kind in "USO"):
        if arr.dtype.kind == "O":
            arr = arr.astype(str)
        return Variable(name, arr, "labels")
    if arr.dtype.kind not in "fiub":
        raise InputError(f"'{name}' must hold numbers or labels; got dtype {arr.dtype}.")
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise InputError(f"'{name}' has no features (shape {arr.shape}).")
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        shown = ", ".join(str(int(r)) for r in rows[:5]) + (", ..." if len(rows) > 5 else "")
        raise InputError(
            f"'{name}' has {len(rows)} row(s) with NaN or inf values (rows {shown}); "
            "drop or impute them before estimating."
        )
    return Variable(name, arr, "continuous")


def labels_of(var: Variable) -> Discretised:
    """Relabel given labels to ``0..K-1`` (sorted order of the distinct values)."""
    values, labels = np.unique(var.data, return_inverse=True)
    labels = labels.astype(np.int64).ravel()
    return Discretised(labels, len(values), "labels", np.bincount(labels, minlength=len(values)))


def reduce(
    x: np.ndarray, *, normalize: bool = True, n_components: int | None = 10, seed: int = 0
) -> tuple[np.ndarray, int | None, float | None]:
    """Row L2-normalise (when d >= 2) and project on the top PCA components.

    Parameters
    ----------
    x : (N, d) float features.
    normalize : divide each row by its L2 norm (rows of norm 0 stay 0). Skipped when d == 1.
    n_components : PCA components kept; PCA is skipped when None or >= d.
    seed : random state of the (randomized) PCA.

    Returns
    -------
    z : (N, m) features fed to k-means; the number of components used (or None); the
    fraction of variance kept (or None).
    """
    z = x
    if normalize and x.shape[1] >= 2:
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        z = x / np.where(norms > 0, norms, 1.0)
    if n_components is None or n_components >= z.shape[1] or z.shape[0] <= n_components:
        return np.ascontiguousarray(z), None, None
    from sklearn.decomposition import PCA

    pca = PCA(n_components=n_components, random_state=seed)
    out = pca.fit_transform(z)
    return np.ascontiguousarray(out), int(n_components), float(pca.explained_variance_ratio_.sum())


def single_thread() -> Any:
    """A context in which BLAS and OpenMP (PCA, k-means) run on one thread.

    At these sizes (thousands of rows, 10 components) threads cost more than they save,
    by 10-30x on a busy machine, and one thread gives the same labels on every machine.
    """
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def exact_labels(z: np.ndarray, *, rtol: float = 1e-6) -> np.ndarray:
    """Labels (N,) of the distinct rows of ``z``, numbered in sorted order of the rows.

    Rows that differ by less than ``rtol`` times the largest absolute entry count as one:
    float noise (a batch's padding, a PCA of constant rows) must not split a constant variable.
    """
    scale = float(np.max(np.abs(z))) if z.size else 0.0
    if scale == 0.0:
        return np.zeros(z.shape[0], dtype=np.int64)
    _, labels = np.unique(np.round(z / (scale * rtol)), axis=0, return_inverse=True)
    return labels.astype(np.int64).ravel()


def n_distinct_rows(z: np.ndarray, *, rtol: float = 1e-6) -> int:
    """How many distinct rows ``z`` has (the most clusters k-means can fill); see
    :func:`exact_labels` for what counts as distinct."""
    return int(exact_labels(z, rtol=rtol).max()) + 1 if z.shape[0] else 0


def kmeans_labels(z: np.ndarray, k: int, *, seed: int = 0, n_init: int = 4) -> np.ndarray:
    """Seeded k-means labels of the rows of ``z``, relabelled by first appearance.

    ``k`` must not exceed the number of distinct rows (the caller checks). Relabelling by
    first appearance makes the labels independent of k-means' internal numbering.
    """
    if k == 1:
        return np.zeros(z.shape[0], dtype=np.int64)
    from sklearn.cluster import KMeans

    km = KMeans(n_clusters=k, n_init=n_init, random_state=seed)
    raw = km.fit_predict(z)
    _, first = np.unique(raw, return_index=True)
    order = np.argsort(first)
    remap = np.empty(k, dtype=np.int64)
    remap[np.unique(raw)[order]] = np.arange(len(order))
    return remap[raw]


def plugin_bias_bits(n: int, k_image: int, k_text: int, k_target: int) -> float:
    """First-order (Miller-Madow) bias of the plug-in I(X1,X2;Y) under independence, in bits.

    ``(k_image * k_text - 1) * (k_target - 1) / (2 N ln 2)``: the spurious information that
    an empirical joint of N samples shows when there is none. It bounds the bias of every
    atom's plug-in value to first order (the atoms sum to I(X1,X2;Y)).
    """
    return (k_image * k_text - 1) * (k_target - 1) / (2.0 * n * LN2)


def auto_clusters(
    n: int,
    fixed: Mapping[str, int],
    caps: Mapping[str, int],
    *,
    max_bias: float = 0.05,
    max_clusters: int = 12,
) -> tuple[dict[str, int], bool]:
    """Choose the clusters of the continuous variables from the sample size.

    The rule: give every continuous variable the same number of clusters k (but never more
    than its distinct points, ``caps``), and take the largest k in ``2..max_clusters`` for
    which the plug-in bias of I(image, text; target) under independence,
    :func:`plugin_bias_bits`, is at most ``max_bias`` bits. Variables given as labels keep
    their alphabet (``fixed``). For N = 3,000 with three continuous variables this gives
    k = 6 (about 14 samples per cell of the 6x6x6 joint); for N = 5,000, k = 7.

    Parameters
    ----------
    n : number of samples.
    fixed : name -> alphabet size of the variables given as labels.
    caps : name -> distinct rows of each continuous variable.

    Returns
    -------
    name -> clusters for all three of image, text, target; and whether even the smallest
    choice (k = 2) exceeds ``max_bias`` (too few samples for any clustering).
    """
    names = ("image", "text", "target")

    def sizes(k: int) -> dict[str, int]:
        return {v: int(fixed[v]) if v in fixed else max(1, min(k, int(caps[v]))) for v in names}

    best = sizes(2)
    too_few = plugin_bias_bits(n, best["image"], best["text"], best["target"]) > max_bias
    for k in range(2, max_clusters + 1):
        cand = sizes(k)
        if plugin_bias_bits(n, cand["image"], cand["text"], cand["target"]) > max_bias:
            break
        best = cand
    return best, too_few


def check_clusters(name: str, k: int, n: int, distinct: int) -> None:
    """Raise SampleSizeError/InputError when ``k`` clusters cannot be formed from the data."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"The number of clusters for '{name}' must be an int >= 1; got {k!r}.")
    if k > n:
        raise SampleSizeError(
            f"clusters for '{name}' is {k} but there are only N = {n} samples; "
            "ask for at most N clusters, or use clusters='auto'."
        )
    if k > distinct:
        raise SampleSizeError(
            f"clusters for '{name}' is {k} but '{name}' has only {distinct} distinct rows; "
            f"ask for at most {distinct} clusters, or use clusters='auto'."
        )
