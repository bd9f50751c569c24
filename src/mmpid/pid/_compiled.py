"""The primal-dual pass of `_primal_dual`, compiled with numba, one table at a time.

The vectorised solver moves whole stacks of tables through numpy calls; on small tables
those calls, not the arithmetic, take most of the time (about 150 of them per Newton step).
This module runs the same algorithm, step for step (same start, Newton system, Mehrotra
predictor-corrector, safeguards, step rules and certificate), as compiled loops over one
table, calling LAPACK only for the Schur complement (`_lapack`). The one difference: the
corrector's iterative refinement is switched on by this table's complementarity alone,
where the vectorised pass switches it on for its whole working set at once.

A table whose Newton blocks defeat Cholesky (nearly singular, where the vectorised solver
switches to LU) is returned as *deferred*, untouched; the caller solves it with the
vectorised pass. `_primal_dual` documents the algorithm; the comments here only map its
array expressions to loops. A change to one must go to the other: `tests/test_pid_compiled.py`
checks that both take the same steps to the same atoms. Natural logs inside, bits in the
outputs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from mmpid.pid._backend import NEG
from mmpid.pid._lapack import potrf_lower, potrs_lower, syrk_lower
from mmpid.pid._newton import RIDGE
from mmpid.pid._primal_dual import FLOOR, MAX_DUAL_MOVE, REFINE_BELOW, TO_BOUNDARY
from mmpid.pid._problem import GAP_ROUNDING, LN2, SINKHORN_DONE, SINKHORN_ITER

# Statuses of `solve_tables`.
CERTIFIED = 0  # certified gap <= tol
UNCERTIFIED = 1  # ran out of steps; the barrier fallback may take over (`stuck`)
OUT_OF_ITER = 2  # ran out of the caller's max_iter: no fallback
DEFERRED = 3  # a factorisation failed: solve with the vectorised pass


@njit(nogil=True, cache=True)
def _xlogx(x: float) -> float:
    return x * math.log(x) if x > 0.0 else 0.0


@njit(nogil=True, cache=True)
def _max_abs_diff(x, y):
    """max |x - y| over two (n, k) arrays."""
    out = 0.0
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            out = max(out, abs(x[i, j] - y[i, j]))
    return out


@njit(nogil=True, cache=True)
def _pair_lse(lam, mu, support, active, s, pi):
    """s(x1, x2) = logsumexp_y(λ + μ) over the support (-1 on inactive pairs) and the
    softmax π (zero off the support), written into s (n1, n2) and pi (n1, n2, ny)."""
    n1, n2, ny = pi.shape
    for a in range(n1):
        for b in range(n2):
            if not active[a, b]:
                s[a, b] = -1.0
                for y in range(ny):
                    pi[a, b, y] = 0.0
                continue
            zmax = -np.inf
            for y in range(ny):
                if support[a, b, y]:
                    zmax = max(zmax, lam[a, y] + mu[b, y])
            tot = 0.0
            for y in range(ny):
                if support[a, b, y]:
                    e = math.exp(lam[a, y] + mu[b, y] - zmax)
                    pi[a, b, y] = e
                    tot += e
                else:
                    pi[a, b, y] = 0.0
            for y in range(ny):
                pi[a, b, y] /= tot
            s[a, b] = zmax + math.log(tot)


@njit(nogil=True, cache=True)
def _factor(m, w, pi, s1, s2, pin, nd1i, mpi, wpi, schur, y_mat):
    """`_newton.factor` for one table: fills -D1^-1 (nd1i), m π, w π, L1^-1 C (y_mat,
    (n1 ny, n2 ny)) and the Cholesky factor of the Schur complement on μ (schur's lower
    triangle). False when a factorisation fails."""
    n1, n2, ny = pi.shape
    d1 = np.zeros((ny, ny))
    l1i = np.zeros((ny, ny))
    dg1 = np.empty((n1, ny))
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                mpi[a, b, y] = m[a, b] * pi[a, b, y]
                wpi[a, b, y] = w[a, b] * pi[a, b, y]
    # D1 diagonals first: the ridge needs their largest magnitude over the table.
    top = 0.0
    for a in range(n1):
        for y in range(ny):
            q1 = 0.0
            c = 0.0
            for b in range(n2):
                q1 += mpi[a, b, y]
                c += wpi[a, b, y] * pi[a, b, y]
            dg1[a, y] = -c + q1 + (0.0 if s1[a, y] else 1.0)
            top = max(top, abs(dg1[a, y]))
    for a in range(n1):
        for y in range(ny):
            for k in range(y + 1):
                if k == y:
                    d1[y, y] = dg1[a, y] + RIDGE * top
                else:
                    c = 0.0
                    for b in range(n2):
                        c += wpi[a, b, y] * pi[a, b, k]
                    d1[y, k] = -c
        # Cholesky D1 = L L^T (lower), then L^-1 by forward substitution.
        for j in range(ny):
            acc = d1[j, j]
            for k in range(j):
                acc -= d1[j, k] * d1[j, k]
            if not acc > 0.0:
                return False
            d = math.sqrt(acc)
            d1[j, j] = d
            for i in range(j + 1, ny):
                acc = d1[i, j]
                for k in range(j):
                    acc -= d1[i, k] * d1[j, k]
                d1[i, j] = acc / d
        for j in range(ny):
            for i in range(ny):
                if i < j:
                    l1i[i, j] = 0.0
                elif i == j:
                    l1i[i, i] = 1.0 / d1[i, i]
                else:
                    acc = 0.0
                    for k in range(j, i):
                        acc -= d1[i, k] * l1i[k, j]
                    l1i[i, j] = acc / d1[i, i]
        # -D1^-1 = -L^-T L^-1
        for i in range(ny):
            for j in range(ny):
                acc = 0.0
                for k in range(max(i, j), ny):
                    acc += l1i[k, i] * l1i[k, j]
                nd1i[a, i, j] = -acc
        # rows (a, k) of L1^-1 C: l1i[k, y'] mπ[b, y'] - (l1i wπ^T)[k, b] π[b, y']
        for k in range(ny):
            row = a * ny + k
            for b in range(n2):
                lw = 0.0
                for y in range(k + 1):
                    lw += l1i[k, y] * wpi[a, b, y]
                for y in range(ny):
                    y_mat[row, b * ny + y] = l1i[k, y] * mpi[a, b, y] - lw * pi[a, b, y]
    syrk_lower(-1.0, y_mat, schur)
    n = n2 * ny
    # + D2 block by block (lower triangle), then pinned rows and columns of the identity.
    for b in range(n2):
        for y in range(ny):
            for k in range(y + 1):
                c = 0.0
                for a in range(n1):
                    c += wpi[a, b, y] * pi[a, b, k]
                schur[b * ny + y, b * ny + k] -= c
    for i in range(n):
        if pin[i]:
            for j in range(i):
                schur[i, j] = 0.0
            for j in range(i + 1, n):
                schur[j, i] = 0.0
    top = 0.0
    for b in range(n2):
        for y in range(ny):
            i = b * ny + y
            if pin[i]:
                schur[i, i] = 1.0
            else:
                q2 = 0.0
                for a in range(n1):
                    q2 += mpi[a, b, y]
                schur[i, i] += q2 + (0.0 if s2[b, y] else 1.0)
            top = max(top, abs(schur[i, i]))
    for i in range(n):
        schur[i, i] += RIDGE * top
    return potrf_lower(schur) == 0


@njit(nogil=True, cache=True)
def _coupling(mpi, wpi, pi, x, out, transpose):
    """out = C x (x (n2, ny), out (n1, ny)), or C^T x when `transpose` (x (n1, ny),
    out (n2, ny)); `_newton.c_apply` and `ct_apply`."""
    n1, n2, ny = pi.shape
    out[:, :] = 0.0
    for a in range(n1):
        for b in range(n2):
            src, dst = (a, b) if transpose else (b, a)
            px = 0.0
            for y in range(ny):
                px += pi[a, b, y] * x[src, y]
            for y in range(ny):
                out[dst, y] += mpi[a, b, y] * x[src, y] - wpi[a, b, y] * px


@njit(nogil=True, cache=True)
def _solve_once(nd1i, mpi, wpi, pi, schur, pin, gl, gm, dlam, dmu):
    """`NewtonSystem._solve_once`: (dλ, dμ) with H (dλ, dμ) = -(gλ, gμ)."""
    n1, n2, ny = pi.shape
    xg = np.zeros((n1, ny))
    for a in range(n1):
        for i in range(ny):
            acc = 0.0
            for j in range(ny):
                acc += nd1i[a, i, j] * gl[a, j]
            xg[a, i] = acc
    ct = np.empty((n2, ny))
    _coupling(mpi, wpi, pi, xg, ct, True)
    r = np.empty(n2 * ny)
    for b in range(n2):
        for y in range(ny):
            i = b * ny + y
            r[i] = 0.0 if pin[i] else -gm[b, y] - ct[b, y]
    potrs_lower(schur, r)
    for b in range(n2):
        for y in range(ny):
            dmu[b, y] = r[b * ny + y]
    cv = np.empty((n1, ny))
    _coupling(mpi, wpi, pi, dmu, cv, False)
    for a in range(n1):
        for i in range(ny):
            acc = 0.0
            for j in range(ny):
                acc += nd1i[a, i, j] * cv[a, j]
            dlam[a, i] = xg[a, i] + acc


@njit(nogil=True, cache=True)
def _solve(nd1i, mpi, wpi, pi, schur, pin, s1, s2, gl, gm, refine, dlam, dmu):
    """`NewtonSystem.solve` with `refine` rounds of iterative refinement against the
    unreduced system."""
    n1, n2, ny = pi.shape
    _solve_once(nd1i, mpi, wpi, pi, schur, pin, gl, gm, dlam, dmu)
    el = np.empty((n1, ny))
    em = np.empty((n2, ny))
    for _ in range(refine):
        # gl + H dλ (hl), gm + H dμ (hm), H as `NewtonSystem.apply`
        hl = gl.copy()
        hm = gm.copy()
        hl_acc = np.zeros((n1, ny))
        hm_acc = np.zeros((n2, ny))
        for a in range(n1):
            for b in range(n2):
                pz = 0.0
                for y in range(ny):
                    pz += pi[a, b, y] * (dlam[a, y] + dmu[b, y])
                for y in range(ny):
                    wz = mpi[a, b, y] * (dlam[a, y] + dmu[b, y]) - wpi[a, b, y] * pz
                    hl_acc[a, y] += wz
                    hm_acc[b, y] += wz
        for a in range(n1):
            for y in range(ny):
                if s1[a, y]:
                    hl[a, y] += hl_acc[a, y]
        for b in range(n2):
            for y in range(ny):
                if s2[b, y] and not pin[b * ny + y]:
                    hm[b, y] += hm_acc[b, y]
        _solve_once(nd1i, mpi, wpi, pi, schur, pin, hl, hm, el, em)
        for a in range(n1):
            for y in range(ny):
                dlam[a, y] += el[a, y]
        for b in range(n2):
            for y in range(ny):
                dmu[b, y] += em[b, y]


@njit(nogil=True, cache=True)
def _direction(target, m, v, rs, act, pi, p1, p2, s1, s2, system, refine,
               dlam, dmu, dm, dv):
    """Newton direction for complementarity m v -> target (n1, n2), into dλ, dμ, dm, dv."""
    nd1i, mpi, wpi, schur, pin = system
    n1, n2, ny = pi.shape
    gl = np.zeros((n1, ny))
    gm = np.zeros((n2, ny))
    for a in range(n1):
        for b in range(n2):
            if act[a, b]:
                me = (target[a, b] + m[a, b] * rs[a, b]) / v[a, b]
                for y in range(ny):
                    q = me * pi[a, b, y]
                    gl[a, y] += q
                    gm[b, y] += q
    for a in range(n1):
        for y in range(ny):
            gl[a, y] = gl[a, y] - p1[a, y] if s1[a, y] else 0.0
    for b in range(n2):
        for y in range(ny):
            gm[b, y] = gm[b, y] - p2[b, y] if s2[b, y] else 0.0
    _solve(nd1i, mpi, wpi, pi, schur, pin, s1, s2, gl, gm, refine, dlam, dmu)
    for a in range(n1):
        for b in range(n2):
            if act[a, b]:
                pdz = 0.0
                for y in range(ny):
                    pdz += pi[a, b, y] * (dlam[a, y] + dmu[b, y])
                dv[a, b] = -rs[a, b] - pdz
                dm[a, b] = (target[a, b] - m[a, b] * v[a, b] + m[a, b] * rs[a, b]
                            + m[a, b] * pdz) / v[a, b]
            else:
                dv[a, b] = 0.0
                dm[a, b] = 0.0


@njit(nogil=True, cache=True)
def _max_step(act, x, dx):
    """Largest α <= 1 with x + α dx >= 0 on active pairs."""
    out = 1.0
    n1, n2 = x.shape
    for a in range(n1):
        for b in range(n2):
            if act[a, b] and dx[a, b] < 0.0:
                out = min(out, -x[a, b] / dx[a, b])
    return out


@njit(nogil=True, cache=True)
def _certify(p1, p2, py, support, active, m, pi, lam, mu):
    """`_problem.certify` at q = m π: (I_q bits, gap bits, marginal error)."""
    n1, n2, ny = pi.shape
    q = np.empty((n1, n2, ny))
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                q[a, b, y] = max(m[a, b] * pi[a, b, y], 0.0) if support[a, b, y] else 0.0
    row = np.empty((n1, ny))
    col = np.empty((n2, ny))
    # Sinkhorn scaling towards the marginals (`sinkhorn_project`)
    for it in range(SINKHORN_ITER):
        row[:, :] = 0.0
        for a in range(n1):
            for b in range(n2):
                for y in range(ny):
                    row[a, y] += q[a, b, y]
        if it % 5 == 0 and _max_abs_diff(row, p1) <= SINKHORN_DONE:
            break
        col[:, :] = 0.0
        for a in range(n1):
            for b in range(n2):
                for y in range(ny):
                    r = p1[a, y] / row[a, y] if row[a, y] > 0.0 else 0.0
                    q[a, b, y] *= r
                    col[b, y] += q[a, b, y]
        for a in range(n1):
            for b in range(n2):
                for y in range(ny):
                    q[a, b, y] *= p2[b, y] / col[b, y] if col[b, y] > 0.0 else 0.0
    # Rounding onto the constraints (`round_to_feasible`)
    row[:, :] = 0.0
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                q[a, b, y] = max(q[a, b, y], 0.0) if support[a, b, y] else 0.0
                row[a, y] += q[a, b, y]
    col[:, :] = 0.0
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                if row[a, y] > p1[a, y]:
                    q[a, b, y] *= p1[a, y] / row[a, y]
                col[b, y] += q[a, b, y]
    row[:, :] = 0.0
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                if col[b, y] > p2[b, y]:
                    q[a, b, y] *= p2[b, y] / col[b, y]
                row[a, y] += q[a, b, y]
    col[:, :] = 0.0
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                col[b, y] += q[a, b, y]
    er = np.empty((n1, ny))
    ec = np.empty((n2, ny))
    tot = np.zeros(ny)
    for a in range(n1):
        for y in range(ny):
            er[a, y] = max(p1[a, y] - row[a, y], 0.0)
            tot[y] += er[a, y]
    for b in range(n2):
        for y in range(ny):
            ec[b, y] = max(p2[b, y] - col[b, y], 0.0)
    f = 0.0
    row[:, :] = 0.0
    col[:, :] = 0.0
    for a in range(n1):
        for b in range(n2):
            pair = 0.0
            for y in range(ny):
                t = tot[y] if tot[y] > 0.0 else 1.0
                x = q[a, b, y] + er[a, y] * ec[b, y] / t
                row[a, y] += x
                col[b, y] += x
                pair += x
                f += _xlogx(x)
            f -= _xlogx(pair)
    merr = max(_max_abs_diff(row, p1), _max_abs_diff(col, p2))
    # Feasible dual bound (`feasible_dual_bound`): shift λ, then μ, onto the constraints.
    s = np.empty((n1, n2))
    pw = np.empty((n1, n2, ny))
    lam = lam.copy()
    mu = mu.copy()
    _pair_lse(lam, mu, support, active, s, pw)
    for a in range(n1):
        c = NEG
        for b in range(n2):
            if active[a, b]:
                c = max(c, s[a, b])
        for y in range(ny):
            lam[a, y] -= c if c > NEG / 2 else 0.0
    _pair_lse(lam, mu, support, active, s, pw)
    for b in range(n2):
        c = NEG
        for a in range(n1):
            if active[a, b]:
                c = max(c, s[a, b])
        for y in range(ny):
            mu[b, y] -= c if c > NEG / 2 else 0.0
    lower = 0.0
    for a in range(n1):
        for y in range(ny):
            if p1[a, y] > 0.0:
                lower += lam[a, y] * p1[a, y]
    for b in range(n2):
        for y in range(ny):
            if p2[b, y] > 0.0:
                lower += mu[b, y] * p2[b, y]
    hy = 0.0
    for y in range(ny):
        hy -= _xlogx(py[y])
    raw = f - lower
    if raw < -GAP_ROUNDING * (1.0 + abs(f) + abs(lower)):
        raise RuntimeError("Internal error in the PID solver: a negative duality gap (weak duality forbids it)")
    return (hy + f) / LN2, max(raw, 0.0) / LN2, merr


@njit(nogil=True, cache=True)
def _solve_table(P, tol, max_iter, max_steps):
    """The primal-dual pass on one normalised table P (n1, n2, ny):
    (I_q bits, gap bits, marginal error, steps, status)."""
    n1, n2, ny = P.shape
    p1 = np.zeros((n1, ny))
    p2 = np.zeros((n2, ny))
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                p1[a, y] += P[a, b, y]
                p2[b, y] += P[a, b, y]
    py = np.zeros(ny)
    for a in range(n1):
        for y in range(ny):
            py[y] += p1[a, y]
    s1 = np.zeros((n1, ny), dtype=np.bool_)
    s2 = np.zeros((n2, ny), dtype=np.bool_)
    for a in range(n1):
        for y in range(ny):
            s1[a, y] = p1[a, y] > 0.0
    for b in range(n2):
        for y in range(ny):
            s2[b, y] = p2[b, y] > 0.0
    support = np.zeros((n1, n2, ny), dtype=np.bool_)
    act = np.zeros((n1, n2), dtype=np.bool_)
    n_active = 0.0
    for a in range(n1):
        for b in range(n2):
            for y in range(ny):
                if s1[a, y] and s2[b, y]:
                    support[a, b, y] = True
                    act[a, b] = True
            n_active += 1.0 if act[a, b] else 0.0
    n_act = max(n_active, 1.0)
    # μ pins: unsupported entries and one reference x2 per y (`_newton.pin_mask`)
    pin = np.zeros(n2 * ny, dtype=np.bool_)
    for y in range(ny):
        ref = 0
        for b in range(n2):
            if p2[b, y] > p2[ref, y]:
                ref = b
        for b in range(n2):
            pin[b * ny + y] = (b == ref and py[y] > 0.0) or not s2[b, y]
    # The start (`_exact.init_dual` and the primal-feasible pair masses)
    lam = np.empty((n1, ny))
    mu = np.empty((n2, ny))
    for a in range(n1):
        for y in range(ny):
            lam[a, y] = math.log(p1[a, y]) - math.log(py[y]) - 1.0 if s1[a, y] else NEG
    for b in range(n2):
        for y in range(ny):
            mu[b, y] = math.log(p2[b, y]) if s2[b, y] else NEG
    s = np.empty((n1, n2))
    pi = np.empty((n1, n2, ny))
    _pair_lse(lam, mu, support, act, s, pi)
    v = np.ones((n1, n2))
    m = np.zeros((n1, n2))
    for a in range(n1):
        for b in range(n2):
            if act[a, b]:
                v[a, b] = -s[a, b]
            for y in range(ny):
                if support[a, b, y]:
                    m[a, b] += p1[a, y] * p2[b, y] / py[y]
    steps = min(max_iter, max_steps)
    nd1i = np.empty((n1, ny, ny))
    mpi = np.empty((n1, n2, ny))
    wpi = np.empty((n1, n2, ny))
    schur = np.empty((n2 * ny, n2 * ny))
    y_mat = np.empty((n1 * ny, n2 * ny))
    w = np.zeros((n1, n2))
    rs = np.zeros((n1, n2))
    target = np.zeros((n1, n2))
    dlam = np.empty((n1, ny))
    dmu = np.empty((n2, ny))
    dm = np.empty((n1, n2))
    dv = np.empty((n1, n2))
    i_q, gap, merr = 0.0, np.inf, 0.0
    it = 0
    while True:
        comp = 0.0
        for a in range(n1):
            for b in range(n2):
                if act[a, b]:
                    comp += m[a, b] * v[a, b]
        if comp <= tol * LN2 or it == steps:
            i_q, gap, merr = _certify(p1, p2, py, support, act, m, pi, lam, mu)
            if gap <= tol:
                return i_q, gap, merr, it, CERTIFIED
        if it == steps:
            return i_q, gap, merr, it, UNCERTIFIED if steps < max_iter else OUT_OF_ITER
        tau = comp / n_act
        for a in range(n1):
            for b in range(n2):
                w[a, b] = m[a, b] - m[a, b] / v[a, b] if act[a, b] else 0.0
                rs[a, b] = s[a, b] + v[a, b] if act[a, b] else 0.0
        if not _factor(m, w, pi, s1, s2, pin, nd1i, mpi, wpi, schur, y_mat):
            return 0.0, np.inf, 0.0, it, DEFERRED
        system = (nd1i, mpi, wpi, schur, pin)
        # predictor (σ = 0)
        target[:, :] = 0.0
        _direction(target, m, v, rs, act, pi, p1, p2, s1, s2, system, 0, dlam, dmu, dm, dv)
        a_aff = min(_max_step(act, m, dm), _max_step(act, v, dv))
        tau_aff = 0.0
        for a in range(n1):
            for b in range(n2):
                if act[a, b]:
                    tau_aff += (m[a, b] + a_aff * dm[a, b]) * (v[a, b] + a_aff * dv[a, b])
        tau_aff /= n_act
        sigma = (tau_aff / (tau if tau > 0.0 else 1.0)) ** 3
        goal = max(sigma * tau, FLOOR * tol * LN2 / n_act)
        for a in range(n1):
            for b in range(n2):
                target[a, b] = goal - dm[a, b] * dv[a, b] if act[a, b] else 0.0
        # corrector, refined near the optimum
        refine = 1 if comp < REFINE_BELOW else 0
        _direction(target, m, v, rs, act, pi, p1, p2, s1, s2, system, refine,
                   dlam, dmu, dm, dv)
        alpha_m = TO_BOUNDARY * _max_step(act, m, dm)
        alpha = TO_BOUNDARY * _max_step(act, v, dv)
        move = 0.0
        for a in range(n1):
            for y in range(ny):
                move = max(move, abs(dlam[a, y]))
        for b in range(n2):
            for y in range(ny):
                move = max(move, abs(dmu[b, y]))
        alpha = min(alpha, MAX_DUAL_MOVE / max(move, MAX_DUAL_MOVE))
        for a in range(n1):
            for y in range(ny):
                lam[a, y] += alpha * dlam[a, y]
        for b in range(n2):
            for y in range(ny):
                mu[b, y] += alpha * dmu[b, y]
        for a in range(n1):
            for b in range(n2):
                m[a, b] += alpha_m * dm[a, b]
                v[a, b] = v[a, b] + alpha * dv[a, b] if act[a, b] else 1.0
        _pair_lse(lam, mu, support, act, s, pi)
        it += 1


def solve_tables(P: np.ndarray, tol: float, max_iter: int,
                 max_steps: int) -> tuple[np.ndarray, ...]:
    """The primal-dual pass on each normalised table of P (B, n1, n2, ny), with at most
    min(max_iter, max_steps) Newton steps (`_primal_dual.MAX_STEPS` is the pass's own
    budget; running out of it hands the table to the fallback).

    Returns arrays (B,): I_q (bits) and certified gap (bits) of the last certificate,
    its marginal error, Newton steps, and status (CERTIFIED, UNCERTIFIED, OUT_OF_ITER,
    DEFERRED). The loop over tables stays in Python (a few microseconds a table): a
    compiled loop would make numba optimise the whole solver a second time on first use.
    """
    B = P.shape[0]
    i_q = np.zeros(B)
    gap = np.full(B, np.inf)
    merr = np.zeros(B)
    steps = np.zeros(B, dtype=np.int64)
    status = np.zeros(B, dtype=np.int64)
    for t in range(B):
        i_q[t], gap[t], merr[t], steps[t], status[t] = _solve_table(P[t], tol, max_iter, max_steps)
    return i_q, gap, merr, steps, status
