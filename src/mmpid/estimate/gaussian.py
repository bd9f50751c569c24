"""The Gaussian estimator: the ~G-PID of PCA-reduced features, with exact bias correction.

Independent of the discretisation: no k-means, no tables. Each continuous variable is
reduced exactly as for the discrete estimator (row L2-normalisation, PCA with the same seeds,
10 components by default), the sample covariance of the stacked (image, text, target)
features is formed, and :func:`mmpid.pid.gaussian.gaussian_pid` decomposes it.

Bias. Every atom is a signed sum of four terms, I(X1;Y), I(X2;Y), I(X1,X2;Y) and the union
information UI (R = I1 + I2 - UI, U1 = UI - I2, U2 = UI - I1, S = I12 - UI). The first three
are log-determinant mutual informations, whose plug-in bias is known exactly for Gaussian data
and does not depend on the covariance: for a d-dimensional sample covariance of N samples,

    E[ln det S] - ln det Sigma = sum_{k=1..d} psi((N - k)/2) + d ln(2/(N - 1)),

so the bias of ``I(A;B) = 1/2 (ln det S_A + ln det S_B - ln det S_AB)`` is the same signed
sum of these terms, removed exactly. The union information is a minimum over couplings and
has no such formula; its bias is estimated as the discrete estimator estimates every atom's
(``correction="bootstrap"``: mean of the bootstrap replicates minus the plug-in;
``correction="null"``: its mean under the permutation null). The intervals, null and
contribution metric then follow the discrete estimator's rules (see
:func:`mmpid.estimate.estimate`), with the bootstrap resampling the rows of the reduced
features (conditional on the PCA, as the discrete intervals are conditional on the labels).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import numpy as np
from scipy.special import digamma

from mmpid.errors import ConvergenceWarning, InputError, SampleSizeError
from mmpid.estimate.discretise import Variable, as_variable, reduce, single_thread
from mmpid.estimate.options import DISCRETE_ONLY
from mmpid.estimate.result import Estimate
from mmpid.estimate.run import Notes, seed_int, seed_streams
from mmpid.estimate.summary import interval_kind, summarise
from mmpid.pid.gaussian import DEFAULT_TOL, _gaussian_pid

__all__ = ["estimate_gaussian", "logdet_bias", "mi_bias_bits", "NOT_APPLICABLE"]

LN2 = math.log(2.0)
_NAMES = ("image", "text", "target")
_ARGS = {"image": "x_image", "text": "x_text", "target": "y"}
#: Options of :func:`mmpid.estimate.estimate` that belong to the discrete estimator, with
#: their defaults; the Gaussian estimator rejects any other value.
NOT_APPLICABLE: dict[str, Any] = DISCRETE_ONLY
# A covariance eigenvalue below this fraction of the largest counts as zero (singular).
_SINGULAR_RTOL = 1e-10
# Certified gaps (bits) above this raise a ConvergenceWarning (as the discrete estimator).
_GAP_WARN = 1e-3
# Atoms as signed sums of (I1, I2, I12, UI), rows in the order of BIT_ATOMS.
_ATOMS_OF_TERMS = np.array(
    [
        [1.0, 1.0, 0.0, -1.0],  # redundancy = I1 + I2 - UI
        [0.0, -1.0, 0.0, 1.0],  # unique_image = UI - I2
        [-1.0, 0.0, 0.0, 1.0],  # unique_text = UI - I1
        [0.0, 0.0, 1.0, -1.0],  # synergy = I12 - UI
    ]
)


def logdet_bias(d: int, n: int) -> float:
    """``E[ln det S] - ln det Sigma`` for the sample covariance S of N Gaussian samples, nats.

    ``S = X_c^T X_c / (N - 1)`` (mean removed) of N draws of a d-dimensional Gaussian; the
    value, ``sum_{k=1..d} psi((N - k)/2) + d ln(2/(N - 1))``, does not depend on Sigma.

    >>> round(logdet_bias(1, 1001), 6)   # about -1/(N-1) for d = 1
    -0.001
    """
    if d == 0:
        return 0.0
    k = np.arange(1, d + 1)
    return float(np.sum(digamma((n - k) / 2.0)) + d * math.log(2.0 / (n - 1)))


def mi_bias_bits(d_a: int, d_b: int, n: int) -> float:
    """Exact bias of the plug-in Gaussian I(A;B) from N samples, bits (positive).

    ``1/2 (b(d_a) + b(d_b) - b(d_a + d_b))`` with ``b = logdet_bias``, in bits.

    >>> round(mi_bias_bits(1, 1, 10_000), 7)   # about d_a d_b / (2 N ln 2)
    7.22e-05
    """
    return 0.5 * (logdet_bias(d_a, n) + logdet_bias(d_b, n) - logdet_bias(d_a + d_b, n)) / LN2


def estimate_gaussian(
    x_image: Any,
    x_text: Any,
    y: Any,
    *,
    seed: int = 0,
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    level: float = 0.95,
    correction: str = "bootstrap",
    normalize: bool = True,
    n_components: int | None = 10,
    **discrete_options: Any,
) -> Estimate:
    """The Gaussian PID of (image, text) about a continuous target, with null and intervals.

    The body of :func:`mmpid.estimate.estimate` with ``estimator="gaussian"``, which checks
    the options shared with the discrete estimator (seed, n_bootstrap, n_permutations, level,
    correction, n_components) before calling it; call it through ``estimate``. What is
    particular to the Gaussian estimator (continuous inputs only, the discrete options left at
    their defaults) is checked here.

    Parameters
    ----------
    x_image, x_text : (N, d1), (N, d2) float features (a 1-D float array is one feature).
    y : (N, dy) float features, e.g. hidden states. Integer labels are refused: a one-hot or
        integer-coded label is not Gaussian, and the Gaussian PID of it would measure only
        linear (class-mean) information; use ``estimator="discrete"`` for labels.
    seed, n_bootstrap, n_permutations, level, correction, normalize, n_components : as for
        :func:`mmpid.estimate.estimate`; ``n_components`` PCA components per variable
        (None: no PCA).
    **discrete_options : the discrete estimator's options (clusters, protocol, n_init,
        max_bias, max_clusters, method, backend, length, n_shuffles); any value other than
        the default raises InputError.

    Returns
    -------
    Estimate (bits; contributions as fractions), with ``clusters == {}`` and
    ``config["estimator"] == "gaussian"``. ``details["informations"]`` holds the plug-in and
    corrected I(image;target), I(text;target), I(image,text;target) and union information.

    Raises
    ------
    InputError : labels, mismatched N, NaN rows, a discrete-only option, a covariance that
        is singular after PCA (constant or duplicated columns).
    SampleSizeError : N not larger than the total reduced dimension plus one.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> yy = rng.normal(size=(2000, 1))
    >>> x1 = yy + 0.5 * rng.normal(size=(2000, 1))      # I(X1;Y) = 1/2 log2 5 bits
    >>> x2 = rng.normal(size=(2000, 1))                  # no information
    >>> from mmpid.estimate import estimate
    >>> est = estimate(x1, x2, yy, estimator="gaussian", n_bootstrap=20, n_permutations=20)
    >>> round(est.unique_image.corrected, 1), round(est.redundancy.corrected, 1)
    (1.2, 0.0)
    """
    for name, default in NOT_APPLICABLE.items():
        if name in discrete_options and discrete_options[name] != default:
            raise InputError(
                f"'{name}' belongs to the discrete estimator; with estimator='gaussian' leave "
                f"it at its default {default!r} (got {discrete_options[name]!r})."
            )
    unknown = sorted(set(discrete_options) - set(NOT_APPLICABLE))
    if unknown:
        raise InputError(f"estimate_gaussian() got unexpected options {unknown}.")
    variables = {
        name: as_variable(arr, _ARGS[name]) for name, arr in zip(_NAMES, (x_image, x_text, y))
    }
    for name, var in variables.items():
        if var.kind == "labels":
            raise InputError(
                f"'{_ARGS[name]}' holds labels (dtype {var.data.dtype}); estimator='gaussian' "
                "needs continuous features for every variable (a one-hot or integer code is "
                "not Gaussian). Use estimator='discrete' for labels."
            )
    sizes = {_ARGS[k]: v.n for k, v in variables.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(
            f"x_image, x_text and y must have the same number of samples N; got {sizes}."
        )
    return _estimate_gaussian(
        variables,
        seed=int(seed),
        n_bootstrap=int(n_bootstrap),
        n_permutations=int(n_permutations),
        level=float(level),
        correction=correction,
        normalize=bool(normalize),
        n_components=None if n_components is None else int(n_components),
    )


def _check_nonsingular(z: np.ndarray, blocks: dict[str, slice], n: int) -> None:
    """Raise InputError when the covariance of the reduced features is singular."""
    if n <= z.shape[1] + 1:
        raise SampleSizeError(
            f"N = {n} samples cannot estimate a {z.shape[1]}-dimensional covariance; the "
            f"Gaussian estimator needs N > {z.shape[1] + 1} (and N of 10x that for useful "
            "intervals). Use fewer 'n_components'."
        )
    sd = z.std(axis=0)
    for name, sl in blocks.items():
        flat = np.flatnonzero(sd[sl] <= _SINGULAR_RTOL * max(float(sd.max()), 1e-300))
        if flat.size:
            raise InputError(
                f"'{_ARGS[name]}' has a constant feature after PCA (column {int(flat[0])} of "
                f"{sl.stop - sl.start}): its covariance is singular and its Gaussian "
                "information undefined. Drop constant columns or use fewer 'n_components'."
            )
    corr = np.corrcoef(z, rowvar=False)
    corr = np.atleast_2d(corr)
    for name, sl in blocks.items():
        ev = np.linalg.eigvalsh(corr[sl, sl])
        if ev[0] <= _SINGULAR_RTOL * ev[-1]:
            raise InputError(
                f"The covariance of '{_ARGS[name]}' after PCA is singular (rank "
                f"{int(np.sum(ev > _SINGULAR_RTOL * ev[-1]))} of {len(ev)} features: "
                "duplicated or linearly dependent columns); use fewer 'n_components' or drop "
                "the dependent columns."
            )
    ev = np.linalg.eigvalsh(corr)
    if ev[0] <= _SINGULAR_RTOL * ev[-1]:
        raise InputError(
            "The joint covariance of (x_image, x_text, y) after PCA is singular: some "
            "combination of one variable's features is an exact linear function of the others' "
            "(e.g. x_text duplicates x_image, or y is a linear map of the sources), where the "
            "Gaussian information is infinite or undefined. Remove the duplication, or add "
            "independent noise if it is deliberate."
        )


def _terms(
    cov: np.ndarray, dims: tuple[int, int, int], tol: float
) -> tuple[np.ndarray, bool, float]:
    """(I1, I2, I12, UI) bits of one covariance, its convergence flag and certified gap."""
    p = _gaussian_pid(cov, *dims, tol=tol)
    return (
        np.array([p.mi_1, p.mi_2, p.mutual_information, p.union_information]),
        p.converged,
        p.gap,
    )


def _estimate_gaussian(
    variables: dict[str, Variable],
    *,
    seed: int,
    n_bootstrap: int,
    n_permutations: int,
    level: float,
    correction: str,
    normalize: bool,
    n_components: int | None,
    tol: float = DEFAULT_TOL,
) -> Estimate:

    timing: dict[str, float] = {}
    note = Notes()

    n = variables["image"].n
    seeds = seed_streams(seed)  # the same streams (and so the same PCA) as the discrete estimator

    # 1. reduce
    t = time.perf_counter()
    reduced: dict[str, np.ndarray] = {}
    summary: dict[str, dict[str, Any]] = {}
    with single_thread():
        for name in _NAMES:
            z, used, explained = reduce(
                variables[name].data, normalize=normalize, n_components=n_components,
                seed=seed_int(seeds[name]),
            )
            reduced[name] = z - z.mean(axis=0)
            summary[name] = {
                "kind": "continuous",
                "dimension": int(z.shape[1]),
                "n_components": used,
                "explained_variance": explained,
            }
    timing["pca"] = time.perf_counter() - t
    dims = tuple(int(reduced[name].shape[1]) for name in _NAMES)
    d1, d2, dy = dims
    z = np.ascontiguousarray(np.hstack([reduced[name] for name in _NAMES]))
    blocks = {"image": slice(0, d1), "text": slice(d1, d1 + d2), "target": slice(d1 + d2, None)}
    _check_nonsingular(z, blocks, n)

    # 2. covariances: data, bootstrap resamples (row weights), permutations of the target
    t = time.perf_counter()
    cov = z.T @ z / (n - 1)
    covs = [cov]
    rng = np.random.default_rng(seeds["bootstrap"])
    for _ in range(n_bootstrap):
        w = np.bincount(rng.integers(0, n, size=n), minlength=n).astype(np.float64)
        m = w @ z / n
        c = (z.T * w) @ z
        covs.append((c - n * np.outer(m, m)) / (n - 1))
    rng = np.random.default_rng(seeds["null"])
    x, yz = z[:, : d1 + d2], z[:, d1 + d2 :]
    for _ in range(n_permutations):
        c = cov.copy()
        cross = x.T @ yz[rng.permutation(n)] / (n - 1)
        c[: d1 + d2, d1 + d2 :] = cross
        c[d1 + d2 :, : d1 + d2] = cross.T
        covs.append(c)
    timing["covariances"] = time.perf_counter() - t

    # 3. solve every covariance
    t = time.perf_counter()
    terms = np.empty((len(covs), 4))
    converged = np.empty(len(covs), dtype=bool)
    gaps = np.empty(len(covs))
    for i, c in enumerate(covs):
        try:
            terms[i], converged[i], gaps[i] = _terms(0.5 * (c + c.T), dims, tol)
        except np.linalg.LinAlgError:
            raise SampleSizeError(
                f"A {'bootstrap resample' if i <= n_bootstrap else 'permutation'} of the "
                f"N = {n} samples has a singular {sum(dims)}-dimensional covariance; use "
                "fewer 'n_components' or more samples."
            ) from None
    timing["solve"] = time.perf_counter() - t
    atoms = terms @ _ATOMS_OF_TERMS.T
    plugin, boot, null = atoms[0], atoms[1 : 1 + n_bootstrap], atoms[1 + n_bootstrap :]

    bad = int(np.sum(~converged))
    if bad:
        large = ~converged & (gaps > _GAP_WARN)
        message = (
            f"The Gaussian union-information solver stopped short of its tolerance on {bad} "
            f"of {len(covs)} covariances; their atoms are within the certified gap of the "
            f"optimum (largest {float(np.max(gaps[~converged])):.2e} bits)."
        )
        if large[0] or large.mean() > 0.05:
            message += " That gap can show in the result: use fewer 'n_components'."
            warnings.warn(message, ConvergenceWarning, stacklevel=3)
        note(message, emit=False)

    # 4. bias: exact for the three mutual informations, estimated for the union information
    mi_bias = np.array(
        [mi_bias_bits(d1, dy, n), mi_bias_bits(d2, dy, n), mi_bias_bits(d1 + d2, dy, n)]
    )
    if correction in ("bootstrap", "extrapolated"):  # one rate: no second resample size here
        ui_bias = float(np.mean(terms[1 : 1 + n_bootstrap, 3]) - terms[0, 3])
    else:
        ui_bias = float(np.mean(terms[1 + n_bootstrap :, 3]))
    term_bias = np.append(mi_bias, ui_bias)
    bias = _ATOMS_OF_TERMS @ term_bias

    estimates, details = summarise(
        plugin, boot, null, level=level, correction=correction, note=note, bias=bias
    )
    if correction != "null":
        details["interval_kind"] = interval_kind("gaussian", level)
    labels = ("image", "text", "joint", "union")
    details["informations"] = {
        lab: {
            "plugin": float(terms[0, j]),
            "bias": float(term_bias[j]),
            "corrected": float(terms[0, j] - term_bias[j]),
            "bias_rule": "exact" if j < 3 else correction,
        }
        for j, lab in enumerate(labels)
    }
    details["solver"] = {
        "method": "gaussian",
        "covariances": len(covs),
        "not_converged": bad,
        "max_gap_bits": float(np.max(gaps)),
        "tol_bits": tol,
    }
    details["variables"] = summary
    config = {
        "estimator": "gaussian",
        "protocol": "pooled",
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "n_permutations": n_permutations,
        "level": level,
        "correction": correction,
        "normalize": normalize,
        "n_components": n_components,
        "dimensions": dict(zip(_NAMES, dims)),
        "kinds": {name: "continuous" for name in _NAMES},
    }
    return Estimate(
        **estimates,
        n=n,
        clusters={},
        config=config,
        warnings=tuple(note.messages),
        details=details,
        timing=timing,
    )
