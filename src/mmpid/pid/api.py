"""`decompose` and `decompose_many`: validate at the door, then solve in a private twin."""

from __future__ import annotations

import functools
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from mmpid.errors import ConvergenceWarning, InputError, OptionError
from mmpid.pid import _primal_dual
from mmpid.pid._backend import get_ops
from mmpid.pid._exact import CENTRED_RETRY, ExactOut, solve_exact
from mmpid.pid._ipfp import solve_ipfp
from mmpid.pid._primal_dual import solve_primal_dual
from mmpid.pid._problem import make_problem
from mmpid.pid.measures import source_informations
from mmpid.pid.result import PID, PIDBatch

METHODS = ("exact", "ipfp")
DEFAULTS = {
    # tol: certified gap in bits (exact); relative objective change (ipfp, as the paper).
    "exact": {"tol": 1e-7, "max_iter": 200},
    "ipfp": {"tol": 1e-8, "max_iter": 1000},
}
# Tables per solver call, bounded so the Newton blocks (B n1 n2 ny^2 floats) stay ~8 MB
# (small blocks stay in cache; measured faster than ~100 MB ones).
_BLOCK_FLOATS = 1_000_000
# Alternations of the IPFP fallback for tables the Newton solver cannot certify.
_FALLBACK_ITER = 2000
# numpy stacks are split over threads, each with at least this many tables.
_MIN_PER_WORKER = 32
_MAX_WORKERS = 8
# Below this Schur size (n2 * ny) the numpy path pins BLAS to one thread.
_THREADED_SCHUR = 500
# MMPID_JIT=0 turns the compiled (numba) primal-dual pass off: numpy then runs the
# vectorised one, as torch always does.
JIT_ENV = "MMPID_JIT"


def _check_options(method: str, tol: float | None, max_iter: int | None) -> tuple[float, int]:
    if method not in METHODS:
        raise OptionError("method", method, f"one of {list(METHODS)}")
    tol = DEFAULTS[method]["tol"] if tol is None else tol
    max_iter = DEFAULTS[method]["max_iter"] if max_iter is None else max_iter
    if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
        raise OptionError("tol", tol, "a positive finite number")
    if not (isinstance(max_iter, (int, np.integer)) and max_iter >= 1):
        raise OptionError("max_iter", max_iter, "an int >= 1")
    return float(tol), int(max_iter)


def _as_numpy(x: Any) -> np.ndarray:
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu().numpy()
    if np.iscomplexobj(x):
        raise InputError(
            "The 'p' parameter must be a real array of probabilities or counts; got a complex "
            "array (its imaginary part would be dropped). Pass p.real if that is what you mean."
        )
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"The 'p' parameter must be a numeric array; got {type(x).__name__}: {exc}"
        ) from exc


def _validate_tables(P: np.ndarray, name: str, batched: bool) -> np.ndarray:
    """Check rank, finiteness, sign and totals; return the tables normalised."""
    want = 4 if batched else 3
    shape_txt = "(B, n1, n2, ny)" if batched else "(n1, n2, ny)"
    if P.ndim != want:
        raise InputError(f"The '{name}' parameter must have shape {shape_txt} ({want} axes); "
                         f"got shape {P.shape}.")
    if 0 in P.shape:
        raise InputError(f"The '{name}' parameter must have no empty axis; got shape {P.shape}.")
    bad = ~np.isfinite(P)
    if bad.any():
        idx = tuple(int(i) for i in np.argwhere(bad)[0])
        raise InputError(f"The '{name}' parameter must be finite; got {P[idx]} (NaN/inf) at "
                         f"index {idx}.")
    if (P < 0).any():
        idx = tuple(int(i) for i in np.argwhere(P < 0)[0])
        raise InputError(f"The '{name}' parameter must be non-negative; got {P[idx]} at index "
                         f"{idx}.")
    tot = P.reshape(P.shape[0], -1).sum(axis=1) if batched else np.array([P.sum()])
    if (tot <= 0).any():
        which = f"table {int(np.argmin(tot > 0))} of '{name}'" if batched else f"'{name}'"
        raise InputError(f"{which} sums to 0; a joint table needs a positive total "
                         "(probabilities or counts).")
    if batched:
        return P / tot[:, None, None, None]
    return P / tot[0]


