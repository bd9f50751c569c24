"""The exact solver's fallback: a barrier (interior-point) Newton method on the small dual.

It takes over the tables that the primal-dual pass of `_primal_dual` leaves uncertified.

For a barrier weight t > 0 it minimises, over the dual variables λ (B, n1, ny) and
μ (B, n2, ny),

    F_t(λ, μ) = -Σ λ p(x1,y) - Σ μ p(x2,y) - t Σ_pairs log(-s(x1,x2)),

whose minimiser gives the primal point q = m π with m = t / (-s) and a duality gap of
t per active pair. t shrinks geometrically, each stage re-centred by damped Newton
steps. Once t is small, the certificate of `_problem.certify` (q = m π projected onto
the constraints, (λ, μ) shifted to feasibility) is checked each step and a table stops
when its certified gap is <= tol. The Newton system has the block form
[[D1, C], [C^T, D2]] with D1 block diagonal over x1 (ny x ny blocks) and D2 over x2,
so λ is eliminated first and only the Schur complement on μ, of size n2*ny, is
factorised. Each pair contributes the
block m diag(π) - (m - m^2/t) π π^T. The gauge λ(·,y) + c, μ(·,y) - c, which changes
nothing, is removed by pinning one μ(x2, y) per y.

All tables of a stack are solved together; tables that have finished drop out of
the working set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmpid.pid import _newton as newton
from mmpid.pid._backend import NEG, Ops
from mmpid.pid._problem import LN2, Problem, Record, pair_lse

# Barrier schedule: t is multiplied by a shrink factor once the scaled Newton
# decrement δ²/t is below CENTRED. The factor grows with the number K of active pairs,
# SHRINK * sqrt(K / 400) clipped to [SHRINK, SHRINK_MAX]: long steps suit small tables,
# shorter ones spare large tables long damped re-centring phases. A table stops as soon
# as its certified gap is <= tol.
SHRINK = 0.05
SHRINK_MAX = 0.2
CENTRED = 2.0
# The looser threshold of the retry for tables the first run cannot certify (some
# degenerate tables stall at the tight one, others at the loose one).
CENTRED_RETRY = 5.0
# Newton steps allowed at the final barrier weight, or on one earlier stage, before a
# table is declared stuck.
STALL_STEPS = 25


@dataclass
class ExactOut:
    i_q: Any
    gap: Any
    marginal_error: Any
    iterations: Any
    converged: Any
    stuck: Any  # stopped uncertified because the barrier stalled (not max_iter)
    fallback_rounds: Any = None  # IPFP alternations of the last fallback (None: none ran)


def _barrier(ops: Ops, prob: Problem, lam: Any, mu: Any, t: Any) -> Any:
    """F_t at (λ, μ), shape (B,); +inf where a constraint is violated."""
    s, _ = pair_lse(ops, prob, lam, mu)
    bad = ops.any((s >= 0) & prob.active, axis=(1, 2))
    safe = ops.where(prob.active, -s, 1.0)
    safe = ops.where(safe > 0, safe, 1.0)
    lin = ops.sum(ops.where(prob.s1, lam * prob.p1, 0.0), axis=(1, 2)) + ops.sum(
        ops.where(prob.s2, mu * prob.p2, 0.0), axis=(1, 2)
    )
    logs = ops.sum(ops.where(prob.active, ops.log(safe), 0.0), axis=(1, 2))
    val = -lin - t * logs
    return ops.where(bad, float("inf"), val)


def _newton_step(ops: Ops, prob: Problem, lam: Any, mu: Any, t: Any, pin: Any):
    """Gradient, Newton direction and decrement δ² = -g·d of F_t."""
    s, pi = pair_lse(ops, prob, lam, mu)
    negs = ops.where(prob.active, -s, 1.0)
    m = ops.where(prob.active, t[:, None, None] / negs, 0.0)  # (B, n1, n2)
    system = newton.factor(ops, prob, m, m - m * m / t[:, None, None], pi, pin)
    gl = ops.where(prob.s1, ops.sum(system.mpi, axis=2) - prob.p1, 0.0)
    gm = ops.where(prob.s2, ops.sum(system.mpi, axis=1) - prob.p2, 0.0)
    dlam, dmu = system.solve(gl, gm)
    dec = -(ops.sum(gl * dlam, axis=(1, 2)) + ops.sum(gm * dmu, axis=(1, 2)))
    return dlam, dmu, dec, m, pi


def init_dual(ops: Ops, prob: Problem) -> tuple[Any, Any, Any]:
    """Strictly feasible start from q0 = p(x1,y) p(x2,y) / p(y), every s <= -1."""
    lp1 = ops.safe_log(prob.p1)
    lpy = ops.safe_log(prob.py)
    lam = ops.where(prob.s1, lp1 - lpy[:, None, :] - 1.0, NEG)
    mu = ops.where(prob.s2, ops.safe_log(prob.p2), NEG)
    s, _ = pair_lse(ops, prob, lam, mu)
    inv = ops.sum(ops.where(prob.active, 1.0 / ops.where(prob.active, -s, 1.0), 0.0), axis=(1, 2))
    t = 1.0 / ops.where(inv > 0, inv, 1.0)
    return lam, mu, t


def solve_exact(ops: Ops, prob: Problem, *, tol: float, max_iter: int,
                centred_at: float = CENTRED) -> ExactOut:
    """Solve every table of `prob` until its certified gap is <= tol bits; a stage
    ends when δ²/t < `centred_at`."""
    B = prob.p1.shape[0]
    lam, mu, t = init_dual(ops, prob)
    pin = newton.pin_mask(ops, prob)
    # The central point's gap is about t per active pair: stop shrinking t at half the
    # budget (smaller t only loses precision in m = t / (-s)).
    t_floor = 0.5 * tol * LN2 / ops.maximum(prob.n_active, 1.0)
    shrink = SHRINK * (prob.n_active / 400.0) ** 0.5
    shrink = ops.minimum(ops.maximum(shrink, SHRINK), SHRINK_MAX)
    iters, floor_steps, stage_steps = ops.int_zeros(B), ops.int_zeros(B), ops.int_zeros(B)
    done, stalled = ops.bool_zeros(B), ops.bool_zeros(B)
    rec = Record.empty(ops, B)
    for it in range(max_iter + 1):
        idx = ops.arange(B)[~done]
        if idx.shape[0] == 0:
            break
        sub = prob.take(ops, idx)
        lam_i, mu_i, t_i = lam[idx], mu[idx], t[idx]
        dlam, dmu, dec, m, pi = _newton_step(ops, sub, lam_i, mu_i, t_i, pin[idx])
        # The certificate of the current point (q = m π projected, (λ, μ) made feasible),
        # computed once t is small enough for the gap to be within tol, and at the end.
        last = it == max_iter
        cand = t_i <= 2.01 * t_floor[idx]
        floor_steps[idx] = floor_steps[idx] + cand
        if last:
            cand = idx >= 0  # every table still running
        finished = rec.certify_some(ops, sub, idx, cand, m, pi, lam_i, mu_i, tol)
        # Tables stuck near the final t (a barrier problem without minimiser in some
        # directions) stop here uncertified; the caller's fallback takes them over.
        # So are tables that spend STALL_STEPS steps on one earlier stage.
        stuck = ((floor_steps[idx] > STALL_STEPS) | (stage_steps[idx] > STALL_STEPS)) & ~finished
        stalled[idx] = stuck
        done[idx] = finished | stuck
        if last:
            break
        # Damped Newton with backtracking; only unfinished tables move.
        f0 = _barrier(ops, sub, lam_i, mu_i, t_i)
        alpha = ops.where(finished, 0.0, 1.0)
        accepted = finished
        for _ls in range(60):
            lam_n = lam_i + alpha[:, None, None] * dlam
            mu_n = mu_i + alpha[:, None, None] * dmu
            f1 = _barrier(ops, sub, lam_n, mu_n, t_i)
            ok = f1 <= f0 - 0.01 * alpha * dec + 1e-15 * ops.abs(f0)
            accepted = accepted | ok
            if bool(accepted.all()):
                break
            alpha = ops.where(accepted, alpha, 0.5 * alpha)
        alpha = ops.where(accepted, alpha, 0.0)
        lam[idx] = lam_i + alpha[:, None, None] * dlam
        mu[idx] = mu_i + alpha[:, None, None] * dmu
        iters[idx] = iters[idx] + (~done[idx])
        # a table whose step was refused is as centred as this precision allows
        centred = ((dec / t_i < centred_at) | (alpha == 0)) & ~finished
        t[idx] = ops.where(centred, ops.maximum(t_i * shrink[idx], t_floor[idx]), t_i)
        stage_steps[idx] = (stage_steps[idx] + 1) * ~(centred | cand)
    return ExactOut(rec.i_q, rec.gap, rec.marginal_error, iters, rec.gap <= tol, stalled)
