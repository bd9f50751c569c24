"""Agreement with an independent reference: dit's BROJA exponential-cone solver (ECOS)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mmpid.pid import decompose, decompose_many

dit = pytest.importorskip("dit")
pytest.importorskip("ecos")


def dit_broja(p: np.ndarray) -> np.ndarray:
    """(R, U1, U2, S) in bits from dit's PID_BROJA(method='cone')."""
    from dit.pid import PID_BROJA

    idx = np.argwhere(p > 0)
    d = dit.Distribution([tuple(int(v) for v in i) for i in idx],
                         [float(p[tuple(i)]) for i in idx])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dit/ecos deprecation chatter is not ours
        pid = PID_BROJA(d, ((0,), (1,)), (2,), method="cone")
    return np.array([pid.get_pi(((0,), (1,))), pid.get_pi(((0,),)), pid.get_pi(((1,),)),
                     pid.get_pi(((0, 1),))], dtype=float)


def random_joint(seed: int, shape: tuple[int, int, int], sparsity: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    p = p * (rng.random(shape) >= sparsity)
    return p / p.sum()


CASES = [
    (0, (2, 2, 2), 0.0),
    (1, (3, 4, 2), 0.3),
    (2, (5, 5, 5), 0.0),
    (3, (6, 4, 5), 0.6),
    (4, (8, 8, 4), 0.7),
]


@pytest.mark.parametrize(("seed", "shape", "sparsity"), CASES)
def test_exact_agrees_with_dit_cone(seed: int, shape: tuple[int, int, int],
                                    sparsity: float) -> None:
    p = random_joint(seed, shape, sparsity)
    ours = decompose(p)
    ref = dit_broja(p)
    np.testing.assert_allclose(
        [ours.redundancy, ours.unique_1, ours.unique_2, ours.synergy], ref, atol=1e-5)
    assert ours.converged and ours.gap <= 1e-7


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "shape", "sparsity"),
                         [(5, (12, 12, 12), 0.0), (6, (12, 12, 12), 0.8), (7, (10, 12, 6), 0.5)])
def test_exact_agrees_with_dit_cone_large(seed: int, shape: tuple[int, int, int],
                                          sparsity: float) -> None:
    p = random_joint(seed, shape, sparsity)
    batch = decompose_many(p[None])
    ref = dit_broja(p)
    np.testing.assert_allclose(
        [batch.redundancy[0], batch.unique_1[0], batch.unique_2[0], batch.synergy[0]], ref,
        atol=1e-5)
    assert batch.converged[0]
