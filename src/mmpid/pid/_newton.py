"""The Newton system both interior-point solvers share.

Around a dual point (λ, μ) with per-pair softmax π(y | x1, x2), pair weights m and
rank-one weights w, the Hessian of the (barrier or primal-dual) Lagrangian in (λ, μ) is
J^T W J with W = m diag(π) - w π π^T on every active pair (J maps (λ, μ) to
z(x1, x2, y) = λ(x1, y) + μ(x2, y)). It has the block form [[D1, C], [C^T, D2]]: D1 is
block diagonal over x1 (ny x ny blocks), D2 over x2, and

    C[x1, y; x2, y'] = δ_yy' m π(y) - w π(y) π(y')        (pair (x1, x2)).

λ is eliminated first; only the Schur complement on μ, of size n2 * ny, is factorised,
once per step (see `factor` for the two ways it is assembled), and `NewtonSystem.solve`
then serves any number of right-hand sides.
The gauge λ(·, y) + c, μ(·, y) - c, which changes nothing, is removed by pinning one
μ(x2, y) per y (and every unsupported entry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mmpid.pid._backend import Ops
from mmpid.pid._problem import Problem

# Relative ridge on the Newton blocks: near the optimum the Hessian mixes curvatures of
# very different sizes (active and inactive pairs) and loses its smallest pivots to
# rounding; the ridge keeps the factorisation regular.
RIDGE = 1e-15


@dataclass
class NewtonSystem:
    """A factorised Newton system; `solve` maps gradients to Newton directions."""

    ops: Ops
    nd1i: Any  # -D1^-1, (B, n1, ny, ny)
    mpi: Any  # m π, (B, n1, n2, ny)
    pi: Any
    wpi: Any  # w π
    schur: Any  # factorised Schur complement on μ
    pinf: Any  # (B, n2 * ny) bool, pinned μ entries
    s1: Any  # (B, n1, ny) bool, supported λ entries
    s2: Any  # (B, n2, ny) bool, supported μ entries

    def solve(self, gl: Any, gm: Any, *, refine: int = 0) -> tuple[Any, Any]:
        """Directions (dλ, dμ) with H (dλ, dμ) = -(gλ, gμ); shapes (B, n1, ny), (B, n2, ny).

        The elimination loses accuracy when the blocks are badly conditioned (near a
        degenerate optimum); `refine` rounds of iterative refinement against the
        unreduced system (a product with H costs O(n1 n2 ny)) win it back.
        """
        dlam, dmu = self._solve_once(gl, gm)
        for _ in range(refine):
            hl, hm = self.apply(dlam, dmu)
            el, em = self._solve_once(gl + hl, gm + hm)
            dlam, dmu = dlam + el, dmu + em
        return dlam, dmu

    def apply(self, dlam: Any, dmu: Any) -> tuple[Any, Any]:
        """H (dλ, dμ) on the free entries (zero on unsupported and pinned ones)."""
        ops = self.ops
        B, n2, ny = dmu.shape
        z = dlam[:, :, None, :] + dmu[:, None, :, :]
        wz = self.mpi * z - self.wpi * ops.sum(self.pi * z, axis=-1, keepdims=True)
        hl = ops.where(self.s1, ops.sum(wz, axis=2), 0.0)
        hm = ops.where(self.s2, ops.sum(wz, axis=1), 0.0)
        hm = ops.where(self.pinf.reshape(B, n2, ny), 0.0, hm)
        return hl, hm

    def _solve_once(self, gl: Any, gm: Any) -> tuple[Any, Any]:
        ops = self.ops
        B, n2, ny = gm.shape
        xg = (self.nd1i @ gl[..., None])[..., 0]  # -D1^-1 gλ
        r = -gm - ct_apply(ops, self.mpi, self.pi, self.wpi, xg)  # -gμ + C^T D1^-1 gλ
        r = ops.where(self.pinf, 0.0, r.reshape(B, n2 * ny))
        dmu = ops.solve_factored(self.schur, r[..., None])[..., 0].reshape(B, n2, ny)
        dlam = xg + (self.nd1i @ c_apply(ops, self.mpi, self.pi, self.wpi, dmu)[..., None])[..., 0]
        return dlam, dmu


def factor(ops: Ops, prob: Problem, m: Any, w: Any, pi: Any, pin: Any) -> NewtonSystem:
    """Assemble and factorise the system for pair weights m, w (B, n1, n2) and π."""
    B, n1, n2, ny = pi.shape
    mpi = m[..., None] * pi  # (B, n1, n2, ny)
    q1 = ops.sum(mpi, axis=2)
    q2 = ops.sum(mpi, axis=1)
    wpi = w[..., None] * pi
    # D1[x1] = diag(Σ_x2 m π) - Σ_x2 w π π^T ; unsupported λ get a unit diagonal.
    # Diagonals are updated in place through views: these stacks are the big arrays.
    d1 = -(ops.permute(wpi, (0, 1, 3, 2)) @ pi)  # Σ_x2 wπ π^T, (B, n1, ny, ny)
    dg = ops.diag_view(d1, -2, -1)
    dg += q1 + ops.where(prob.s1, 0.0, 1.0)
    dg += RIDGE * ops.max(ops.abs(dg), axis=(1, 2))[:, None, None]
    # The Schur complement is the Gram matrix of L1^-1 C (one symmetric rank-k update
    # per table, D1 = L1 L1^T); when some D1 block is not numerically positive definite
    # for Cholesky, it is assembled from C's structure with an LU inverse of D1 instead.
    l1i = ops.inv_cholesky(d1)
    if l1i is None:
        nd1i = -ops.solve_pd(d1, ops.eye(ny) + 0.0 * d1)  # -D1^-1, (B, n1, ny, ny)
        schur = _schur_structured(ops, nd1i, mpi, pi, wpi)
    else:
        nd1i = -(ops.permute(l1i, (0, 1, 3, 2)) @ l1i)
        schur = _schur_gram(ops, l1i, mpi, pi, wpi)
    # + D2 block by block: D2[x2] = diag(Σ_x1 m π) - Σ_x1 w π π^T
    blocks = ops.diag_view(schur.reshape(B, n2, ny, n2, ny), 1, 3)  # (B, ny, ny, n2)
    blocks -= ops.permute(ops.permute(wpi, (0, 2, 3, 1)) @ ops.permute(pi, (0, 2, 1, 3)), (0, 2, 3, 1))
    pinf = pin.reshape(B, n2 * ny)
    keep = ops.astype_float(~pinf)
    # pinned rows and columns become those of the identity (only they are touched)
    schur[pinf] = 0.0
    ops.permute(schur, (0, 2, 1))[pinf] = 0.0
    dg = ops.diag_view(schur, -2, -1)
    dg += (q2 + ops.where(prob.s2, 0.0, 1.0)).reshape(B, n2 * ny) * keep + (1.0 - keep)
    dg += RIDGE * ops.max(ops.abs(dg), axis=-1, keepdims=True)
    return NewtonSystem(ops, nd1i, mpi, pi, wpi, ops.factor_pd(schur), pinf, prob.s1, prob.s2)


def _left_times_coupling(ops: Ops, left: Any, mpi: Any, pi: Any, wpi: Any) -> Any:
    """left C for a block-diagonal left (B, n1, ny, ny), shape (B, n1, ny, n2 * ny).

    From C's structure, without forming C: (left C)[x1, k, x2, y'] =
    left[x1, k, y'] Q[x1, x2, y'] - (left wπ)[x1, k, x2] π[x1, x2, y'] with Q = m π.
    """
    B, n1, n2, ny = pi.shape
    out = left[:, :, :, None, :] * mpi[:, :, None, :, :]  # (B, n1, ny, n2, ny)
    a = left @ ops.permute(wpi, (0, 1, 3, 2))  # (B, n1, ny, n2)
    out -= a[..., None] * pi[:, :, None, :, :]
    return out.reshape(B, n1, ny, n2 * ny)


def _schur_gram(ops: Ops, l1i: Any, mpi: Any, pi: Any, wpi: Any) -> Any:
    """-C^T D1^-1 C = -(L1^-1 C)^T (L1^-1 C), shape (B, n2 * ny, n2 * ny)."""
    B, n1, n2, ny = pi.shape
    y = _left_times_coupling(ops, l1i, mpi, pi, wpi).reshape(B, n1 * ny, n2 * ny)
    return -ops.gram(y)


def _schur_structured(ops: Ops, nd1i: Any, mpi: Any, pi: Any, wpi: Any) -> Any:
    """-C^T D1^-1 C from C's structure, shape (B, n2 * ny, n2 * ny).

    With X = -D1^-1 C (`_left_times_coupling`), C^T X sums Q-weighted rows of X per y
    minus π-weighted sums over x1 of (wπ)-weighted sums over y.
    """
    B, n1, n2, ny = pi.shape
    x = _left_times_coupling(ops, nd1i, mpi, pi, wpi)
    first = ops.permute(mpi, (0, 3, 2, 1)) @ ops.permute(x, (0, 2, 1, 3))  # (B, ny, n2, c)
    t = wpi @ x  # (B, n1, n2, c): Σ_y wπ[x1, x2, y] X[x1, y, c]
    second = ops.permute(pi, (0, 2, 3, 1)) @ ops.permute(t, (0, 2, 1, 3))  # (B, n2, ny, c)
    out = ops.permute(first, (0, 2, 1, 3)) - second
    return out.reshape(B, n2 * ny, n2 * ny)


def c_apply(ops: Ops, q: Any, pi: Any, wpi: Any, v: Any) -> Any:
    """C v for v (B, n2, ny) -> (B, n1, ny)."""
    return ops.sum(q * v[:, None, :, :] - wpi * ops.sum(pi * v[:, None, :, :], axis=-1,
                                                           keepdims=True), axis=2)


def ct_apply(ops: Ops, q: Any, pi: Any, wpi: Any, u: Any) -> Any:
    """C^T u for u (B, n1, ny) -> (B, n2, ny)."""
    return ops.sum(q * u[:, :, None, :] - wpi * ops.sum(pi * u[:, :, None, :], axis=-1,
                                                           keepdims=True), axis=1)


def pin_mask(ops: Ops, prob: Problem) -> Any:
    """μ entries held fixed: unsupported ones and one reference x2 per y (the gauge)."""
    n2 = prob.p2.shape[1]
    ref = ops.argmax(prob.p2, axis=1)  # (B, ny)
    ar = ops.arange(n2)[None, :, None]
    is_ref = (ar == ref[:, None, :]) & (prob.py[:, None, :] > 0)
    return is_ref | ~prob.s2
