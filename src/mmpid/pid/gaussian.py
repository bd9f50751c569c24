"""The Gaussian PID (~G-PID) of a joint covariance of (X1, X2, Y), in bits.

Definition (Venkatesh et al., "Gaussian Partial Information Decomposition: Bias Correction
and Application to High-dimensional Data", NeurIPS 2023): BROJA's union information
``min_q I_q(X1,X2;Y)`` over couplings ``q`` that keep the (X1,Y) and (X2,Y) marginals, with
the minimum taken over *Gaussian* couplings only; R, U1, U2, S then follow as in BROJA.

In channel form (Y standardised, each source's noise given Y whitened),
``X1 = H1 Y + N1`` and ``X2 = H2 Y + N2`` with ``N1 ~ N(0, I)``, ``N2 ~ N(0, I)``, the pairwise
marginals fix ``H1, H2`` and the noise covariances; a Gaussian coupling is free only in the
cross-covariance ``cov(N1, N2) = K`` (d1 x d2), any matrix with spectral norm <= 1. Then

    f(K) = I_K(X1,X2;Y) = 1/2 ln det(C(K) + H H^T) - 1/2 ln det C(K),
    C(K) = [[I, K], [K^T, I]],  H = [H1; H2],

and the union information is ``min_{||K|| <= 1} f(K)``. ``f`` is convex in K
(``-ln det`` of the posterior covariance ``I - H^T A^-1 H``, which is matrix-concave in the
affine ``A = C(K) + H H^T``), so the problem is convex.

Solver: a barrier path. Damped Newton steps (analytic gradient ``[A^-1]_12 - [C^-1]_12`` and
Hessian) minimise ``f(K) - mu ln det C(K)`` for mu = 1, 0.1, 0.01, ... from ``K = 0``, and the
solve stops on a certified gap: for convex f, ``f(K) - f* <= <grad f, K> + ||grad f||_nuclear``
(the Frank-Wolfe gap over the spectral-norm ball), reported in bits. The optimum often lies on
the boundary ``||K|| = 1`` (a combination of X1 coupled to be an exact copy of one of X2),
where f stays finite but float64 limits the certificate to about 1e-7 to 1e-6 bits; interior
optima certify to 1e-10 and better. The reference implementation (praveenv253/gpid) uses
projected gradient descent with Rprop and a 1e-7 ridge instead; none of it is used here.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import scipy.linalg as sla

from mmpid.errors import ConvergenceWarning, InputError
from mmpid.pid.result import NONNEGATIVE_TOL

__all__ = ["GaussianPID", "gaussian_pid", "gaussian_mi", "DEFAULT_TOL", "DEFAULT_MAX_ITER"]

LN2 = math.log(2.0)
#: Certified gap (bits) at which the union-information solver stops.
DEFAULT_TOL = 1e-7
DEFAULT_MAX_ITER = 500
# relative symmetry error tolerated in an input covariance
_SYM_RTOL = 1e-8
# Armijo constant and the most step halvings per Newton step
_ARMIJO = 1e-4
_MAX_HALVINGS = 60
# below this squared Newton decrement (nats) a step that fails the Armijo test (beyond
# float64 near the boundary) is taken all the same; the certified gap decides
_FLAT = 1e-6
# barrier path: mu from _MU_START down by _MU_FACTOR per stage, not below _MU_MIN
_MU_START = 1.0
_MU_FACTOR = 0.1
_MU_MIN = 1e-13
# inner Newton: stop at this squared decrement (nats) or after this many steps
_INNER_TOL = 1e-18
_INNER_MAX = 15
# a stage ends when the squared decrement is below (_CENTRING mu)^2
_CENTRING = 1.0
# stop after this many barrier stages in a row that shrink the gap by less than this ratio
_STALL_RATIO = 0.5
_STALL_STAGES = 3
_STALL_MU = 0.01
# plain Newton steps on f (see _polish), tried after every stage once the gap (nats) is
# below _POLISH_FROM, and at the end
_POLISH = 5
_POLISH_FROM = 1e-2


@dataclass(frozen=True)
class GaussianPID:
    """The ~G-PID of one joint Gaussian, in bits.

    The four atoms sum to ``mutual_information`` = I(X1,X2;Y); ``mi_1`` = I(X1;Y) =
    R + U1 and ``mi_2`` = I(X2;Y) = R + U2. Negative atoms are reported as they are.

    Attributes
    ----------
    redundancy, unique_1, unique_2, synergy : the atoms, bits.
    mutual_information, mi_1, mi_2 : I(X1,X2;Y), I(X1;Y), I(X2;Y), bits.
    union_information : min over Gaussian couplings of I_q(X1,X2;Y), bits (= R + U1 + U2).
    coupling : (d1, d2) the optimal whitened noise cross-covariance K (spectral norm <= 1).
    method : ``"gaussian"``.
    iterations : Newton steps taken.
    converged : whether the certified gap reached ``tol``.
    gap : certified upper bound, bits, on how far ``union_information`` lies above the
        minimum over Gaussian couplings; every atom is within ``gap`` of its exact value.
    """

    redundancy: float
    unique_1: float
    unique_2: float
    synergy: float
    mutual_information: float
    mi_1: float
    mi_2: float
    union_information: float
    coupling: np.ndarray
    method: str
    iterations: int
    converged: bool
    gap: float

    @property
    def nonnegative(self) -> bool:
        """True when every atom is >= -1e-6 bits."""
        return all(
            getattr(self, a) >= -NONNEGATIVE_TOL
            for a in ("redundancy", "unique_1", "unique_2", "synergy")
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict of every field (``coupling`` as nested lists) plus ``nonnegative``."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["coupling"] = self.coupling.tolist()
        out["nonnegative"] = self.nonnegative
        return out


# ---------------------------------------------------------------------------- validation
def _check_sizes(sizes: Any) -> tuple[int, int, int]:
    try:
        d = tuple(sizes)
    except TypeError:
        d = ()
    if len(d) != 3 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in d
    ):
        raise InputError(
            "'sizes' must be three ints >= 1, the dimensions (d1, d2, dy) of X1, X2 and Y in "
            f"the order of the covariance's rows; got {sizes!r}."
        )
    return int(d[0]), int(d[1]), int(d[2])


def check_covariance(cov: Any, total: int, *, name: str = "cov") -> np.ndarray:
    """Validate a covariance: (total, total), finite, symmetric, positive definite.

    Returns it as float64, exactly symmetrised. Raises InputError naming ``name``.
    """
    try:
        c = np.asarray(cov, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"'{name}' must be a numeric (D, D) array; {exc}") from exc
    if c.shape != (total, total):
        raise InputError(
            f"'{name}' must have shape ({total}, {total}) (the sum of 'sizes'); got {c.shape}."
        )
    if not np.isfinite(c).all():
        raise InputError(f"'{name}' must be finite; it holds NaN or inf.")
    scale = float(np.max(np.abs(c))) or 1.0
    asym = float(np.max(np.abs(c - c.T)))
    if asym > _SYM_RTOL * scale:
        raise InputError(
            f"'{name}' must be symmetric; got max |cov - cov.T| = {asym:.3g} "
            f"(allowed: {_SYM_RTOL:g} x the largest entry)."
        )
    c = 0.5 * (c + c.T)
    try:
        np.linalg.cholesky(c)
    except np.linalg.LinAlgError:
        low = float(np.linalg.eigvalsh(c)[0])
        raise InputError(
            f"'{name}' must be positive definite; its smallest eigenvalue is {low:.3g}. A "
            "singular covariance (a constant or duplicated column, or one variable a linear "
            "function of the others) has infinite or undefined Gaussian information."
        ) from None
    return c


def gaussian_pid(
    cov: Any,
    sizes: Any,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> GaussianPID:
    """The ~G-PID of a jointly Gaussian (X1, X2, Y) from its covariance, in bits.

    Parameters
    ----------
    cov : (D, D) covariance of the stacked vector (X1, X2, Y), D = d1 + d2 + dy; symmetric
        positive definite. Means do not matter.
    sizes : (d1, d2, dy), the block sizes, in that order (sources first, target last).
    tol : certified gap, bits, at which the union-information solver stops.
    max_iter : most Newton steps.

    Returns
    -------
    GaussianPID (bits) with the optimiser's convergence information. A solve that stops
    above ``tol`` warns (ConvergenceWarning) and sets ``converged=False``.

    Raises
    ------
    InputError : wrong shape, NaN/inf, asymmetric or not positive definite ``cov``; bad
        ``sizes``, ``tol`` or ``max_iter``.

    Examples
    --------
    Scalar target, X1 = Y + noise (SNR 3), X2 = Y + noise (SNR 1), independent noises:
    R = I(X2;Y) = 0.5 bit, U1 = I(X1;Y) - I(X2;Y) = 0.5 bit, U2 = 0 (Barrett, 2015).

    >>> import numpy as np
    >>> cov = np.array([[4/3, 1.0, 1.0], [1.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    >>> p = gaussian_pid(cov, (1, 1, 1))
    >>> [round(v, 6) for v in (p.redundancy, p.unique_1, p.synergy)]
    [0.5, 0.5, 0.160964]
    >>> abs(p.unique_2) < 1e-9, p.converged
    (True, True)
    """
    d1, d2, dy = _check_sizes(sizes)
    c = check_covariance(cov, d1 + d2 + dy)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not (0 < tol < math.inf):
        raise InputError(f"'tol' must be a positive finite number of bits; got {tol!r}.")
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise InputError(f"'max_iter' must be an int >= 1; got {max_iter!r}.")
    out = _gaussian_pid(c, d1, d2, dy, tol=float(tol), max_iter=int(max_iter))
    if not out.converged:
        warnings.warn(
            f"The Gaussian union-information solver stopped after {out.iterations} Newton "
            f"steps with a certified gap of {out.gap:.2e} bits (tol {tol:g}); every atom is "
            "within that gap. The optimum may lie on the boundary (a source whose noise is a "
            "copy of the other's); increase 'max_iter' or loosen 'tol'.",
            ConvergenceWarning,
            stacklevel=2,
        )
    return out


def gaussian_mi(cov: Any, sizes: Any) -> tuple[float, float, float]:
    """I(X1;Y), I(X2;Y) and I(X1,X2;Y) of a jointly Gaussian (X1, X2, Y), in bits.

    Same ``cov`` and ``sizes`` as :func:`gaussian_pid`.

    >>> import numpy as np
    >>> [round(v, 6) for v in gaussian_mi(np.eye(3) + 1.0, (1, 1, 1))]
    [0.207519, 0.207519, 0.292481]
    """
    d1, d2, dy = _check_sizes(sizes)
    c = check_covariance(cov, d1 + d2 + dy)
    i1, i2, i12 = _mutual_informations(c, d1, d2, dy)
    return i1 / LN2, i2 / LN2, i12 / LN2


# ---------------------------------------------------------------------------- computation
def _logdet(s: np.ndarray) -> float:
    """ln det of a symmetric positive definite matrix (LinAlgError when it is not)."""
    return 2.0 * float(np.sum(np.log(np.diag(np.linalg.cholesky(s)))))


def _mutual_informations(c: np.ndarray, d1: int, d2: int, dy: int) -> tuple[float, float, float]:
    """I(X1;Y), I(X2;Y), I(X1,X2;Y) in nats, from log-determinants of blocks of ``c``."""
    a, b = d1, d1 + d2
    y = slice(b, None)
    ld_y = _logdet(c[y, y])
    ld_1 = _logdet(c[:a, :a])
    ld_2 = _logdet(c[a:b, a:b])
    ld_x = _logdet(c[:b, :b])
    idx1 = np.r_[0:a, b : b + dy]
    idx2 = np.r_[a:b, b : b + dy]
    ld_1y = _logdet(c[np.ix_(idx1, idx1)])
    ld_2y = _logdet(c[np.ix_(idx2, idx2)])
    ld_all = _logdet(c)
    return (
        0.5 * (ld_1 + ld_y - ld_1y),
        0.5 * (ld_2 + ld_y - ld_2y),
        0.5 * (ld_x + ld_y - ld_all),
    )


def channel_form(c: np.ndarray, d1: int, d2: int, dy: int) -> tuple[np.ndarray, np.ndarray]:
    """Gains ``H1`` (d1, dy) and ``H2`` (d2, dy) with Y standardised and each noise whitened.

    Y = Ly Y' (Cholesky), Xi = Gi Y' + Ni with Gi = cov(Xi, Y) Ly^-T and noise covariance
    Ki = cov(Xi) - Gi Gi^T = Li Li^T; Hi = Li^-1 Gi. Whitening with any square root is an
    invertible map within a source, which leaves the PID unchanged.
    """
    a, b = d1, d1 + d2
    ly = np.linalg.cholesky(c[b:, b:])
    hs = []
    for lo, hi in ((0, a), (a, b)):
        g = sla.solve_triangular(ly, c[b:, lo:hi], lower=True).T  # cov(Xi, Y) Ly^-T
        k = c[lo:hi, lo:hi] - g @ g.T
        li = np.linalg.cholesky(0.5 * (k + k.T))
        hs.append(sla.solve_triangular(li, g, lower=True))
    return hs[0], hs[1]


class _Union:
    """f(K) = I_K(X1,X2;Y) (nats) and the barrier objectives F_mu = f - mu ln det C(K).

    ``f = 1/2 ln det A - 1/2 ln det C`` with ``A = C + H H^T``, so ``F_mu = 1/2 ln det A -
    w/2 ln det C`` with ``w = 1 + 2 mu``: one formula for the gradient and Hessian of both.
    """

    def __init__(self, h1: np.ndarray, h2: np.ndarray) -> None:
        self.d1, self.d2 = h1.shape[0], h2.shape[0]
        h = np.vstack([h1, h2])
        self.hh = h @ h.T

    def coupling_matrix(self, k: np.ndarray) -> np.ndarray:
        d1 = self.d1
        c = np.eye(d1 + self.d2)
        c[:d1, d1:] = k
        c[d1:, :d1] = k.T
        return c

    def parts(self, k: np.ndarray) -> tuple[float, float, np.ndarray, np.ndarray] | None:
        """(1/2 ln det A, 1/2 ln det C, A^-1, C^-1) at K; None outside the open ball."""
        c = self.coupling_matrix(k)
        try:
            lc = np.linalg.cholesky(c)
            la_ = np.linalg.cholesky(c + self.hh)
        except np.linalg.LinAlgError:
            return None
        eye = np.eye(c.shape[0])
        return (
            float(np.sum(np.log(np.diag(la_)))),
            float(np.sum(np.log(np.diag(lc)))),
            sla.cho_solve((la_, True), eye),
            sla.cho_solve((lc, True), eye),
        )

    def gradient(self, ai: np.ndarray, ci: np.ndarray, w: float = 1.0) -> np.ndarray:
        """(d1, d2) gradient of F: ``[A^-1]_12 - w [C^-1]_12``."""
        d1 = self.d1
        return ai[:d1, d1:] - w * ci[:d1, d1:]

    def hessian(self, ai: np.ndarray, ci: np.ndarray, w: float = 1.0) -> np.ndarray:
        """(d1 d2, d1 d2) Hessian of F in the row-major vectorisation of K."""
        d1, d2 = self.d1, self.d2
        n = d1 * d2
        out = np.zeros((n, n))
        for inv, sign in ((ci, w), (ai, -1.0)):
            p, q, r = inv[:d1, :d1], inv[:d1, d1:], inv[d1:, d1:]
            # the second derivative of 1/2 ln det M(K) along E, E' is
            # -(tr(P E R E'^T) + tr(Q E^T Q E'^T)) with M^-1 = [[P, Q], [Q^T, R]]
            out += sign * np.kron(p, r)
            out += sign * np.einsum("kj,il->klij", q, q).reshape(n, n)
        return 0.5 * (out + out.T)


def _fw_gap(grad: np.ndarray, k: np.ndarray) -> float:
    """Certified bound on f(K) - min f over ||K|| <= 1, for convex f: <g, K> + ||g||_*."""
    nuc = float(np.sum(np.linalg.svd(grad, compute_uv=False)))
    return max(float(np.sum(grad * k)) + nuc, 0.0)


def _newton_step(hess: np.ndarray, g: np.ndarray) -> np.ndarray:
    """Solve hess @ step = -g, adding the least damping that makes hess factorise."""
    damping = 0.0
    scale = float(np.max(np.abs(np.diag(hess)))) or 1.0
    eye = np.eye(len(g))
    while True:
        try:
            lh = np.linalg.cholesky(hess + damping * eye)
        except np.linalg.LinAlgError:
            damping = max(10.0 * damping, 1e-12 * scale)
            continue
        return -sla.cho_solve((lh, True), g)


def _polish(
    prob: _Union, k: np.ndarray, cur: Any, gap: float, tol_nats: float, budget: int
) -> tuple[np.ndarray, Any, float, int]:
    """Plain Newton steps on f itself (mu = 0), kept only while they shrink the gap.

    On the barrier path the gap is about mu for any optimum; near an interior optimum plain
    Newton steps close it quadratically. Near a boundary optimum they leave the ball or stop
    shrinking the gap, and are dropped. Returns (K, parts, gap, steps taken).
    """
    used = 0
    while used < budget and gap > tol_nats:
        g = prob.gradient(cur[2], cur[3]).ravel()
        trial_k = k + _newton_step(prob.hessian(cur[2], cur[3]), g).reshape(k.shape)
        trial = prob.parts(trial_k)
        if trial is None:
            break
        trial_gap = _fw_gap(prob.gradient(trial[2], trial[3]), trial_k)
        if trial_gap >= gap:
            break
        used += 1
        gap, k, cur = trial_gap, trial_k, trial
    return k, cur, gap, used


def _minimise_union(
    h1: np.ndarray, h2: np.ndarray, *, tol: float, max_iter: int
) -> tuple[float, np.ndarray, int, bool, float]:
    """min over ||K|| <= 1 of f(K); returns (f nats, K, Newton steps, converged, gap bits).

    Path following: Newton's method on ``F_mu = f - mu ln det C(K)`` for mu = 1, 1e-1, ...,
    each from the previous minimiser, until the Frank-Wolfe gap of f itself is below ``tol``.
    The barrier keeps K strictly inside the ball; the optimum of f often lies on its boundary
    (a combination of X1 coupled to be a copy of one of X2), where f stays finite.
    """
    prob = _Union(h1, h2)
    k = np.zeros((prob.d1, prob.d2))
    cur = prob.parts(k)
    if cur is None:  # cannot happen: at K = 0, C = I and A = I + H H^T
        raise RuntimeError("internal error: the independent coupling K = 0 is not feasible")
    tol_nats = tol * LN2
    steps = 0
    mu = _MU_START
    gap = math.inf
    best: tuple[float, np.ndarray, Any] = (math.inf, k, cur)
    stalled = 0
    while True:
        w = 1.0 + 2.0 * mu
        # centre on F_mu only as closely as the next stage needs (short-step path following);
        # the certificate of f itself is checked at every step
        centred = max(min(_INNER_TOL, (0.1 * tol_nats) ** 2), (_CENTRING * mu) ** 2)
        for _ in range(_INNER_MAX):
            lda, ldc, ai, ci = cur
            gap = _fw_gap(prob.gradient(ai, ci), k)
            if gap <= tol_nats or steps >= max_iter:
                break
            big_f = lda - w * ldc
            g = prob.gradient(ai, ci, w).ravel()
            step = _newton_step(prob.hessian(ai, ci, w), g)
            dec = -float(g @ step)  # squared Newton decrement of F_mu
            if dec <= centred:
                break
            steps += 1
            t = 1.0
            feasible: tuple[float, Any] | None = None  # the longest feasible step tried
            for _ in range(_MAX_HALVINGS):
                trial = prob.parts(k + t * step.reshape(k.shape))
                if trial is not None:
                    if trial[0] - w * trial[1] <= big_f - _ARMIJO * t * dec:
                        break
                    if feasible is None:
                        feasible = (t, trial)
                t *= 0.5
            else:
                # No decrease resolvable in float64: near the boundary F is a difference of
                # two large log-determinants. Close to the optimum (small decrement) Newton's
                # local convergence is trusted instead, and the certified gap decides.
                if feasible is None or dec > _FLAT:
                    break
                t, trial = feasible
                k = k + t * step.reshape(k.shape)
                cur = trial
                break  # one such step per stage
            k = k + t * step.reshape(k.shape)
            cur = trial
        if gap <= tol_nats or steps >= max_iter or mu < _MU_MIN:
            break
        if gap < _POLISH_FROM:
            k, cur, gap, used = _polish(prob, k, cur, gap, tol_nats, min(_POLISH, max_iter - steps))
            steps += used
            if gap <= tol_nats:
                break
        # an optimum on the boundary is approached at a distance (and gap) of about mu, until
        # float64 cannot resolve the log-determinants (gaps of 1e-7 to 1e-6 bits): stop when
        # stages stop improving the gap
        # a stall: the gap no longer follows mu down (early on, with a nearly flat f, the
        # barrier alone holds K still; that is not a stall)
        stuck = gap > _STALL_RATIO * best[0] and mu < _STALL_MU * gap
        stalled = stalled + 1 if stuck else 0
        if gap < best[0]:
            best = (gap, k, cur)
        if stalled >= _STALL_STAGES:
            break
        mu *= _MU_FACTOR
    if best[0] < gap:  # a stalled path can end worse than it was: keep the best point
        gap, k, cur = best
    k, cur, gap, used = _polish(prob, k, cur, gap, tol_nats, min(_POLISH, max_iter - steps))
    steps += used
    f = cur[0] - cur[1]
    gap_bits = gap / LN2
    return f, k, steps, gap_bits <= tol, gap_bits


def _gaussian_pid(
    c: np.ndarray, d1: int, d2: int, dy: int, *, tol: float = DEFAULT_TOL,
    max_iter: int = DEFAULT_MAX_ITER,
) -> GaussianPID:
    """The twin of :func:`gaussian_pid`; ``c`` validated (symmetric positive definite)."""
    i1, i2, i12 = _mutual_informations(c, d1, d2, dy)
    h1, h2 = channel_form(c, d1, d2, dy)
    union, k, it, converged, gap = _minimise_union(h1, h2, tol=tol, max_iter=max_iter)
    return pid_from_informations(
        i1 / LN2, i2 / LN2, i12 / LN2, union / LN2,
        coupling=k, iterations=it, converged=converged, gap=gap,
    )


def pid_from_informations(
    i1: float, i2: float, i12: float, union: float, *, coupling: np.ndarray,
    iterations: int, converged: bool, gap: float,
) -> GaussianPID:
    """Atoms from I(X1;Y), I(X2;Y), I(X1,X2;Y) and the union information (all bits)."""
    return GaussianPID(
        redundancy=i1 + i2 - union,
        unique_1=union - i2,
        unique_2=union - i1,
        synergy=i12 - union,
        mutual_information=i12,
        mi_1=i1,
        mi_2=i2,
        union_information=union,
        coupling=coupling,
        method="gaussian",
        iterations=iterations,
        converged=converged,
        gap=gap,
    )
