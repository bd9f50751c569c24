"""Invariants of the BROJA PID, property-based (hypothesis, derandomised)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from mmpid.pid import decompose, measures

ATOMS = ("redundancy", "unique_1", "unique_2", "synergy")
SETTINGS = settings(max_examples=15, deadline=None, derandomize=True)


@st.composite
def joint_tables(draw, max_side: int = 4) -> np.ndarray:
    """Random joints (n1, n2, ny) with many zero cells, never all zero."""
    shape = tuple(draw(st.integers(1, max_side)) for _ in range(3))
    seed = draw(st.integers(0, 2**32 - 1))
    sparsity = draw(st.sampled_from([0.0, 0.3, 0.6]))
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)
    p = p * (rng.random(shape) >= sparsity)
    if p.sum() == 0:
        p.flat[0] = 1.0
    return p / p.sum()


def atoms(pid) -> np.ndarray:
    return np.array([getattr(pid, a) for a in ATOMS])


@SETTINGS
@given(joint_tables())
def test_swapping_sources_swaps_uniques(p: np.ndarray) -> None:
    a = decompose(p)
    b = decompose(p.transpose(1, 0, 2))
    np.testing.assert_allclose(
        [b.redundancy, b.unique_1, b.unique_2, b.synergy],
        [a.redundancy, a.unique_2, a.unique_1, a.synergy],
        atol=2e-7,
    )


@SETTINGS
@given(joint_tables(), st.integers(0, 2**32 - 1))
def test_relabelling_symbols_changes_nothing(p: np.ndarray, seed: int) -> None:
    rng = np.random.default_rng(seed)
    perm = [rng.permutation(n) for n in p.shape]
    q = p[np.ix_(*perm)]
    np.testing.assert_allclose(atoms(decompose(q)), atoms(decompose(p)), atol=2e-7)


@SETTINGS
@given(joint_tables())
def test_atoms_sum_to_mi_and_redundancy_identities(p: np.ndarray) -> None:
    pid = decompose(p)
    i1, i2, i12 = measures.source_informations(p)
    assert pid.converged
    assert 0.0 <= pid.gap <= 1e-7
    assert pid.marginal_error < 1e-12
    np.testing.assert_allclose(atoms(pid).sum(), i12, atol=1e-12)
    np.testing.assert_allclose(pid.mutual_information, i12, atol=1e-12)
    np.testing.assert_allclose(pid.redundancy, i1 - pid.unique_1, atol=1e-12)
    np.testing.assert_allclose(pid.redundancy, i2 - pid.unique_2, atol=1e-12)
    # BROJA atoms are non-negative (up to the certified gap)
    assert (atoms(pid) >= -1e-7).all() and pid.nonnegative


@SETTINGS
@given(joint_tables(), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_independent_target_gives_zero_atoms(p: np.ndarray, ny: int, seed: int) -> None:
    py = np.random.default_rng(seed).dirichlet(np.ones(ny))
    joint = p.sum(axis=2)[:, :, None] * py[None, None, :]
    np.testing.assert_allclose(atoms(decompose(joint)), 0.0, atol=1e-7)


@SETTINGS
@given(joint_tables())
def test_ipfp_gap_is_never_negative_and_brackets_exact(p: np.ndarray) -> None:
    import warnings

    from mmpid.errors import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ip = decompose(p, method="ipfp", max_iter=50)
    ex = decompose(p)
    assert ip.gap >= 0.0 and ex.gap >= 0.0
    # I_q(ipfp) >= min I_q, so ipfp's synergy is at most exact's (within exact's gap),
    # and ipfp's certificate reaches down to the exact value.
    assert ip.synergy <= ex.synergy + ex.gap + 1e-9
    assert ip.synergy + ip.gap >= ex.synergy - 1e-9
