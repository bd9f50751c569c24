"""What both BROJA solvers share: the problem's marginals and masks, the dual
function, and the certificate (an exactly feasible primal point and a dual bound).

Everything here works on stacks of tables, shape (B, n1, n2, ny), natural logs.
The BROJA programme is

    min_q  f(q) = Σ q(x1,x2,y) log q(x1,x2,y) / q(x1,x2)     (= -H_q(Y|X1,X2))
    s.t.   q(x1,y) = p(x1,y),  q(x2,y) = p(x2,y),  q >= 0,

and its Lagrange dual is

    max_{λ,μ}  Σ λ(x1,y) p(x1,y) + Σ μ(x2,y) p(x2,y)
    s.t.       s(x1,x2) = log Σ_y exp(λ(x1,y) + μ(x2,y)) <= 0   for every pair,

where the sums over y run over the support K(x1,x2,y) = [p(x1,y) > 0 and p(x2,y) > 0],
the only cells a feasible q can use. Any dual-feasible (λ, μ) bounds min f from below.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmpid.pid._backend import NEG, Ops

LN2 = math.log(2.0)
# Largest marginal violation at which Sinkhorn scaling stops early (the rounding that
# follows makes the marginals exact anyway).
SINKHORN_DONE = 1e-13
# Scaling rounds of the certificate's projection (at most).
SINKHORN_ITER = 30
#: Rounding allowance (relative to |f| + |dual bound| + 1, nats) below which a negative duality
#: gap means "equal"; a gap further below 0 contradicts weak duality: a bug, not a result.
GAP_ROUNDING = 1e-10


@dataclass
class Problem:
    """Marginals and support masks of a stack of normalised tables."""

    p1: Any  # (B, n1, ny)  p(x1, y)
    p2: Any  # (B, n2, ny)  p(x2, y)
    py: Any  # (B, ny)
    s1: Any  # (B, n1, ny)  bool, p(x1, y) > 0
    s2: Any  # (B, n2, ny)  bool, p(x2, y) > 0
    support: Any  # (B, n1, n2, ny) bool, the cells a feasible q may use
    active: Any  # (B, n1, n2) bool, pairs with at least one support cell
    n_active: Any  # (B,) float, number of active pairs

    def take(self, ops: Ops, idx: Any) -> Problem:
        """The sub-problem of the tables at integer positions `idx`."""
        return Problem(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


def make_problem(ops: Ops, P: Any) -> Problem:
    """Marginals and masks of normalised tables P, shape (B, n1, n2, ny)."""
    p1 = ops.sum(P, axis=2)
    p2 = ops.sum(P, axis=1)
    py = ops.sum(p1, axis=1)
    s1 = p1 > 0
    s2 = p2 > 0
    support = s1[:, :, None, :] & s2[:, None, :, :]
    active = ops.any(support, axis=-1)
    n_active = ops.sum(ops.astype_float(active), axis=(1, 2))
    return Problem(p1, p2, py, s1, s2, support, active, n_active)


def pair_lse(ops: Ops, prob: Problem, lam: Any, mu: Any) -> tuple[Any, Any]:
    """s(x1,x2) = logsumexp_y(λ+μ) over the support and the softmax π(y | x1,x2).

    Returns s (B, n1, n2), equal to -1 on inactive pairs, and π (B, n1, n2, ny), zero
    off the support.
    """
    z = ops.where(prob.support, lam[:, :, None, :] + mu[:, None, :, :], NEG)
    zmax = ops.max(z, axis=-1, keepdims=True)
    e = ops.where(prob.support, ops.exp(z - zmax), 0.0)
    tot = ops.sum(e, axis=-1, keepdims=True)
    tot = ops.where(tot > 0, tot, 1.0)
    s = (zmax + ops.log(tot))[..., 0]
    s = ops.where(prob.active, s, -1.0)
    pi = e / tot
    return s, pi


def dual_value(ops: Ops, prob: Problem, lam: Any, mu: Any) -> Any:
    """Σ λ p(x1,y) + Σ μ p(x2,y) over the supports, shape (B,)."""
    a = ops.sum(ops.where(prob.s1, lam * prob.p1, 0.0), axis=(1, 2))
    b = ops.sum(ops.where(prob.s2, mu * prob.p2, 0.0), axis=(1, 2))
    return a + b


def feasible_dual_bound(ops: Ops, prob: Problem, lam: Any, mu: Any) -> Any:
    """A certified lower bound on min f from any (λ, μ), shape (B,), nats.

    Shifting λ(x1, ·) by the largest s(x1, ·) and then μ(x2, ·) by the largest
    s(·, x2) makes every constraint hold (the largest becomes 0), so the dual value
    of the shifted point is a valid bound whatever (λ, μ) was.
    """
    s, _ = pair_lse(ops, prob, lam, mu)
    s = ops.where(prob.active, s, NEG)
    c1 = ops.max(s, axis=2)  # (B, n1)
    c1 = ops.where(c1 > NEG / 2, c1, 0.0)
    lam = lam - c1[:, :, None]
    s, _ = pair_lse(ops, prob, lam, mu)
    s = ops.where(prob.active, s, NEG)
    c2 = ops.max(s, axis=1)  # (B, n2)
    c2 = ops.where(c2 > NEG / 2, c2, 0.0)
    mu = mu - c2[:, :, None]
    return dual_value(ops, prob, lam, mu)


def sinkhorn_project(ops: Ops, prob: Problem, q: Any, *, n_iter: int = SINKHORN_ITER) -> Any:
    """Scale each y-slice of q towards its marginals p(x1,y), p(x2,y) (multiplicatively).

    Near-feasible q move by a relative amount of the order of their violation, which
    changes f only at second order; `round_to_feasible` then makes them exact.
    """
    for k in range(n_iter):
        row = ops.sum(q, axis=2)
        if k % 5 == 0 and float(ops.max(ops.abs(row - prob.p1))) <= SINKHORN_DONE:
            break  # every table's marginals already hold to rounding
        q = q * ops.where(row > 0, prob.p1 / ops.where(row > 0, row, 1.0), 0.0)[:, :, None, :]
        col = ops.sum(q, axis=1)
        q = q * ops.where(col > 0, prob.p2 / ops.where(col > 0, col, 1.0), 0.0)[:, None, :, :]
    return q


def round_to_feasible(ops: Ops, prob: Problem, q: Any) -> Any:
    """Move q (B, n1, n2, ny), zero off the support, onto the constraint set exactly.

    Per y this is the rounding of Altschuler, Weed and Rigollet (2017) for transport
    plans: scale rows down to at most p(x1,y), columns down to at most p(x2,y), then
    add the outer product of the row and column deficits. It only touches support
    cells and moves q by at most twice the marginal violation in L1.
    """
    q = ops.where(prob.support, ops.maximum(q, 0.0), 0.0)
    row = ops.sum(q, axis=2)
    scale = ops.where(row > prob.p1, prob.p1 / ops.where(row > 0, row, 1.0), 1.0)
    q = q * scale[:, :, None, :]
    col = ops.sum(q, axis=1)
    scale = ops.where(col > prob.p2, prob.p2 / ops.where(col > 0, col, 1.0), 1.0)
    q = q * scale[:, None, :, :]
    er = ops.maximum(prob.p1 - ops.sum(q, axis=2), 0.0)
    ec = ops.maximum(prob.p2 - ops.sum(q, axis=1), 0.0)
    tot = ops.sum(er, axis=1)  # (B, ny)
    tot = ops.where(tot > 0, tot, 1.0)
    return q + er[:, :, None, :] * ec[:, None, :, :] / tot[:, None, None, :]


def primal_value(ops: Ops, q: Any) -> Any:
    """f(q) = Σ q log q - Σ q(x1,x2) log q(x1,x2) = -H_q(Y|X1,X2), shape (B,), nats."""
    q12 = ops.sum(q, axis=-1)
    return ops.sum(ops.xlogx(q), axis=(1, 2, 3)) - ops.sum(ops.xlogx(q12), axis=(1, 2))


def marginal_error(ops: Ops, prob: Problem, q: Any) -> Any:
    """Largest absolute violation of the two marginal constraints, shape (B,)."""
    e1 = ops.max(ops.abs(ops.sum(q, axis=2) - prob.p1), axis=(1, 2))
    e2 = ops.max(ops.abs(ops.sum(q, axis=1) - prob.p2), axis=(1, 2))
    return ops.maximum(e1, e2)


def check_gap(raw: Any, allowed: Any) -> None:
    """Raise on a duality gap below 0 by more than rounding: weak duality says it cannot be."""
    raw, allowed = np.atleast_1d(raw), np.atleast_1d(allowed)
    bad = np.flatnonzero(raw < -allowed)
    if bad.size:
        raise RuntimeError(
            f"Internal error in the PID solver: a negative duality gap ({raw[bad[0]]:.3e} nats on "
            f"table {int(bad[0])}, allowed rounding {allowed[bad[0]]:.1e}); the dual bound exceeds the "
            "primal value, which weak duality forbids. Please report this with the table."
        )


@dataclass
class Certificate:
    """I_q of a feasible q and the certified gap to the true minimum, both in bits."""

    i_q: Any  # (B,) I_q(X1,X2;Y) of the rounded, feasible q, bits
    gap: Any  # (B,) f(q) - dual bound, bits; an upper bound on i_q - min I_q
    marginal_error: Any  # (B,) of the rounded q


def certify(ops: Ops, prob: Problem, q: Any, lam: Any, mu: Any) -> Certificate:
    """Project q onto the constraints and bound its distance from the optimum."""
    q = ops.where(prob.support, ops.maximum(q, 0.0), 0.0)
    q = round_to_feasible(ops, prob, sinkhorn_project(ops, prob, q))
    f = primal_value(ops, q)
    lower = feasible_dual_bound(ops, prob, lam, mu)
    hy = -ops.sum(ops.xlogx(prob.py), axis=1)
    raw = f - lower
    allowed = GAP_ROUNDING * (1.0 + ops.abs(f) + ops.abs(lower))
    if ops.to_numpy(raw < -allowed).any():
        check_gap(ops.to_numpy(raw), ops.to_numpy(allowed))
    return Certificate(
        i_q=(hy + f) / LN2,
        # f - lower >= 0 in exact arithmetic; within the rounding allowance below 0 means "equal"
        gap=ops.maximum(raw, 0.0) / LN2,
        marginal_error=marginal_error(ops, prob, q),
    )


@dataclass
class Record:
    """The best certificate so far of every table of a stack (B,), filled by the solvers."""

    i_q: Any
    gap: Any
    marginal_error: Any

    @classmethod
    def empty(cls, ops: Ops, B: int) -> Record:
        return cls(ops.zeros((B,)), ops.full((B,), float("inf")), ops.zeros((B,)))

    def certify_some(self, ops: Ops, sub: Problem, idx: Any, cand: Any, m: Any, pi: Any,
                     lam: Any, mu: Any, tol: float) -> Any:
        """Certify the working-set tables flagged by `cand` at q = m π (pair weights m
        (B, n1, n2), softmax π, duals λ, μ of the working set, whose tables sit at
        positions `idx` of the stack); returns which of the working set are now
        certified to tol bits."""
        finished = ops.bool_zeros(idx.shape[0])
        if bool(cand.any()):
            ci = ops.arange(idx.shape[0])[cand]
            cert = certify(ops, sub.take(ops, ci), m[ci, ..., None] * pi[ci], lam[ci], mu[ci])
            at = idx[ci]
            self.i_q[at], self.gap[at], self.marginal_error[at] = cert.i_q, cert.gap, cert.marginal_error
            finished[ci] = cert.gap <= tol
        return finished
