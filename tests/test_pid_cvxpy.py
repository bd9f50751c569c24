"""Agreement with a general-purpose convex solver: BROJA's programme written in cvxpy (Clarabel)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mmpid.pid import decompose

cp = pytest.importorskip("cvxpy")


def cvxpy_min_iq(p: np.ndarray) -> float:
    """min over q with p's (x1, y) and (x2, y) marginals of I_q(X1,X2;Y), bits.

    I_q(X1,X2;Y) = H(Y) - H_q(Y|X1,X2), and -H_q(Y|X1,X2) = Σ q log(q / q(x1,x2)), a sum of
    relative entropies of q against an affine function of q: convex, and DCP as written.
    """
    n1, n2, ny = p.shape
    q = cp.Variable((n1 * n2, ny), nonneg=True)  # rows: (x1, x2) pairs
    pair = cp.sum(q, axis=1, keepdims=True) @ np.ones((1, ny))
    rows_of = np.arange(n1 * n2).reshape(n1, n2)
    m1 = np.zeros((n1, n1 * n2))
    m2 = np.zeros((n2, n1 * n2))
    for a in range(n1):
        m1[a, rows_of[a]] = 1
    for b in range(n2):
        m2[b, rows_of[:, b]] = 1
    constraints = [m1 @ q == p.sum(axis=1), m2 @ q == p.sum(axis=0)]
    problem = cp.Problem(cp.Minimize(cp.sum(cp.rel_entr(q, pair))), constraints)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # solver chatter is not ours
        problem.solve(solver=cp.CLARABEL)
    assert problem.status == cp.OPTIMAL, problem.status
    py = p.sum(axis=(0, 1))
    h_y = -np.sum(py[py > 0] * np.log(py[py > 0]))
    return float((h_y + problem.value) / np.log(2))


def _mi(pxy: np.ndarray) -> float:
    """I(X;Y) in bits of a 2-D joint, written out here."""
    px, py = pxy.sum(axis=1, keepdims=True), pxy.sum(axis=0, keepdims=True)
    nz = pxy > 0
    return float(np.sum(pxy[nz] * np.log2(pxy[nz] / (px @ py)[nz])))


def _and() -> np.ndarray:
    p = np.zeros((2, 2, 2))
    for a in (0, 1):
        for b in (0, 1):
            p[a, b, a & b] = 0.25
    return p


def _random(seed: int, shape: tuple[int, int, int], sparsity: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape) * (rng.random(shape) >= sparsity)
    return p / p.sum()


TABLES = {
    "and": _and(),
    "dense 3x4x2": _random(0, (3, 4, 2)),
    "sparse 4x4x3": _random(1, (4, 4, 3), sparsity=0.4),
    "dense 5x3x4": _random(2, (5, 3, 4)),
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_exact_solver_matches_cvxpy(name: str) -> None:
    p = TABLES[name]
    pid = decompose(p)
    i_q = cvxpy_min_iq(p)
    i1, i2, i12 = _mi(p.sum(axis=1)), _mi(p.sum(axis=0)), _mi(p.reshape(-1, p.shape[2]))
    expected = np.array([i1 + i2 - i_q, i_q - i2, i_q - i1, i12 - i_q])
    got = np.array([pid.redundancy, pid.unique_1, pid.unique_2, pid.synergy])
    # Clarabel's default accuracy is about 1e-8 relative; ours is certified to 1e-7 bits
    np.testing.assert_allclose(got, expected, atol=2e-6, rtol=0)
    assert pid.converged and pid.gap <= 1e-7
