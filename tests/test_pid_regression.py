"""Regression tables on which the exact solver once stalled (degenerate optima)."""

from __future__ import annotations

import numpy as np
import pytest

from mmpid.errors import ConvergenceWarning
from mmpid.pid import decompose, decompose_many

# Counts (7 x 7 x 7, 209 non-zero cells) of an AND-like table from the estimator's
# bootstrap: the BROJA optimum puts no mass on some (x1, x2) pairs, so the barrier
# problem has no minimiser; the first Newton run stalled at gap 0.019 bits.
AND_LIKE = """
27 27 0 31 0 28 25 0 0 44 0 56 0 0 33 36 0 32 0 19 32 0 0 55 0 69 0 0 0 0 53 0 57 0
0 35 16 0 19 0 18 35 0 0 46 0 63 0 0 15 21 0 31 0 30 18 14 17 0 11 0 10 10 14 4 0 28
0 15 22 11 21 0 7 0 15 19 11 19 0 20 0 10 14 24 27 0 18 0 16 13 6 12 0 17 0 19 9 26
29 0 28 0 22 23 17 23 0 8 0 15 25 29 25 0 23 0 29 38 21 16 0 14 0 14 14 14 19 0 18 0
20 12 26 18 0 12 0 23 20 13 23 0 11 0 15 15 22 32 0 17 0 18 29 16 22 0 11 0 13 17 13
18 0 22 0 11 10 12 23 0 14 0 11 17 13 9 0 15 0 14 10 11 21 0 14 0 24 23 16 14 0 13 0
16 26 27 31 0 32 0 23 29 0 0 71 0 56 0 0 25 25 0 35 0 27 22 0 0 59 0 53 0 0 0 0 36 0
45 0 0 36 27 0 40 0 24 29 0 0 46 0 50 0 0 20 25 0 34 0 28 28 0 0 57 0 59 0 0 25 24 0
36 0 28 28 0 0 58 0 51 0 0 0 0 42 0 53 0 0 40 35 0 30 0 19 19 0 0 53 0 55 0 0 11 20
0 28 0 11 19 16 15 0 15 0 13 22 18 12 0 16 0 25 16 21 17 0 13 0 4 15 20 17 0 17 0 16
12 16 23 0 28 0 26 25 16 13 0 13 0 17 10
"""


def and_like() -> np.ndarray:
    return np.array(AND_LIKE.split(), dtype=float).reshape(7, 7, 7)


def test_degenerate_table_is_certified_by_newton() -> None:
    p = and_like()
    pid = decompose(p)
    assert pid.converged and 0.0 <= pid.gap <= 1e-7 and pid.marginal_error < 1e-12
    # certified by Newton steps (the retry), not by thousands of IPFP alternations
    assert pid.iterations < 400
    # An independent bracket: IPFP's feasible I_q lies above the optimum and its own
    # certificate bounds it from below (synergy = I(X1,X2;Y) - I_q).
    with pytest.warns(ConvergenceWarning):
        ipfp = decompose(p, method="ipfp", tol=1e-12, max_iter=300)
    assert ipfp.gap > 0
    assert ipfp.synergy - 1e-9 <= pid.synergy <= ipfp.synergy + ipfp.gap + 1e-9


def test_degenerate_table_in_a_stack_matches_single_solve() -> None:
    rng = np.random.default_rng(5)
    dense = rng.dirichlet(np.ones(343), size=3).reshape(3, 7, 7, 7)
    P = np.concatenate([dense[:1], and_like()[None] / 1000.0, dense[1:]])
    batch = decompose_many(P)
    single = decompose(and_like())
    assert batch.converged.all() and (batch.gap <= 1e-7).all()
    np.testing.assert_allclose(batch[1].synergy, single.synergy, atol=1e-12)
    assert batch[1].iterations == single.iterations