def decompose(p: Any, *, method: str = "exact", tol: float | None = None,
              max_iter: int | None = None) -> PID:
    """BROJA partial information decomposition of one joint table, in bits.

    Parameters
    ----------
    p : array-like (n1, n2, ny), non-negative: p(x1, x2, y), or counts (normalised here).
        Axes 0 and 1 are the sources, axis 2 the target.
    method : "exact" (certified primal-dual interior-point solver) or "ipfp" (the paper's solver).
    tol : "exact": the certified gap to reach, bits (default 1e-7). "ipfp": relative
        objective change that stops it (default 1e-8, as in the paper).
    max_iter : Newton steps ("exact", default 200) or outer alternations ("ipfp", 1000).

    Returns
    -------
    PID with the four atoms and I(X1,X2;Y) in bits and the solver's diagnostics.

    Examples
    --------
    >>> import numpy as np
    >>> p = np.zeros((2, 2, 2))
    >>> for a in (0, 1):
    ...     for b in (0, 1):
    ...         p[a, b, a & b] += 0.25
    >>> pid = decompose(p)                  # AND gate
    >>> round(pid.redundancy, 6), round(pid.synergy, 6)
    (0.311278, 0.5)
    """
    P = _validate_tables(_as_numpy(p), "p", batched=False)
    tol, max_iter = _check_options(method, tol, max_iter)
    batch = _decompose_many(P[None], method=method, tol=tol, max_iter=max_iter,
                            backend="numpy", device=None)
    return batch[0]


def decompose_many(P: Any, *, method: str = "exact", backend: str = "numpy", device: Any = None,
                   tol: float | None = None, max_iter: int | None = None) -> PIDBatch:
    """BROJA PIDs of a stack of joint tables, solved together (vectorised), in bits.

    Parameters
    ----------
    P : array-like or torch tensor (B, n1, n2, ny), non-negative; each table is
        normalised on its own. Padding with zero rows/columns (absent symbols) is fine.
    method, tol, max_iter : as in `decompose`.
    backend : "numpy" or "torch" (float64; `device` picks the torch device, e.g. "cuda").

    Returns
    -------
    PIDBatch whose fields are arrays of shape (B,); `result[i]` equals
    `decompose(P[i], ...)`.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> batch = decompose_many(rng.dirichlet(np.ones(27), size=5).reshape(5, 3, 3, 3))
    >>> len(batch), bool(batch.converged.all())
    (5, True)
    """
    Pn = _validate_tables(_as_numpy(P), "P", batched=True)
    tol, max_iter = _check_options(method, tol, max_iter)
    get_ops(backend, device)  # validates backend/device before any work
    return _decompose_many(Pn, method=method, tol=tol, max_iter=max_iter, backend=backend,
                           device=device)


