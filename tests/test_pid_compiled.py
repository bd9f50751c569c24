"""The compiled (numba) primal-dual pass against the vectorised one, and its plumbing:
deferred tables, the fallback, the MMPID_JIT switch and the LAPACK bindings."""

from __future__ import annotations

import numpy as np
import pytest
from random_tables import tables

from mmpid.pid import _compiled, api, decompose_many
from mmpid.pid._lapack import potrf_lower, potrs_lower, syrk_lower

ATOMS = ("redundancy", "unique_1", "unique_2", "synergy")


def odd_tables() -> np.ndarray:
    """Gates, an absent symbol on every axis, a single-symbol target, y independent."""
    out = np.zeros((5, 3, 3, 3))
    for a in (0, 1):
        for b in (0, 1):
            out[0, a, b, a ^ b] = 1  # XOR
            out[1, a, b, a & b] = 1  # AND
            out[2, a, b, a] = 1  # y = x1
            out[3, a, b, 0] = 1  # constant target
    out[4] = np.outer(np.outer([1, 2, 0], [3, 1, 1]).ravel(), [1, 0, 2]).reshape(3, 3, 3)
    return out


def vectorised_one_by_one(P: np.ndarray, monkeypatch: pytest.MonkeyPatch, **kw: object) -> list:
    with monkeypatch.context() as mp:
        mp.setenv(api.JIT_ENV, "0")
        return [decompose_many(p[None], **kw) for p in P]


@pytest.mark.parametrize(("shape", "zero_frac", "seed"), [
    ((6, 5, 4), 0.0, 0), ((6, 5, 4), 0.6, 1), ((3, 7, 2), 0.3, 2), ((9, 9, 6), 0.5, 3)])
def test_compiled_pass_takes_the_vectorised_steps(monkeypatch: pytest.MonkeyPatch,
                                                  shape: tuple[int, int, int], zero_frac: float,
                                                  seed: int) -> None:
    P = tables(12, shape, seed, zero_frac=zero_frac)
    fast = decompose_many(P)
    slow = vectorised_one_by_one(P, monkeypatch)
    np.testing.assert_array_equal(fast.iterations, [s.iterations[0] for s in slow])
    assert fast.converged.all() and (fast.gap <= 1e-7).all()
    for atom in ATOMS:
        np.testing.assert_allclose(getattr(fast, atom), [getattr(s, atom)[0] for s in slow],
                                   atol=1e-10, rtol=0)


def test_compiled_pass_on_gates_and_absent_symbols(monkeypatch: pytest.MonkeyPatch) -> None:
    P = odd_tables()
    fast = decompose_many(P)
    slow = vectorised_one_by_one(P, monkeypatch)
    assert fast.converged.all()
    np.testing.assert_allclose(fast.synergy[:2], [1.0, 0.5], atol=1e-6)  # XOR, AND
    np.testing.assert_allclose(fast.unique_1[2], 1.0, atol=1e-6)  # y = x1
    np.testing.assert_allclose(fast.mutual_information[3:], 0.0, atol=1e-12)
    for atom in ATOMS:
        np.testing.assert_allclose(getattr(fast, atom), [getattr(s, atom)[0] for s in slow],
                                   atol=1e-9, rtol=0)


def test_user_iteration_limit_is_not_a_stall_when_compiled() -> None:
    i_q, gap, merr, steps, status = _compiled.solve_tables(tables(3, (4, 4, 3), 5), 1e-7, 2, 40)
    assert (steps == 2).all() and (status == _compiled.OUT_OF_ITER).all()
    assert (gap > 1e-7).all() and np.isfinite(gap).all()
    _, _, _, _, status = _compiled.solve_tables(tables(3, (4, 4, 3), 5), 1e-7, 200, 2)
    assert (status == _compiled.UNCERTIFIED).all()  # its own budget: the fallback's turn


def test_deferred_tables_get_the_vectorised_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    P = tables(8, (5, 5, 3), 4, zero_frac=0.2)
    reference = decompose_many(P)
    real = _compiled.solve_tables

    def defer_every_other(P: np.ndarray, *args: object) -> tuple:
        i_q, gap, merr, steps, status = real(P, *args)
        status[::2] = _compiled.DEFERRED
        gap[::2] = np.inf
        return i_q, gap, merr, steps, status

    monkeypatch.setattr(_compiled, "solve_tables", defer_every_other)
    again = decompose_many(P)
    assert again.converged.all()
    for atom in ATOMS:
        np.testing.assert_allclose(getattr(again, atom), getattr(reference, atom),
                                   atol=1e-9, rtol=0)


def test_jit_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    assert api.use_compiled("numpy")
    assert not api.use_compiled("torch")
    monkeypatch.setenv(api.JIT_ENV, "0")
    assert not api.use_compiled("numpy")
    monkeypatch.delenv(api.JIT_ENV)
    import numba

    monkeypatch.setattr(numba.config, "DISABLE_JIT", True)
    assert not api.use_compiled("numpy")


def test_lapack_bindings_read_and_write_the_lower_triangle() -> None:
    rng = np.random.default_rng(0)
    y = rng.normal(size=(7, 5))
    out = np.full((5, 5), np.nan)
    syrk_lower(-2.0, y, out)
    low = np.tril_indices(5)
    np.testing.assert_allclose(out[low], (-2.0 * y.T @ y)[low], rtol=1e-13)
    assert np.isnan(out[np.triu_indices(5, 1)]).all()  # the upper triangle is not written
    a = y.T @ y + np.eye(5)
    fac = np.where(np.tri(5, dtype=bool), a, np.nan)  # only the lower triangle is read
    assert potrf_lower(fac) == 0
    b = rng.normal(size=5)
    x = b.copy()
    potrs_lower(fac, x)
    np.testing.assert_allclose(a @ x, b, atol=1e-12)
    assert potrf_lower(-np.eye(3)) > 0  # not positive definite: LAPACK's info, no exception
