"""The PID core: canonical values, diagnostics, batching, backends, edge cases, errors."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest

from mmpid.errors import ConvergenceWarning, InputError
from mmpid.pid import PID, PIDBatch, decompose, decompose_many, measures

ATOMS = ("redundancy", "unique_1", "unique_2", "synergy")


def table(fn, *alphabets) -> np.ndarray:
    """Uniform inputs over the product of `alphabets`; fn maps them to (x1, x2, y) ints."""
    rows = [fn(*v) for v in itertools.product(*alphabets)]
    dims = [max(r[i] for r in rows) + 1 for i in range(3)]
    p = np.zeros(dims)
    for r in rows:
        p[r] += 1.0 / len(rows)
    return p


B2 = (0, 1)
# name -> (table, (R, U1, U2, S) in bits); known BROJA values
CANONICAL = {
    "xor": (table(lambda a, b: (a, b, a ^ b), B2, B2), (0, 0, 0, 1)),
    "and": (table(lambda a, b: (a, b, a & b), B2, B2), (0.311278124459, 0, 0, 0.5)),
    "or": (table(lambda a, b: (a, b, a | b), B2, B2), (0.311278124459, 0, 0, 0.5)),
    "copy": (table(lambda a, b: (a, b, 2 * a + b), B2, B2), (0, 1, 1, 0)),
    "y=x1": (table(lambda a, b: (a, b, a), B2, B2), (0, 1, 0, 0)),
    "x1=x2=y": (table(lambda a: (a, a, a), B2), (1, 0, 0, 0)),
    "rdn-xor": (table(lambda r, a, b: (2 * r + a, 2 * r + b, 2 * r + (a ^ b)), B2, B2, B2),
                (1, 0, 0, 1)),
    "rdn+unq": (table(lambda r, a, b: (2 * r + a, 2 * r + b, 4 * r + 2 * a + b), B2, B2, B2),
                (1, 1, 1, 0)),
    "rdn+unq+xor": (table(lambda r, a, b, c, d: (4 * r + 2 * a + c, 4 * r + 2 * b + d,
                                                 8 * r + 4 * a + 2 * b + (c ^ d)),
                          B2, B2, B2, B2, B2), (1, 1, 1, 1)),
}


def atoms(pid) -> np.ndarray:
    return np.array([getattr(pid, a) for a in ATOMS])


def dirichlet_tables(seed: int, shape: tuple[int, ...], n: int, sparsity: float = 0.0):
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(int(np.prod(shape))), size=n).reshape((n, *shape))
    if sparsity:
        P = P * (rng.random(P.shape) >= sparsity)
        P[0].flat[0] = 1.0  # never all zero
        P[P.reshape(n, -1).sum(1) == 0, 0, 0, 0] = 1.0
    return P / P.reshape(n, -1).sum(1)[:, None, None, None]


@pytest.mark.parametrize("name", CANONICAL)
def test_exact_matches_canonical_values(name: str) -> None:
    p, expected = CANONICAL[name]
    pid = decompose(p)
    np.testing.assert_allclose(atoms(pid), expected, atol=1e-6)
    assert pid.converged and 0 <= pid.gap <= 1e-7
    assert pid.marginal_error < 1e-12
    assert pid.method == "exact"


@pytest.mark.parametrize("name", ["xor", "and", "or", "copy", "y=x1", "x1=x2=y"])
def test_ipfp_reproduces_gate_values(name: str) -> None:
    p, expected = CANONICAL[name]
    pid = decompose(p, method="ipfp")
    np.testing.assert_allclose(atoms(pid), expected, atol=1e-4)
    assert pid.method == "ipfp" and pid.converged
    assert pid.gap >= 0


def test_atoms_sum_to_mutual_information_and_identities() -> None:
    P = dirichlet_tables(0, (4, 5, 3), 6, sparsity=0.4)
    batch = decompose_many(P)
    i1, i2, i12 = measures.source_informations(P)
    np.testing.assert_allclose(batch.mutual_information, i12, atol=1e-12)
    total = batch.redundancy + batch.unique_1 + batch.unique_2 + batch.synergy
    np.testing.assert_allclose(total, i12, atol=1e-12)
    np.testing.assert_allclose(batch.redundancy + batch.unique_1, i1, atol=1e-12)
    np.testing.assert_allclose(batch.redundancy + batch.unique_2, i2, atol=1e-12)
    assert batch.converged.all() and (batch.gap >= 0).all() and (batch.gap <= 1e-7).all()


def test_batch_equals_loop_of_single_solves() -> None:
    P = dirichlet_tables(1, (5, 4, 6), 8, sparsity=0.5)
    batch = decompose_many(P)
    for i in range(len(P)):
        single = decompose(P[i])
        np.testing.assert_allclose(atoms(batch[i]), atoms(single), atol=1e-12)
        assert batch[i].iterations == single.iterations


def test_ipfp_batch_equals_loop_of_single_solves() -> None:
    P = dirichlet_tables(2, (3, 3, 3), 4)
    batch = decompose_many(P, method="ipfp")
    for i in range(len(P)):
        np.testing.assert_allclose(atoms(batch[i]), atoms(decompose(P[i], method="ipfp")),
                                   atol=1e-9)


def test_ipfp_is_close_to_exact_and_exact_is_lower() -> None:
    # exact minimises I_q, so its synergy is never below ipfp's by more than exact's gap
    P = dirichlet_tables(3, (4, 4, 4), 5)
    ex = decompose_many(P)
    with warnings.catch_warnings():
        # the paper's solver is slow to reach its own 1e-8 stopping rule on random tables
        warnings.simplefilter("ignore", ConvergenceWarning)
        ip = decompose_many(P, method="ipfp", max_iter=200)
    assert (ex.synergy >= ip.synergy - ex.gap - 1e-12).all()
    np.testing.assert_allclose(ex.synergy, ip.synergy, atol=1e-3)
    # ipfp's own certificate brackets the exact answer
    assert (ip.synergy + ip.gap >= ex.synergy - 1e-9).all()


def test_torch_backend_matches_numpy() -> None:
    torch = pytest.importorskip("torch")
    P = dirichlet_tables(4, (5, 6, 4), 5, sparsity=0.5)
    a = decompose_many(P)
    b = decompose_many(torch.as_tensor(P), backend="torch", device="cpu")
    for f in (*ATOMS, "mutual_information", "gap"):
        np.testing.assert_allclose(getattr(b, f), getattr(a, f), atol=1e-9)
    np.testing.assert_array_equal(b.iterations, a.iterations)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        c = decompose_many(P[:2], method="ipfp", backend="torch", max_iter=20)
        d = decompose_many(P[:2], method="ipfp", max_iter=20)
    np.testing.assert_allclose(c.synergy, d.synergy, atol=1e-9)


def test_padding_with_absent_symbols_changes_nothing() -> None:
    p = dirichlet_tables(5, (3, 4, 3), 1, sparsity=0.3)[0]
    padded = np.zeros((6, 5, 7))
    padded[1:4, :4, 2:5] = p  # zero rows/columns on every axis
    a, b = decompose(p), decompose(padded)
    np.testing.assert_allclose(atoms(b), atoms(a), atol=1e-7)
    assert b.converged


def test_zero_slices_over_y_and_padded_stacks() -> None:
    p = dirichlet_tables(6, (4, 4, 3), 1)[0]
    p[0, 1, :] = 0.0
    p[2, :, :] = 0.0  # absent x1 symbol
    p /= p.sum()
    P = np.zeros((2, 5, 5, 4))
    P[0, :4, :4, :3] = p
    P[1, :2, :2, :2] = CANONICAL["xor"][0]
    batch = decompose_many(P)
    np.testing.assert_allclose(atoms(batch[0]), atoms(decompose(p)), atol=1e-7)
    np.testing.assert_allclose(atoms(batch[1]), (0, 0, 0, 1), atol=1e-6)


def test_single_symbol_axes() -> None:
    p = dirichlet_tables(7, (1, 4, 3), 1)[0]
    pid = decompose(p)
    i2 = measures.mutual_information(p, x_axes=(1,), y_axes=(2,))
    np.testing.assert_allclose(atoms(pid), (0, 0, i2, 0), atol=1e-7)
    one_y = decompose(np.ones((3, 2, 1)))
    np.testing.assert_allclose(atoms(one_y), 0, atol=1e-12)
    assert one_y.converged


def test_independent_target_gives_zero_atoms() -> None:
    rng = np.random.default_rng(8)
    pxx = rng.dirichlet(np.ones(12)).reshape(3, 4)
    py = rng.dirichlet(np.ones(5))
    pid = decompose(pxx[:, :, None] * py[None, None, :])
    np.testing.assert_allclose(atoms(pid), 0, atol=1e-7)


def test_deterministic_target_and_counts_are_normalised() -> None:
    rng = np.random.default_rng(9)
    counts = np.zeros((4, 4, 3))
    for a, b in itertools.product(range(4), range(4)):
        counts[a, b, (a + 2 * b) % 3] = rng.integers(1, 20)
    a = decompose(counts)
    b = decompose(counts / counts.sum())
    np.testing.assert_allclose(atoms(a), atoms(b), atol=1e-12)
    assert a.converged
    # a deterministic y has H(Y|X1,X2) = 0, so I(X1,X2;Y) = H(Y)
    np.testing.assert_allclose(a.mutual_information, measures.entropy(counts.sum((0, 1))),
                               atol=1e-12)


def test_negative_atoms_are_reported_not_clamped() -> None:
    """One IPFP alternation leaves this table's q short of the optimum, with I_q above
    I(X1,X2;Y): the synergy comes out negative and is reported as it is, not clamped to 0."""
    p = np.random.default_rng(0).dirichlet(np.full(27, 0.3), size=40)[39].reshape(3, 3, 3)
    with pytest.warns(ConvergenceWarning):
        rough = decompose(p, method="ipfp", max_iter=1)
    assert rough.synergy < -0.01 and not rough.nonnegative and not rough.converged
    # the atoms still add up, and the certified gap covers the distance to the optimum
    np.testing.assert_allclose(sum(atoms(rough)), rough.mutual_information, atol=1e-12)
    exact = decompose(p)
    assert exact.nonnegative and exact.synergy > 0
    assert exact.synergy - rough.synergy <= rough.gap + 1e-9


def test_non_convergence_warns_and_flags() -> None:
    p = dirichlet_tables(10, (6, 6, 4), 1)[0]
    with pytest.warns(ConvergenceWarning, match="Increase max_iter"):
        pid = decompose(p, max_iter=2)
    assert not pid.converged and pid.gap > 1e-7 and pid.iterations == 2
    # the certificate still brackets the exact answer
    exact = decompose(p)
    assert pid.synergy <= exact.synergy + 1e-9
    assert pid.synergy + pid.gap >= exact.synergy - 1e-9


def test_result_objects() -> None:
    P = dirichlet_tables(11, (3, 3, 2), 3)
    batch = decompose_many(P)
    assert isinstance(batch, PIDBatch) and len(batch) == 3
    assert batch.redundancy.shape == (3,) and batch.converged.dtype == bool
    assert batch.iterations.dtype == np.int64
    pid = batch[-1]
    assert isinstance(pid, PID) and isinstance(pid.iterations, int)
    d = pid.to_dict()
    assert set(d) == {*ATOMS, "mutual_information", "method", "iterations", "fallback_rounds",
                      "converged", "gap", "marginal_error", "nonnegative"}
    assert isinstance(pid.fallback_rounds, int) and (batch.fallback_rounds == 0).all()
    assert d["synergy"] == pid.synergy
    frame = batch.to_frame()
    assert list(frame.index) == [0, 1, 2]
    np.testing.assert_allclose(frame["synergy"].to_numpy(), batch.synergy)
    assert (frame["method"] == "exact").all()
    assert batch.to_dict()["unique_1"] == batch.unique_1.tolist()
    with pytest.raises(IndexError, match="PIDBatch index"):
        batch[3]
    with pytest.raises(AttributeError):
        pid.synergy = 0.0  # type: ignore[misc]


def test_measures_in_bits() -> None:
    p = np.array([[0.5, 0.0], [0.0, 0.5]])
    assert measures.entropy(p) == pytest.approx(1.0)
    assert measures.mutual_information(p, x_axes=(0,), y_axes=(1,)) == pytest.approx(1.0)
    xor = CANONICAL["xor"][0]
    np.testing.assert_allclose(measures.source_informations(xor), (0, 0, 1), atol=1e-12)
    assert measures.mutual_information(xor, x_axes=(0,), y_axes=(2,), z_axes=(1,)) == \
        pytest.approx(1.0)
    batch = np.stack([xor, CANONICAL["and"][0]])
    np.testing.assert_allclose(measures.source_informations(batch)[2], [1.0, 0.811278124459],
                               atol=1e-9)
    with pytest.raises(InputError, match="disjoint"):
        measures.mutual_information(xor, x_axes=(0,), y_axes=(0,))


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.full((2, 2, 2), -0.1), r"non-negative; got -0.1 at index \(0, 0, 0\)"),
        (np.array([[[np.nan, 1.0]]]), r"finite; got nan .* index \(0, 0, 0\)"),
        (np.array([[[1.0, np.inf]]]), r"finite; got inf .* index \(0, 0, 1\)"),
        (np.ones((2, 2)), r"shape \(n1, n2, ny\) \(3 axes\); got shape \(2, 2\)"),
        (np.zeros((2, 2, 2)), "sums to 0"),
        (np.ones((2, 0, 2)), "no empty axis"),
    ],
)
def test_decompose_rejects_bad_tables(bad: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        decompose(bad)


def test_decompose_many_rejects_bad_input() -> None:
    P = np.ones((3, 2, 2, 2))
    P[1] = 0.0
    with pytest.raises(InputError, match="table 1 of 'P' sums to 0"):
        decompose_many(P)
    with pytest.raises(InputError, match=r"shape \(B, n1, n2, ny\)"):
        decompose_many(np.ones((2, 2, 2)))
    with pytest.raises(InputError, match=r"'method' must be one of \['exact', 'ipfp'\]; got"):
        decompose_many(np.ones((1, 2, 2, 2)), method="cvx")
    with pytest.raises(InputError, match="'backend' parameter must be one of"):
        decompose_many(np.ones((1, 2, 2, 2)), backend="jax")
    with pytest.raises(InputError, match="'device' parameter needs backend='torch'"):
        decompose_many(np.ones((1, 2, 2, 2)), device="cuda")
    with pytest.raises(InputError, match="'tol' must be a positive finite number"):
        decompose_many(np.ones((1, 2, 2, 2)), tol=0.0)
    with pytest.raises(InputError, match="'max_iter' must be an int >= 1"):
        decompose_many(np.ones((1, 2, 2, 2)), max_iter=0)


def test_no_warnings_on_edge_cases() -> None:
    tables = [np.ones((1, 1, 1)), np.eye(3)[:, :, None] * np.ones(2), CANONICAL["copy"][0]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for p in tables:
            assert decompose(p).converged
            assert decompose(p, method="ipfp").gap >= 0


def test_complex_tables_are_refused() -> None:
    """A complex array is an error, not a ComplexWarning and a result of its real part."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(InputError, match="got a complex array.*p.real"):
            decompose(np.ones((2, 2, 2)) * (1 + 0.5j))
        with pytest.raises(InputError, match="got a complex array"):
            decompose_many(np.ones((1, 2, 2, 2), dtype=np.complex64))


def test_a_negative_duality_gap_is_a_bug_not_a_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The gap is clamped at 0 only within rounding; a dual bound above the primal value
    (impossible by weak duality) raises instead of being reported as a certified 0."""
    from mmpid.pid import _problem

    _problem.check_gap(np.array([-1e-13, 0.0, 1e-3]), np.full(3, 1e-10))  # rounding: fine
    with pytest.raises(RuntimeError, match="negative duality gap"):
        _problem.check_gap(np.array([0.0, -1e-4]), np.full(2, 1e-10))
    real = _problem.feasible_dual_bound
    monkeypatch.setattr(_problem, "feasible_dual_bound", lambda *a: real(*a) + 0.01)
    monkeypatch.setenv("MMPID_JIT", "0")  # the vectorised pass, whose certify is patched here
    with pytest.raises(RuntimeError, match="negative duality gap"):
        decompose(CANONICAL["and"][0])