def _decompose_many(P: np.ndarray, *, method: str, tol: float, max_iter: int, backend: str,
                    device: Any) -> PIDBatch:
    """Solve normalised, validated tables P (B, n1, n2, ny); prior validation assumed."""
    B, n1, n2, ny = P.shape
    if backend == "numpy" and (min(n1, n2) * ny < _THREADED_SCHUR or _workers(backend, B) > 1):
        # Stacks of small matrices go through LAPACK/BLAS one at a time; threaded
        # OpenBLAS only adds overhead there (10x slower on a busy machine). With one worker
        # thread per core, a threaded BLAS inside each would oversubscribe the cores (301
        # tables of 32x32x16: 78 ms a table threaded, against 42 ms solved one by one).
        with _blas_controller().limit(limits=1, user_api="blas"):
            return _solve_stack(P, method=method, tol=tol, max_iter=max_iter, backend=backend,
                                device=device)
    return _solve_stack(P, method=method, tol=tol, max_iter=max_iter, backend=backend,
                        device=device)


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """threadpoolctl's view of the loaded BLAS libraries (numpy's and scipy's), made once:
    finding them reads the process's memory map, about 2 ms, too slow for every call."""
    import scipy.linalg  # noqa: F401 - loads scipy's BLAS, which the solvers call
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def _fallback(ops: Any, prob: Any, out: Any, *, tol: float, max_iter: int) -> Any:
    """Tables the primal-dual pass left uncertified: solve them with the barrier
    method, again with a looser centring threshold, then run the alternating (IPFP)
    solver on those still uncertified until its own certificate reaches tol (or
    _FALLBACK_ITER alternations), keeping the better certificate each time.

    Rare (degenerate sparse tables, with q* = 0 on some pairs whose constraint is also
    tight); the barrier's Newton steps are added to the table's iterations (Newton steps
    too), the IPFP alternations counted apart, in `fallback_rounds`.
    """
    out = _keep_better(ops, prob, out, tol, lambda sub: solve_exact(
        ops, sub, tol=tol, max_iter=max_iter))
    out = _keep_better(ops, prob, out, tol, lambda sub: solve_exact(
        ops, sub, tol=tol, max_iter=max_iter, centred_at=CENTRED_RETRY))
    return _keep_better(ops, prob, out, tol, lambda sub: solve_ipfp(
        ops, sub, tol=0.0, max_iter=_FALLBACK_ITER, inner_tol=1e-12, inner_max_iter=1000,
        gap_target=tol), counter="fallback_rounds")


def _keep_better(ops: Any, prob: Any, out: Any, tol: float, solve: Any, *,
                 counter: str = "iterations") -> Any:
    """Run `solve` on the stuck, uncertified tables of `out`; keep the better certificate.
    The solver's iterations are added to `out`'s field `counter`."""
    bad = ops.to_numpy(out.stuck & ~out.converged).nonzero()[0]
    if bad.size == 0:
        return out
    idx = ops.asarray(bad).long() if ops.name == "torch" else bad
    alt = solve(prob.take(ops, idx))
    better = alt.gap < out.gap[idx]
    for name in ("i_q", "gap", "marginal_error"):
        cur = getattr(out, name)
        cur[idx] = ops.where(better, getattr(alt, name), cur[idx])
    if getattr(out, counter) is None:
        setattr(out, counter, out.iterations * 0)
    count = getattr(out, counter)
    count[idx] = count[idx] + alt.iterations
    out.converged[idx] = out.gap[idx] <= tol
    out.stuck[idx] = out.stuck[idx] & ~out.converged[idx]
    return out


def use_compiled(backend: str) -> bool:
    """Whether the numpy backend's primal-dual pass runs compiled (numba, table by table)."""
    if backend != "numpy" or os.environ.get(JIT_ENV, "1").strip() == "0":
        return False
    try:
        import numba
    except ImportError:  # pragma: no cover - numba is a dependency
        return False
    # with numba's JIT disabled the kernels would run as (very slow) Python
    return not numba.config.DISABLE_JIT


def _solve_exact(ops: Any, P: np.ndarray, *, tol: float, max_iter: int,
                 compiled: bool) -> ExactOut:
    """The exact solver on the normalised tables P (B, n1, n2, ny): the primal-dual pass,
    compiled table by table or vectorised over the stack, then `_fallback` for the tables
    it leaves uncertified. Tables the compiled pass defers (a Newton block that defeats
    Cholesky) get the vectorised pass, which switches to LU there."""
    if not compiled:
        prob = make_problem(ops, ops.asarray(P))
        out = solve_primal_dual(ops, prob, tol=tol, max_iter=max_iter)
        return _fallback(ops, prob, out, tol=tol, max_iter=max_iter)
    from mmpid.pid import _compiled

    i_q, gap, merr, steps, status = _compiled.solve_tables(
        np.ascontiguousarray(P), tol, max_iter, _primal_dual.MAX_STEPS)
    out = ExactOut(i_q, gap, merr, steps, status == _compiled.CERTIFIED,
                   status == _compiled.UNCERTIFIED)
    deferred = np.flatnonzero(status == _compiled.DEFERRED)
    if deferred.size == 0 and not out.stuck.any():
        return out  # the common case: no vectorised problem to build
    prob = make_problem(ops, ops.asarray(P))
    if deferred.size:
        alt = solve_primal_dual(ops, prob.take(ops, deferred), tol=tol, max_iter=max_iter)
        for name in ("i_q", "gap", "marginal_error", "iterations", "converged", "stuck"):
            getattr(out, name)[deferred] = getattr(alt, name)
    return _fallback(ops, prob, out, tol=tol, max_iter=max_iter)


