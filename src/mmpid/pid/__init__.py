"""Partial Information Decomposition (BROJA) of joint tables, in bits.

- `decompose(p)`: one table (n1, n2, ny) -> `PID`;
- `decompose_many(P)`: a stack (B, n1, n2, ny) solved together -> `PIDBatch`;
- `measures`: entropies and (conditional) mutual informations of tables.

`method="exact"` is a primal-dual interior-point solver on the small dual with a certified
gap (a barrier method and IPFP take over the rare tables it cannot certify), vectorised over
stacks (`_primal_dual`) and, on the numpy backend, compiled table by table (`_compiled`);
`method="ipfp"` is the alternating Sinkhorn solver of Amit et al. (2025).

`gaussian_pid(cov, sizes)`: the Gaussian PID (~G-PID) of a joint covariance of (X1, X2, Y).
"""

from __future__ import annotations

from mmpid.pid import measures
from mmpid.pid.api import METHODS, decompose, decompose_many
from mmpid.pid.gaussian import GaussianPID, gaussian_pid
from mmpid.pid.result import PID, PIDBatch

__all__ = [
    "decompose",
    "decompose_many",
    "PID",
    "PIDBatch",
    "measures",
    "METHODS",
    "GaussianPID",
    "gaussian_pid",
]
