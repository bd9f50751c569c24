"""Shannon measures of joint probability tables, in bits.

Tables may hold counts: every function normalises its input over the table's own
axes. Zero cells are fine (0 log 0 = 0).

>>> import numpy as np
>>> p = np.array([[0.5, 0.0], [0.0, 0.5]])        # X = Y, one fair bit
>>> float(mutual_information(p, x_axes=(0,), y_axes=(1,)))
1.0
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmpid.errors import InputError


def _xlog2x(x: np.ndarray) -> np.ndarray:
    pos = x > 0
    return np.where(pos, x * np.log2(np.where(pos, x, 1.0)), 0.0)


def _normalise(p: np.ndarray, axes: tuple[int, ...], name: str = "p") -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    tot = p.sum(axis=axes, keepdims=True)
    if np.any(tot <= 0):
        raise InputError(f"The '{name}' parameter has a table that sums to {tot.min()}; "
                         "each table needs a positive total.")
    return p / tot


def entropy(p: np.ndarray, *, axes: Sequence[int] | None = None) -> np.ndarray | float:
    """Joint entropy of the variables on `axes`, in bits.

    Parameters
    ----------
    p : array (..., n_1, ..., n_k), a joint table (or counts); leading axes not in
        `axes` are batch axes.
    axes : the axes that are the variables (default: all axes). Other axes are batch.

    Returns
    -------
    float or array of the batch shape: H in bits.
    """
    p = np.asarray(p, dtype=np.float64)
    axes = tuple(range(p.ndim)) if axes is None else tuple(a % p.ndim for a in axes)
    q = _normalise(p, axes)
    h = -_xlog2x(q).sum(axis=axes)
    return float(h) if np.ndim(h) == 0 else h


def _marginal_entropy(q: np.ndarray, var_axes: tuple[int, ...], keep: tuple[int, ...]) -> np.ndarray:
    drop = tuple(a for a in var_axes if a not in keep)
    m = q.sum(axis=drop, keepdims=True) if drop else q
    return -_xlog2x(m).sum(axis=var_axes)


def mutual_information(p: np.ndarray, *, x_axes: Sequence[int], y_axes: Sequence[int],
                       z_axes: Sequence[int] = (), axes: Sequence[int] | None = None
                       ) -> np.ndarray | float:
    """(Conditional) mutual information I(X;Y|Z) in bits between groups of axes.

    Parameters
    ----------
    p : array, a joint table (or counts) over the variables on `axes`; other axes are batch.
    x_axes, y_axes, z_axes : disjoint groups of variable axes; variable axes in none of
        them are marginalised out.
    axes : the variable axes (default: all axes).

    Returns
    -------
    float or array of the batch shape: I(X;Y|Z) in bits.
    """
    p = np.asarray(p, dtype=np.float64)
    var = tuple(range(p.ndim)) if axes is None else tuple(a % p.ndim for a in axes)
    xs, ys, zs = (tuple(a % p.ndim for a in g) for g in (x_axes, y_axes, z_axes))
    groups = xs + ys + zs
    if len(set(groups)) != len(groups) or not set(groups) <= set(var) or not xs or not ys:
        raise InputError(
            f"x_axes={tuple(x_axes)}, y_axes={tuple(y_axes)}, z_axes={tuple(z_axes)} must be "
            f"non-empty (x, y), disjoint groups of the variable axes {var}."
        )
    q = _normalise(p, var)
    h = (_marginal_entropy(q, var, xs + zs) + _marginal_entropy(q, var, ys + zs)
         - _marginal_entropy(q, var, xs + ys + zs))
    if zs:
        h = h - _marginal_entropy(q, var, zs)
    return float(h) if np.ndim(h) == 0 else h


def source_informations(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """I(X1;Y), I(X2;Y) and I(X1,X2;Y) in bits of tables (..., n1, n2, ny).

    Returns three floats for one table, or three arrays of the batch shape.

    >>> import numpy as np
    >>> xor = np.zeros((2, 2, 2))
    >>> for a in (0, 1):
    ...     for b in (0, 1):
    ...         xor[a, b, a ^ b] = 0.25
    >>> [round(float(v), 6) for v in source_informations(xor)]
    [0.0, 0.0, 1.0]
    """
    p = np.asarray(p, dtype=np.float64)
    if p.ndim < 3:
        raise InputError(f"The 'p' parameter must have at least 3 axes (..., n1, n2, ny); "
                         f"got shape {p.shape}.")
    # Each marginal once (the solvers call this for every stack they solve).
    q = _normalise(p, (-3, -2, -1))
    q1y = q.sum(axis=-2)  # (..., n1, ny)
    q2y = q.sum(axis=-3)  # (..., n2, ny)
    q12 = q.sum(axis=-1)  # (..., n1, n2)
    qy = q1y.sum(axis=-2)

    def h(m: np.ndarray, n_axes: int) -> np.ndarray:
        return -_xlog2x(m).sum(axis=tuple(range(-n_axes, 0)))

    hy = h(qy, 1)
    i1 = h(q1y.sum(axis=-1), 1) + hy - h(q1y, 2)
    i2 = h(q2y.sum(axis=-1), 1) + hy - h(q2y, 2)
    i12 = h(q12, 2) + hy - h(q, 3)
    if q.ndim == 3:
        return float(i1), float(i2), float(i12)
    return i1, i2, i12


__all__ = ["entropy", "mutual_information", "source_informations"]
