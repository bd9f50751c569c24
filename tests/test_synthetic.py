"""Synthetic data with known PID: latent joints, truths, embedding, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmpid import synthetic
from mmpid.errors import InputError

ATOMS4 = ("redundancy", "unique_image", "unique_text", "synergy")


def _mi(p: np.ndarray, axes_x: tuple[int, ...]) -> float:
    """I(X;Y) in bits where X = the given axes of p and Y = the last axis."""
    keep = tuple(sorted(set(axes_x) | {p.ndim - 1}))
    drop = tuple(a for a in range(p.ndim) if a not in keep)
    pxy = p.sum(axis=drop) if drop else p
    px = pxy.sum(axis=-1, keepdims=True)
    py = pxy.sum(axis=tuple(range(pxy.ndim - 1)), keepdims=True)
    m = pxy > 0
    return float(np.sum(pxy[m] * np.log2(pxy[m] / (px * py)[m])))


@pytest.mark.parametrize("structure", synthetic.STRUCTURES)
def test_truth_is_consistent_with_the_latent_joint(structure: str) -> None:
    p = synthetic.latent_joint(structure)
    assert p.ndim == 3 and p.min() >= 0
    assert p.sum() == pytest.approx(1.0)
    t = synthetic.TRUE_ATOMS[structure]
    # the PID identities: R + U1 = I(a;t), R + U2 = I(b;t), all four = I(a,b;t)
    assert t["redundancy"] + t["unique_image"] == pytest.approx(_mi(p, (0,)), abs=1e-12)
    assert t["redundancy"] + t["unique_text"] == pytest.approx(_mi(p, (1,)), abs=1e-12)
    assert sum(t[a] for a in ATOMS4) == pytest.approx(_mi(p, (0, 1)), abs=1e-12)


@pytest.mark.parametrize("structure", synthetic.STRUCTURES)
def test_truth_matches_the_exact_solver(structure: str) -> None:
    from mmpid.pid import decompose

    res = decompose(synthetic.latent_joint(structure))
    t = synthetic.TRUE_ATOMS[structure]
    got = {
        "redundancy": res.redundancy,
        "unique_image": res.unique_1,
        "unique_text": res.unique_2,
        "synergy": res.synergy,
    }
    for atom in ATOMS4:
        assert got[atom] == pytest.approx(t[atom], abs=1e-6), atom


def test_and_values() -> None:
    t = synthetic.TRUE_ATOMS["and"]
    assert t["redundancy"] == pytest.approx(0.311278, abs=1e-6)
    assert t["synergy"] == 0.5


def test_samples_follow_the_structure() -> None:
    d = synthetic.make("xor", 400, seed=3)
    np.testing.assert_array_equal(d.y, d.a ^ d.b)
    np.testing.assert_array_equal(d.t, d.y)
    d = synthetic.make("redundant_xor", 400, seed=3)
    np.testing.assert_array_equal(d.a // 2, d.b // 2)
    np.testing.assert_array_equal(d.t, 2 * (d.a // 2) + ((d.a % 2) ^ (d.b % 2)))
    d = synthetic.make("copy", 400, seed=3)
    np.testing.assert_array_equal(d.t, 2 * d.a + d.b)
    assert d.truth["contribution_image"] == 0.5
    assert math.isnan(synthetic.make("xor", 10).truth["contribution_image"])
    assert synthetic.make("unique_image", 10).truth["contribution_image"] == 1.0
    assert d.truth["mutual_information"] == 2.0


def test_embedding_is_well_separated_and_shaped() -> None:
    d = synthetic.make("redundant", 600, dim_image=64, dim_text=48, dim_target=16, seed=0)
    assert d.x_image.shape == (600, 64) and d.x_text.shape == (600, 48) and d.y.shape == (600, 16)
    assert d.y.dtype == np.float64
    for x, s in ((d.x_image, d.a), (d.x_text, d.b), (d.y, d.t)):
        c0, c1 = x[s == 0].mean(axis=0), x[s == 1].mean(axis=0)
        spread = max(np.linalg.norm(x[s == 0] - c0, axis=1).max(), np.linalg.norm(x[s == 1] - c1, axis=1).max())
        assert np.linalg.norm(c0 - c1) > 2 * spread  # no point is nearer the other centre


def test_independent_symbols_are_uniform_and_independent() -> None:
    d = synthetic.make("independent", 20_000, seed=0)
    counts = np.zeros((4, 4, 4))
    np.add.at(counts, (d.a, d.b, d.t), 1)
    expected = 20_000 / 64
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 120  # 63 degrees of freedom; the 99.9% quantile is about 104 + margin


def test_seeded() -> None:
    a = synthetic.make("and", 50, seed=4, dim_target=8)
    b = synthetic.make("and", 50, seed=4, dim_target=8)
    c = synthetic.make("and", 50, seed=5, dim_target=8)
    np.testing.assert_array_equal(a.x_image, b.x_image)
    np.testing.assert_array_equal(a.y, b.y)
    assert not np.array_equal(a.x_image, c.x_image)
    assert a.to_dict() == {
        "structure": "and",
        "n": 50,
        "dim_image": 64,
        "dim_text": 64,
        "dim_target": 8,
        "truth": a.truth,
    }


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"structure": "nand", "n": 10}, "'structure' must be one of"),
        ({"structure": "xor", "n": 0}, "'n' must be an int >= 1"),
        ({"structure": "xor", "n": 10, "dim_image": 0}, "'dim_image' must be an int >= 1"),
        ({"structure": "xor", "n": 10, "dim_target": 0}, "'dim_target' must be None"),
        ({"structure": "xor", "n": 10, "separation": -1.0}, "'separation' must be > 0"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(InputError, match=match):
        synthetic.make(**kwargs)


def _cvxpy_union_information(p: np.ndarray) -> float:
    """min over q in Δ_p of I_q(a,b;t), bits, by cvxpy + Clarabel: an independent solver."""
    import cvxpy as cp

    n1, n2, nt = p.shape
    q = cp.Variable((n1 * n2, nt), nonneg=True)
    pair = cp.sum(q, axis=1)
    obj = cp.sum(cp.rel_entr(q, cp.vstack([pair] * nt).T))  # Σ q log q / q(a,b) = -H_q(t|a,b)
    rows = np.kron(np.eye(n1), np.ones((1, n2)))  # sums over b
    cols = np.kron(np.ones((1, n1)), np.eye(n2))  # sums over a
    cons = [rows @ q == p.sum(axis=1), cols @ q == p.sum(axis=0)]
    cp.Problem(cp.Minimize(obj), cons).solve(solver=cp.CLARABEL)
    pt = p.sum(axis=(0, 1))
    h_t = -float(np.sum(pt[pt > 0] * np.log2(pt[pt > 0])))
    return h_t + float(obj.value) / np.log(2)


@pytest.mark.slow  # cvxpy takes up to 25 s on a 16x16x16 table
@pytest.mark.parametrize("structure", synthetic.MANY_CLASSES)
def test_many_class_truths_match_an_independent_solver(structure: str) -> None:
    p = synthetic.latent_joint(structure)
    t = synthetic.TRUE_ATOMS[structure]
    # U_image = I_q*(a,b;t) - I(b;t): R, U_text and S follow from the identities checked above
    i_q = _cvxpy_union_information(p)
    assert i_q - _mi(p, (1,)) == pytest.approx(t["unique_image"], abs=1e-5)
    assert _mi(p, (0, 1)) - i_q == pytest.approx(t["synergy"], abs=1e-5)
