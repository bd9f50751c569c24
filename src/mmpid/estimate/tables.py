"""Joint count tables of label triples: the data, its bootstrap resamples, its permutation null.

All tables of one estimate share the shape (k_image, k_text, k_target): the labels are fixed
once (discretisation is not redone per resample), so tables stack for one batched solve.
"""

from __future__ import annotations

import numpy as np

__all__ = ["joint_table", "bootstrap_tables", "permutation_tables"]

# Resamples are counted in chunks of at most this many label codes (bounds memory).
_CHUNK = 2_000_000


def _codes(l1: np.ndarray, l2: np.ndarray, ly: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    return (l1 * shape[1] + l2) * shape[2] + ly


def joint_table(
    l1: np.ndarray, l2: np.ndarray, ly: np.ndarray, shape: tuple[int, int, int]
) -> np.ndarray:
    """Counts of the label triples, shape ``shape`` (float64)."""
    size = shape[0] * shape[1] * shape[2]
    counts = np.bincount(_codes(l1, l2, ly, shape), minlength=size)
    return counts.reshape(shape).astype(np.float64)


def _count_rows(codes: np.ndarray, size: int) -> np.ndarray:
    """Counts per row of a (B, N) code matrix -> (B, size)."""
    b = codes.shape[0]
    offset = (np.arange(b, dtype=np.int64) * size)[:, None]
    return np.bincount((codes + offset).ravel(), minlength=b * size).reshape(b, size)


def bootstrap_tables(
    l1: np.ndarray,
    l2: np.ndarray,
    ly: np.ndarray,
    shape: tuple[int, int, int],
    n_resamples: int,
    rng: np.random.Generator,
    *,
    resample_size: int | None = None,
) -> np.ndarray:
    """Tables of ``n_resamples`` bootstrap resamples (samples drawn with replacement).

    ``resample_size`` (default N) draws that many samples per resample instead: the
    m-out-of-n bootstrap.

    Returns
    -------
    (n_resamples, *shape) float64 counts, each summing to ``resample_size`` (N by default).
    """
    n = len(l1)
    m = n if resample_size is None else int(resample_size)
    size = shape[0] * shape[1] * shape[2]
    codes = _codes(l1, l2, ly, shape)
    out = np.empty((n_resamples, size), dtype=np.float64)
    step = max(1, _CHUNK // max(m, 1))
    for start in range(0, n_resamples, step):
        stop = min(n_resamples, start + step)
        idx = rng.integers(0, n, size=(stop - start, m))
        out[start:stop] = _count_rows(codes[idx], size)
    return out.reshape(n_resamples, *shape)


def permutation_tables(
    l1: np.ndarray,
    l2: np.ndarray,
    ly: np.ndarray,
    shape: tuple[int, int, int],
    n_permutations: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Tables with the target labels shuffled against the (image, text) pairs.

    The pairs keep their joint distribution (and the target its marginal); only the
    dependence of the target on the sources is destroyed. Returns (n_permutations, *shape).
    """
    n = len(l1)
    size = shape[0] * shape[1] * shape[2]
    pair = (l1 * shape[1] + l2) * shape[2]
    out = np.empty((n_permutations, size), dtype=np.float64)
    step = max(1, _CHUNK // max(n, 1))
    for start in range(0, n_permutations, step):
        stop = min(n_permutations, start + step)
        shuffled = rng.permuted(np.broadcast_to(ly, (stop - start, n)), axis=1)
        out[start:stop] = _count_rows(pair[None, :] + shuffled, size)
    return out.reshape(n_permutations, *shape)
