"""The handful of array operations the solvers need, for numpy and for torch.

Both solvers are written once against an `Ops` object; `get_ops("numpy")` or
`get_ops("torch", device=...)` supplies the arrays' library. torch is imported only
when the torch backend is asked for, so `import mmpid.pid` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmpid.errors import InputError

BACKENDS = ("numpy", "torch")

# A finite stand-in for log(0): masked log-probabilities and dual variables take this
# value, so sums of two masked entries stay finite and exp() of them is exactly 0.
NEG = -1e100


@dataclass(frozen=True)
class Ops:
    """Array operations shared by the numpy and torch solver paths."""

    name: str
    xp: Any  # the numpy or torch module
    device: Any = None

    # --- creation and conversion -------------------------------------------------
    def asarray(self, x: Any) -> Any:
        if self.name == "numpy":
            return np.asarray(x, dtype=np.float64)
        if isinstance(x, self.xp.Tensor):
            return x.to(device=self.device, dtype=self.xp.float64)
        return self.xp.as_tensor(np.asarray(x, dtype=np.float64), device=self.device)

    def to_numpy(self, x: Any) -> np.ndarray:
        if self.name == "numpy":
            return np.asarray(x)
        return x.detach().cpu().numpy()

    def zeros(self, shape: tuple[int, ...]) -> Any:
        if self.name == "numpy":
            return np.zeros(shape)
        return self.xp.zeros(shape, dtype=self.xp.float64, device=self.device)

    def full(self, shape: tuple[int, ...], value: float) -> Any:
        if self.name == "numpy":
            return np.full(shape, value, dtype=np.float64)
        return self.xp.full(shape, value, dtype=self.xp.float64, device=self.device)

    def eye(self, n: int) -> Any:
        if self.name == "numpy":
            return np.eye(n)
        return self.xp.eye(n, dtype=self.xp.float64, device=self.device)

    def arange(self, n: int) -> Any:
        if self.name == "numpy":
            return np.arange(n)
        return self.xp.arange(n, device=self.device)

    def int_zeros(self, n: int) -> Any:
        """(n,) int64 zeros (counters)."""
        if self.name == "numpy":
            return np.zeros(n, dtype=np.int64)
        return self.xp.zeros(n, dtype=self.xp.int64, device=self.device)

    def bool_zeros(self, n: int) -> Any:
        """(n,) False (flags)."""
        if self.name == "numpy":
            return np.zeros(n, dtype=bool)
        return self.xp.zeros(n, dtype=self.xp.bool, device=self.device)

    def astype_float(self, x: Any) -> Any:
        if self.name == "numpy":
            return x.astype(np.float64)
        return x.to(self.xp.float64)

    # --- elementwise ---------------------------------------------------------------
    def where(self, cond: Any, a: Any, b: Any) -> Any:
        if self.name == "numpy":
            return np.where(cond, a, b)
        xp = self.xp
        a = a if isinstance(a, xp.Tensor) else xp.tensor(a, dtype=xp.float64, device=self.device)
        b = b if isinstance(b, xp.Tensor) else xp.tensor(b, dtype=xp.float64, device=self.device)
        return xp.where(cond, a, b)

    def exp(self, x: Any) -> Any:
        return self.xp.exp(x)

    def log(self, x: Any) -> Any:
        return self.xp.log(x)

    def safe_log(self, x: Any) -> Any:
        """log(x) where x > 0 and NEG elsewhere, with no warnings."""
        pos = x > 0
        return self.where(pos, self.xp.log(self.where(pos, x, 1.0)), NEG)

    def xlogx(self, x: Any) -> Any:
        """x log x with 0 log 0 = 0 (natural log)."""
        pos = x > 0
        return self.where(pos, x * self.xp.log(self.where(pos, x, 1.0)), 0.0)

    def maximum(self, a: Any, b: Any) -> Any:
        if self.name == "numpy":
            return np.maximum(a, b)
        b = b if isinstance(b, self.xp.Tensor) else self.xp.tensor(b, dtype=a.dtype, device=a.device)
        return self.xp.maximum(a, b)

    def minimum(self, a: Any, b: Any) -> Any:
        if self.name == "numpy":
            return np.minimum(a, b)
        b = b if isinstance(b, self.xp.Tensor) else self.xp.tensor(b, dtype=a.dtype, device=a.device)
        return self.xp.minimum(a, b)

    def abs(self, x: Any) -> Any:
        return self.xp.abs(x)

    # --- reductions ----------------------------------------------------------------
    def sum(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        if self.name == "numpy":
            return np.sum(x, axis=axis, keepdims=keepdims)
        if axis is None:
            return x.sum()
        return x.sum(dim=axis, keepdim=keepdims)

    def max(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        if self.name == "numpy":
            return np.max(x, axis=axis, keepdims=keepdims)
        if axis is None:
            return x.max()
        return self.xp.amax(x, dim=axis, keepdim=keepdims)

    def min(self, x: Any, axis: Any = None, keepdims: bool = False) -> Any:
        if self.name == "numpy":
            return np.min(x, axis=axis, keepdims=keepdims)
        if axis is None:
            return x.min()
        return self.xp.amin(x, dim=axis, keepdim=keepdims)

    def any(self, x: Any, axis: Any = None) -> Any:
        if self.name == "numpy":
            return np.any(x, axis=axis)
        return x.any() if axis is None else x.any(dim=axis)

    def argmax(self, x: Any, axis: int) -> Any:
        if self.name == "numpy":
            return np.argmax(x, axis=axis)
        return self.xp.argmax(x, dim=axis)

    def logsumexp(self, x: Any, axis: int, keepdims: bool = False) -> Any:
        """log Σ exp(x) along `axis`; entries equal to NEG count as exp(NEG) = 0."""
        m = self.max(x, axis=axis, keepdims=True)
        out = m + self.log(self.sum(self.exp(x - m), axis=axis, keepdims=True))
        if not keepdims:
            out = out.squeeze(axis) if self.name == "torch" else np.squeeze(out, axis=axis)
        return out

    # --- linear algebra --------------------------------------------------------------
    def einsum(self, spec: str, *args: Any) -> Any:
        if self.name == "numpy":
            return np.einsum(spec, *args, optimize=True)
        return self.xp.einsum(spec, *args)

    def permute(self, x: Any, axes: tuple[int, ...]) -> Any:
        if self.name == "numpy":
            return np.transpose(x, axes)
        return x.permute(*axes)

    def matmul(self, a: Any, b: Any) -> Any:
        return a @ b

    def factor_pd(self, a: Any) -> tuple[str, Any]:
        """Factorise a stack of symmetric positive definite matrices (..., n, n), of
        which only the lower triangles are read.

        Cholesky when every matrix of the stack admits it, LU otherwise (nearly
        singular stacks); numpy's LU keeps the matrices and factorises at each solve.
        """
        if self.name == "numpy":
            try:
                return ("chol", np.linalg.cholesky(a))
            except np.linalg.LinAlgError:
                low = np.tril(a)
                return ("lu", low + np.swapaxes(np.tril(a, -1), -1, -2))
        xp = self.xp
        chol, info = xp.linalg.cholesky_ex(a)
        if bool((info != 0).any()):
            sym = xp.tril(a) + xp.tril(a, -1).transpose(-1, -2)
            return ("lu", xp.linalg.lu_factor(sym))
        return ("chol", chol)

    def solve_factored(self, fac: tuple[str, Any], b: Any) -> Any:
        """Solve a x = b with a from `factor_pd`; b is (..., n, k)."""
        kind, f = fac
        if self.name == "numpy":
            if kind == "lu":
                return np.linalg.solve(f, b)
            # numpy has no batched triangular solve; LAPACK's potrs per matrix costs
            # O(n^2) each, far below a second batched factorisation.
            from scipy.linalg.lapack import dpotrs

            lf = f.reshape(-1, *f.shape[-2:])
            bf = b.reshape(-1, *b.shape[-2:])
            out = np.empty_like(bf)
            for i in range(lf.shape[0]):
                out[i] = dpotrs(lf[i], bf[i], lower=1)[0]
            return out.reshape(b.shape)
        if kind == "chol":
            return self.xp.cholesky_solve(b, f)
        return self.xp.linalg.lu_solve(*f, b)

    def inv_cholesky(self, a: Any) -> Any:
        """L^-1 for a = L L^T, a stack of small symmetric positive definite (..., n, n)
        matrices (an LU inverse of a's Cholesky factor); None when some matrix of the
        stack is not numerically positive definite."""
        if self.name == "numpy":
            try:
                return np.linalg.inv(np.linalg.cholesky(a))
            except np.linalg.LinAlgError:
                return None
        chol, info = self.xp.linalg.cholesky_ex(a)
        if bool((info != 0).any()):
            return None
        return self.xp.linalg.inv(chol)

    def gram(self, y: Any) -> Any:
        """y^T y for a stack y (B, k, n), shape (B, n, n). numpy fills only the lower
        triangle (BLAS syrk per matrix, half the flops of a general product): pass the
        result to `factor_pd`, which reads only that triangle."""
        if self.name == "numpy":
            from scipy.linalg.blas import dsyrk

            out = np.empty((y.shape[0], y.shape[2], y.shape[2]))
            for i in range(y.shape[0]):
                out[i] = dsyrk(1.0, y[i], trans=1, lower=1)
            return out
        return self.permute(y, (0, 2, 1)) @ y

    def solve_pd(self, a: Any, b: Any) -> Any:
        """Solve a x = b for a stack of symmetric positive definite `a` (..., n, n)."""
        if self.name == "numpy":
            # one batched LU (a gufunc): for many small systems a Python loop of
            # triangular solves would cost more than the factorisation
            return np.linalg.solve(a, b)
        return self.solve_factored(self.factor_pd(a), b)

    def diag_embed(self, x: Any) -> Any:
        """(..., n) -> (..., n, n) with x on the diagonal."""
        if self.name == "numpy":
            n = x.shape[-1]
            out = np.zeros(x.shape + (n,), dtype=x.dtype)
            idx = np.arange(n)
            out[..., idx, idx] = x
            return out
        return self.xp.diag_embed(x)

    def diag_view(self, x: Any, dim1: int, dim2: int) -> Any:
        """A writeable view of the diagonal over axes dim1 and dim2 (equal lengths),
        that axis moved last, as torch.diagonal does; in-place updates reach x."""
        if self.name == "numpy":
            nd = x.ndim
            d1, d2 = dim1 % nd, dim2 % nd
            letters = "abcdefghijklmnopqrstuvwxy"[:nd]
            src = "".join("z" if k in (d1, d2) else letters[k] for k in range(nd))
            dst = "".join(letters[k] for k in range(nd) if k not in (d1, d2)) + "z"
            return np.einsum(f"{src}->{dst}", x)
        return self.xp.diagonal(x, dim1=dim1, dim2=dim2)

    def diagonal(self, x: Any) -> Any:
        if self.name == "numpy":
            return np.diagonal(x, axis1=-2, axis2=-1)
        return self.xp.diagonal(x, dim1=-2, dim2=-1)


def get_ops(backend: str = "numpy", device: Any = None) -> Ops:
    """Return the operation namespace for `backend` ("numpy" or "torch")."""
    if backend == "numpy":
        if device not in (None, "cpu"):
            raise InputError(
                f"The 'device' parameter needs backend='torch'; got device={device!r} "
                "with backend='numpy'. Pass backend='torch' or leave device=None."
            )
        return Ops("numpy", np)
    if backend == "torch":
        try:
            import torch
        except ImportError as exc:  # pragma: no cover - torch is a dependency
            raise InputError(
                "backend='torch' needs PyTorch; install it with `pip install torch`."
            ) from exc
        dev = torch.device(device if device is not None else "cpu")
        return Ops("torch", torch, dev)
    raise InputError(
        f"The 'backend' parameter must be one of {BACKENDS}; got {backend!r} instead."
    )