def _workers(backend: str, B: int) -> int:
    """Threads for a numpy stack: one per available core, at most one per
    _MIN_PER_WORKER tables (the torch backend threads by itself)."""
    if backend != "numpy":
        return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, _MAX_WORKERS, B // _MIN_PER_WORKER))


def _solve_stack(P: np.ndarray, *, method: str, tol: float, max_iter: int, backend: str,
                 device: Any) -> PIDBatch:
    ops = get_ops(backend, device)
    compiled = method == "exact" and use_compiled(backend)
    # I_q*(X1,X2;Y) is symmetric in the two sources, and the exact solver factorises its
    # Newton system on the second source's side (n2 * ny unknowns): give it the smaller
    # source (a 107x24x13 table: 0.03 s instead of 0.75 s). The atoms below are read
    # from P as given. IPFP keeps the order it was given (the paper's algorithm).
    S = np.ascontiguousarray(P.swapaxes(1, 2)) if method == "exact" and P.shape[2] > P.shape[1] else P
    B, n1, n2, ny = S.shape
    chunk = max(1, _BLOCK_FLOATS // (n1 * n2 * ny * ny))
    workers = _workers(backend, B)
    # Each worker takes an even share of the stack (numpy releases the GIL in its
    # array loops and LAPACK calls); tables are solved independently, so the split
    # changes no result.
    chunk = min(chunk, -(-B // workers))

    def solve_chunk(lo: int) -> dict[str, np.ndarray]:
        if method == "exact":
            out = _solve_exact(ops, S[lo:lo + chunk], tol=tol, max_iter=max_iter,
                               compiled=compiled)
        else:
            prob = make_problem(ops, ops.asarray(S[lo:lo + chunk]))
            out = solve_ipfp(ops, prob, tol=tol, max_iter=max_iter, inner_tol=1e-12,
                             inner_max_iter=1000)
        res = {k: ops.to_numpy(getattr(out, k)) for k in
               ("i_q", "gap", "marginal_error", "iterations", "converged")}
        rounds = getattr(out, "fallback_rounds", None)
        res["fallback_rounds"] = (np.zeros(len(res["gap"]), np.int64) if rounds is None
                                  else ops.to_numpy(rounds))
        return res

    starts = range(0, B, chunk)
    if workers > 1:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            outs = list(pool.map(solve_chunk, starts))
    else:
        outs = [solve_chunk(lo) for lo in starts]
    res = {k: np.concatenate([o[k] for o in outs]) for k in outs[0]}
    i1, i2, i12 = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in source_informations(P))
    iq = res["i_q"]
    converged = res["converged"].astype(bool)
    if not converged.all():
        bad = np.flatnonzero(~converged)
        warnings.warn(
            f"The {method!r} PID solver did not converge on {bad.size} of {B} tables "
            f"(first: {bad[:5].tolist()}); their atoms are within `gap` bits of the optimum "
            f"(largest gap {res['gap'][bad].max():.3g}). Increase max_iter (now {max_iter})"
            + (" or use method='exact'." if method == "ipfp" else " or loosen tol."),
            ConvergenceWarning,
            stacklevel=3,
        )
    return PIDBatch(
        redundancy=i1 + i2 - iq,
        unique_1=iq - i2,
        unique_2=iq - i1,
        synergy=i12 - iq,
        mutual_information=i12,
        method=method,
        iterations=res["iterations"].astype(np.int64),
        fallback_rounds=res["fallback_rounds"].astype(np.int64),
        converged=converged,
        gap=res["gap"],
        marginal_error=res["marginal_error"],
    )
