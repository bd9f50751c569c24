"""The three LAPACK/BLAS routines the compiled solver calls, bound for numba.

scipy ships them (`scipy.linalg.cython_lapack`, `cython_blas`); their addresses are
registered with LLVM under fixed names, so that numba can call them from nopython code
and still cache the compiled functions on disk (a ctypes pointer would prevent that).

All three follow Fortran conventions. A C-ordered (n, n) buffer is the transpose of the
Fortran matrix, so with `uplo = "U"` they read and write the buffer's lower triangle:
`syrk_lower` fills it with ± Y^T Y, `potrf_lower` factorises it in place and
`potrs_lower` solves with that factor.
"""

from __future__ import annotations

import llvmlite.binding as llvm
import numpy as np
from numba import njit, types
from numba.extending import get_cython_function_address

for _module, _name in (("scipy.linalg.cython_lapack", "dpotrf"),
                       ("scipy.linalg.cython_lapack", "dpotrs"),
                       ("scipy.linalg.cython_blas", "dsyrk")):
    llvm.add_symbol(f"mmpid_{_name}", get_cython_function_address(_module, _name))

_P = types.voidptr
_dpotrf = types.ExternalFunction("mmpid_dpotrf", types.void(_P, _P, _P, _P, _P))
_dpotrs = types.ExternalFunction("mmpid_dpotrs", types.void(_P, _P, _P, _P, _P, _P, _P, _P))
_dsyrk = types.ExternalFunction("mmpid_dsyrk", types.void(_P, _P, _P, _P, _P, _P, _P, _P, _P, _P))
_U = ord("U")
_N = ord("N")


@njit(nogil=True, cache=True)
def syrk_lower(alpha: float, y: np.ndarray, out: np.ndarray) -> None:
    """out's lower triangle = alpha * y^T y, for C-ordered y (k, n) and out (n, n)."""
    k, n = y.shape
    chars = np.array([_U, _N], dtype=np.uint8)
    dims = np.array([n, k], dtype=np.int32)
    coef = np.array([alpha, 0.0])
    _dsyrk(chars[0:].ctypes, chars[1:].ctypes, dims[0:].ctypes, dims[1:].ctypes,
           coef[0:].ctypes, y.ctypes, dims[0:].ctypes, coef[1:].ctypes, out.ctypes,
           dims[0:].ctypes)


@njit(nogil=True, cache=True)
def potrf_lower(a: np.ndarray) -> int:
    """Cholesky factorisation in place of the C-ordered (n, n) a, reading its lower
    triangle; returns LAPACK's info (0 on success, > 0 when a is not positive definite)."""
    chars = np.array([_U], dtype=np.uint8)
    dims = np.array([a.shape[0], 0], dtype=np.int32)
    _dpotrf(chars.ctypes, dims[0:].ctypes, a.ctypes, dims[0:].ctypes, dims[1:].ctypes)
    return int(dims[1])


@njit(nogil=True, cache=True)
def potrs_lower(factor: np.ndarray, b: np.ndarray) -> None:
    """Solve in place a x = b (n,) with a's factor from `potrf_lower`."""
    chars = np.array([_U], dtype=np.uint8)
    dims = np.array([factor.shape[0], 1, 0], dtype=np.int32)
    _dpotrs(chars.ctypes, dims[0:].ctypes, dims[1:].ctypes, factor.ctypes, dims[0:].ctypes,
            b.ctypes, dims[0:].ctypes, dims[2:].ctypes)
