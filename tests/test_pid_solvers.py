"""The exact solver's parts: the primal-dual pass, its barrier fallback, and the two
ways the Newton system's Schur complement is assembled."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from random_tables import tables

from mmpid.pid import _newton as newton
from mmpid.pid import _primal_dual as primal_dual
from mmpid.errors import ConvergenceWarning
from mmpid.pid import decompose_many
from mmpid.pid._backend import get_ops
from mmpid.pid._exact import solve_exact
from mmpid.pid._primal_dual import solve_primal_dual
from mmpid.pid._problem import make_problem, pair_lse

OPS = get_ops("numpy")


@pytest.mark.parametrize("zero_frac", [0.0, 0.6])
def test_primal_dual_and_barrier_agree(zero_frac: float) -> None:
    prob = make_problem(OPS, tables(40, (5, 4, 3), 7, zero_frac=zero_frac))
    pd = solve_primal_dual(OPS, prob, tol=1e-7, max_iter=200)
    barrier = solve_exact(OPS, prob, tol=1e-7, max_iter=200)
    both = pd.converged & barrier.converged
    assert both.mean() > 0.9
    # each certified value is within its own gap of the optimum, so within 2e-7 of the other
    np.testing.assert_allclose(pd.i_q[both], barrier.i_q[both], atol=2e-7, rtol=0)
    # the primal-dual pass needs several times fewer Newton steps
    assert np.median(pd.iterations) * 2 < np.median(barrier.iterations)


def test_uncertified_tables_fall_back_to_the_barrier(monkeypatch: pytest.MonkeyPatch) -> None:
    P = tables(6, (4, 4, 3), 3)
    reference = decompose_many(P)
    monkeypatch.setattr(primal_dual, "MAX_STEPS", 2)  # too few steps to certify anything
    prob = make_problem(OPS, P)
    first = solve_primal_dual(OPS, prob, tol=1e-7, max_iter=200)
    assert not first.converged.any() and first.stuck.all()
    again = decompose_many(P)
    assert again.converged.all() and (again.gap <= 1e-7).all()
    np.testing.assert_allclose(again.synergy, reference.synergy, atol=2e-7, rtol=0)
    assert (again.iterations > reference.iterations).all()  # the barrier's steps are counted


def test_ipfp_fallback_rounds_are_counted_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """When both Newton passes give up, the IPFP fallback certifies the table; its alternations
    go to fallback_rounds, and iterations keeps counting Newton steps only."""
    import dataclasses

    from mmpid.pid import api

    P = tables(2, (4, 4, 3), 2)
    reference = decompose_many(P)
    monkeypatch.setattr(primal_dual, "MAX_STEPS", 2)

    def barrier_gives_up(ops, prob, **kw):
        out = solve_exact(ops, prob, tol=kw["tol"], max_iter=3)
        B = out.gap.shape[0]
        return dataclasses.replace(out, gap=np.full(B, np.inf), converged=np.zeros(B, bool),
                                   stuck=np.ones(B, bool))

    monkeypatch.setattr(api, "solve_exact", barrier_gives_up)
    monkeypatch.setattr(api, "_FALLBACK_ITER", 300)  # enough to show the counting, and quick
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # IPFP may stop short of 1e-7 on some
        again = decompose_many(P)
    assert (again.gap < 1e-3).all()
    assert (np.abs(again.synergy - reference.synergy) <= again.gap + 2e-7).all()
    assert (again.fallback_rounds > 0).all() and (reference.fallback_rounds == 0).all()
    assert (again.iterations == 2 + 3 + 3).all()  # primal-dual, barrier, barrier again


def test_user_iteration_limit_is_not_a_stall() -> None:
    prob = make_problem(OPS, tables(3, (4, 4, 3), 5))
    out = solve_primal_dual(OPS, prob, tol=1e-7, max_iter=2)
    assert not out.converged.any() and not out.stuck.any()
    assert (out.iterations == 2).all()


def test_structured_and_gram_schur_give_the_same_direction(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    prob = make_problem(OPS, tables(4, (6, 5, 4), 1, zero_frac=0.3))
    lam = rng.normal(size=prob.p1.shape)
    mu = rng.normal(size=prob.p2.shape)
    _, pi = pair_lse(OPS, prob, lam, mu)
    m = np.where(prob.active, rng.uniform(0.01, 1.0, size=prob.active.shape), 0.0)
    v = rng.uniform(0.05, 2.0, size=m.shape)
    w = np.where(prob.active, m - m / v, 0.0)
    pin = newton.pin_mask(OPS, prob)
    gl = np.where(prob.s1, rng.normal(size=prob.p1.shape), 0.0)
    gm = np.where(prob.s2, rng.normal(size=prob.p2.shape), 0.0)
    gram = newton.factor(OPS, prob, m, w, pi, pin).solve(gl, gm)
    monkeypatch.setattr(OPS.__class__, "inv_cholesky", lambda self, a: None)
    structured = newton.factor(OPS, prob, m, w, pi, pin).solve(gl, gm)
    for a, b in zip(gram, structured):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    # and the direction solves the unreduced system H d = -g on the free entries
    hl, hm = newton.factor(OPS, prob, m, w, pi, pin).apply(*gram)
    free_mu = ~pin
    np.testing.assert_allclose(hl[prob.s1], -gl[prob.s1], atol=1e-9)
    np.testing.assert_allclose(hm[free_mu], -gm[free_mu], atol=1e-9)


@pytest.mark.parametrize("definite", [True, False])
def test_factor_pd_reads_only_the_lower_triangle(definite: bool) -> None:
    rng = np.random.default_rng(2)
    a = rng.normal(size=(3, 6, 6))
    a = a @ np.swapaxes(a, -1, -2) + (6.0 if definite else -2.0) * np.eye(6)  # symmetric
    b = rng.normal(size=(3, 6, 2))
    low = np.tril(a) + np.triu(rng.normal(size=a.shape), 1)  # garbage above the diagonal
    kind, _ = fac = OPS.factor_pd(low)
    assert kind == ("chol" if definite else "lu")
    np.testing.assert_allclose(OPS.solve_factored(fac, b), np.linalg.solve(a, b), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("zero_frac", [0.0, 0.5])
def test_a_larger_second_source_is_solved_on_the_smaller_side(zero_frac: float) -> None:
    # decompose_many hands the solver the tables with the sources exchanged when the second
    # is the larger (I_q*(X1,X2;Y) is symmetric): the same I_q* as the pass run on the
    # tables as given, and the uniques still in the caller's order.
    P = tables(6, (3, 8, 4), 11, zero_frac=zero_frac)
    direct = solve_primal_dual(OPS, make_problem(OPS, P), tol=1e-9, max_iter=200)
    assert direct.converged.all()
    res = decompose_many(P, tol=1e-9)
    i_q = res.redundancy + res.unique_1 + res.unique_2  # = I_q*(X1,X2;Y)
    np.testing.assert_allclose(i_q, direct.i_q, atol=3e-9, rtol=0)
    swapped = decompose_many(np.ascontiguousarray(P.swapaxes(1, 2)), tol=1e-9)
    np.testing.assert_allclose(swapped.unique_1, res.unique_2, atol=3e-9, rtol=0)
    np.testing.assert_allclose(swapped.unique_2, res.unique_1, atol=3e-9, rtol=0)
