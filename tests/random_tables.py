"""Random joint tables for the solver tests."""

from __future__ import annotations

import numpy as np


def tables(n: int, shape: tuple[int, int, int], seed: int, *, zero_frac: float = 0.0) -> np.ndarray:
    """n normalised Dirichlet tables of `shape`, each cell zeroed with probability zero_frac."""
    rng = np.random.default_rng(seed)
    size = int(np.prod(shape))
    P = rng.dirichlet(np.ones(size), size=n) * (rng.random((n, size)) >= zero_frac)
    P[P.sum(1) == 0, 0] = 1.0
    P = P.reshape(n, *shape)
    return P / P.sum(axis=(1, 2, 3), keepdims=True)
