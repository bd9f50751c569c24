"""``estimate``: the PID of (image, text) about a target from samples, with its uncertainty."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmpid.errors import ConvergenceWarning, EstimateWarning, InputError
from mmpid.estimate.bootstrap import (
    SOLVER_ATOL,
    bootstrap_bias,
    interval,
    reflected_replicates,
)
from mmpid.estimate.contribution import contribution_image
from mmpid.estimate.discretise import (
    Discretised,
    Variable,
    as_variable,
    auto_clusters,
    check_clusters,
    kmeans_labels,
    labels_of,
    n_distinct_rows,
    plugin_bias_bits,
    reduce,
    single_thread,
)
from mmpid.estimate.null import summarise_null
from mmpid.estimate.result import BIT_ATOMS, AtomEstimate, Estimate
from mmpid.estimate.solve import AtomColumns, solve_tables
from mmpid.estimate.tables import bootstrap_tables, joint_table, permutation_tables

__all__ = ["estimate"]

_NAMES = ("image", "text", "target")
_ARGS = {"image": "x_image", "text": "x_text", "target": "y"}
PROTOCOLS = ("pooled", "per-sample")
CORRECTIONS = ("bootstrap", "null")
ESTIMATORS = ("discrete", "gaussian")
# A k-means cluster holding less than this fraction of the average cluster size is degenerate.
_DEGENERATE_FRACTION = 0.05
#: Certified solver gaps (bits) above this raise a ConvergenceWarning; smaller ones are noted.
GAP_WARN = 1e-3


def estimate(
    x_image: Any,
    x_text: Any,
    y: Any,
    *,
    clusters: int | str | Mapping[str, int | str] = "auto",
    seed: int = 0,
    n_bootstrap: int = 200,
    n_permutations: int = 100,
    level: float = 0.95,
    protocol: str = "pooled",
    correction: str = "bootstrap",
    normalize: bool = True,
    n_components: int | None = 10,
    n_init: int = 4,
    max_bias: float = 0.05,
    max_clusters: int = 12,
    method: str = "exact",
    backend: str = "numpy",
    length: int | None = None,
    n_shuffles: int = 1,
    estimator: str = "discrete",
) -> Estimate:
    """Estimate how much the image and the text tell about a target, as PID atoms in bits.

    Continuous inputs are discretised (row L2-normalisation, PCA, seeded k-means); integer
    labels are used as they are. The BROJA PID of the empirical joint of the label triples
    is the *plug-in* value. Around it:

    - **null**: the same estimate with the target shuffled against the (image, text) pairs,
      ``n_permutations`` times (the pairs keep their joint dependence). ``null_mean`` is what
      the estimator reports when there is no information at all: the plug-in bias under
      independence. ``details["atoms"][atom]`` has the null's spread and the permutation
      p-value; atoms whose plug-in does not exceed the null are listed in ``warnings``.
    - **bias correction** (``correction="bootstrap"``, default): ``corrected = 2 * plugin -
      mean(bootstrap)``, the bootstrap estimate of the plug-in bias removed. Unlike the null
      mean, it adapts to the dependence actually present: when the target is a function of
      one source the joint has few occupied cells and the plug-in synergy has almost no bias,
      while the null (every cell occupied) would put ``null_mean`` of synergy there and
      over-correct. On independent data the two agree (see the tests).
      ``correction="null"`` gives ``corrected = plugin - null_mean`` instead.
    - **interval**: ``n_bootstrap`` resamples of the N samples (labels kept fixed, so the
      interval is conditional on the discretisation), re-estimating the joint and the PID of
      each. The basic bootstrap interval (the ``level`` quantiles of the reflected replicates
      ``corrected + mean(t*) - t*_b``, centred on the corrected value) is widened on both
      sides by the size of the correction applied, ``|plugin - corrected|``, plus the solver
      accuracy (1e-6 bits). The widening is there because a first-order correction can be off
      by about its own size where an atom sits on its boundary: on AND-type data (true
      uniques 0 next to real redundancy) the bootstrap removes only about 60% of the uniques'
      bias, and unwidened intervals covered the truth in about 85% of runs; widened, the
      synthetic structures' atoms are covered at or above the nominal level (see the tests).
    - **contribution**: ``C_image = U_image / (U_image + U_text)`` and ``C_text = 1 - C_image``
      from the corrected uniques (a negative unique counts as 0 in the ratio), with the same
      bootstrap interval. It is undefined (NaN, with a warning) when neither unique atom is
      distinguishable from zero (both intervals reach 0).

    Parameters
    ----------
    x_image : (N, d1) float features or (N,) integer labels. Source 1.
    x_text : (N, d2) float features or (N,) integer labels. Source 2.
    y : (N, dy) float features (e.g. hidden states) or (N,) integer labels. The target.
        For ``protocol="per-sample"`` each of the three is a sequence of N token sets
        ``(T_i, d)`` (or an (N, T, d) array); see :func:`mmpid.estimate.per_sample.estimate_per_sample`.
    clusters : ``"auto"`` (default), an int for every continuous variable, or a dict
        ``{"image": k1, "text": k2, "target": ky}`` (values int or ``"auto"``). ``"auto"``
        gives the continuous variables the largest common k (at most ``max_clusters`` and at
        most their distinct rows) for which the first-order plug-in bias of
        I(image, text; target) under independence, ``(k1*k2 - 1)*(ky - 1) / (2 N ln 2)``, is at
        most ``max_bias`` bits: k = 5 at N = 2,000, 6 at 3,000, 7 at 5,000 when all three are
        continuous.
    seed : seeds PCA, k-means, the bootstrap and the permutations; same inputs and seed give
        identical results.
    n_bootstrap, n_permutations : resamples for the interval and the null (each >= 2).
    level : confidence level of the intervals, in (0, 1).
    protocol : ``"pooled"`` (one joint over the N samples) or ``"per-sample"`` (the paper's
        per-example token-level procedure, with its own noise floor as ``null_mean``).
    correction : ``"bootstrap"`` or ``"null"`` (see above).
    normalize, n_components, n_init : discretisation (L2 rows, PCA components or None for
        no PCA, k-means restarts).
    max_bias, max_clusters : the ``"auto"`` rule.
    method, backend : passed to :func:`mmpid.pid.decompose_many`.
    length, n_shuffles : per-sample protocol only (common token length, target shuffles).
    estimator : ``"discrete"`` (default; everything above) or ``"gaussian"``: the Gaussian PID
        of the PCA-reduced features with exact log-determinant bias correction, independent of
        any clustering; continuous inputs only, and the clustering options must stay at their
        defaults. See :func:`mmpid.estimate.gaussian.estimate_gaussian`.

    Returns
    -------
    Estimate with the atoms ``redundancy, unique_image, unique_text, synergy`` (bits) and
    ``contribution_image, contribution_text`` (fractions), each an AtomEstimate.

    Raises
    ------
    InputError : mismatched N, NaN/inf rows, bad options.
    SampleSizeError : more clusters asked for than samples or distinct points.

    Examples
    --------
    >>> from mmpid import synthetic
    >>> data = synthetic.make("unique_image", 2000, seed=0)
    >>> est = estimate(data.x_image, data.x_text, data.y, n_bootstrap=50, n_permutations=20)
    >>> round(est.unique_image.corrected, 1), round(est.contribution_image.corrected, 2)
    (1.0, 1.0)
    """
    _check_options(
        seed=seed,
        n_bootstrap=n_bootstrap,
        n_permutations=n_permutations,
        level=level,
        protocol=protocol,
        correction=correction,
        n_components=n_components,
        n_init=n_init,
        max_bias=max_bias,
        max_clusters=max_clusters,
    )
    if estimator not in ESTIMATORS:
        raise InputError(f"'estimator' must be one of {list(ESTIMATORS)}; got {estimator!r}.")
    if estimator == "gaussian":
        from mmpid.estimate.gaussian import estimate_gaussian

        return estimate_gaussian(
            x_image, x_text, y, seed=seed, n_bootstrap=n_bootstrap,
            n_permutations=n_permutations, level=level, correction=correction,
            normalize=normalize, n_components=n_components, clusters=clusters,
            protocol=protocol, n_init=n_init, max_bias=max_bias, max_clusters=max_clusters,
            method=method, backend=backend, length=length, n_shuffles=n_shuffles,
        )
    if protocol == "per-sample":
        from mmpid.estimate.per_sample import estimate_per_sample

        return estimate_per_sample(
            x_image,
            x_text,
            y,
            clusters=10 if clusters == "auto" else clusters,
            length=length,
            n_shuffles=n_shuffles,
            n_components=n_components,
            normalize=normalize,
            n_bootstrap=n_bootstrap,
            level=level,
            seed=seed,
            method=method,
            backend=backend,
        )
    if length is not None or n_shuffles != 1:
        raise InputError(
            "'length' and 'n_shuffles' belong to protocol='per-sample'; with protocol='pooled' "
            f"leave them out (got length={length!r}, n_shuffles={n_shuffles!r})."
        )
    variables = {
        name: as_variable(arr, _ARGS[name]) for name, arr in zip(_NAMES, (x_image, x_text, y))
    }
    sizes = {_ARGS[k]: v.n for k, v in variables.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(
            f"x_image, x_text and y must have the same number of samples N; got {sizes}."
        )
    requested = _parse_clusters(clusters, variables)
    return _estimate_pooled(
        variables,
        requested=requested,
        clusters_arg=clusters,
        seed=int(seed),
        n_bootstrap=int(n_bootstrap),
        n_permutations=int(n_permutations),
        level=float(level),
        correction=correction,
        normalize=bool(normalize),
        n_components=None if n_components is None else int(n_components),
        n_init=int(n_init),
        max_bias=float(max_bias),
        max_clusters=int(max_clusters),
        method=method,
        backend=backend,
    )


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_options(**o: Any) -> None:
    if not _is_int(o["seed"]) or o["seed"] < 0:
        raise InputError(f"'seed' must be a non-negative int; got {o['seed']!r}.")
    for name in ("n_bootstrap", "n_permutations"):
        if not _is_int(o[name]) or o[name] < 2:
            raise InputError(f"'{name}' must be an int >= 2; got {o[name]!r}.")
    level = o["level"]
    if isinstance(level, bool) or not isinstance(level, (int, float)) or not 0 < level < 1:
        raise InputError(f"'level' must be a float in (0, 1), e.g. 0.95; got {level!r}.")
    if o["protocol"] not in PROTOCOLS:
        raise InputError(f"'protocol' must be one of {list(PROTOCOLS)}; got {o['protocol']!r}.")
    if o["correction"] not in CORRECTIONS:
        raise InputError(
            f"'correction' must be one of {list(CORRECTIONS)}; got {o['correction']!r}."
        )
    nc = o["n_components"]
    if nc is not None and (not _is_int(nc) or nc < 1):
        raise InputError(f"'n_components' must be None or an int >= 1; got {nc!r}.")
    if not _is_int(o["n_init"]) or o["n_init"] < 1:
        raise InputError(f"'n_init' must be an int >= 1; got {o['n_init']!r}.")
    mb = o["max_bias"]
    if isinstance(mb, bool) or not isinstance(mb, (int, float)) or not mb > 0:
        raise InputError(f"'max_bias' must be a positive number of bits; got {mb!r}.")
    if not _is_int(o["max_clusters"]) or o["max_clusters"] < 2:
        raise InputError(f"'max_clusters' must be an int >= 2; got {o['max_clusters']!r}.")


def _parse_clusters(
    clusters: int | str | Mapping[str, int | str], variables: Mapping[str, Variable]
) -> dict[str, int | str]:
    """name -> int or "auto" for the continuous variables (labels keep their alphabet)."""
    if isinstance(clusters, str):
        if clusters != "auto":
            raise InputError(
                f"'clusters' must be 'auto', an int >= 1, or a dict with keys image/text/target; "
                f"got {clusters!r}."
            )
        spec: dict[str, int | str] = {name: "auto" for name in _NAMES}
    elif _is_int(clusters):
        if clusters < 1:
            raise InputError(f"'clusters' must be an int >= 1 or 'auto'; got {clusters!r}.")
        spec = {name: int(clusters) for name in _NAMES}
    elif isinstance(clusters, Mapping):
        unknown = sorted(set(clusters) - set(_NAMES))
        if unknown:
            raise InputError(
                f"'clusters' has unknown keys {unknown}; allowed keys are {list(_NAMES)}."
            )
        spec = {name: "auto" for name in _NAMES}
        for name, value in clusters.items():
            if not (value == "auto" or (_is_int(value) and value >= 1)):
                raise InputError(
                    f"clusters[{name!r}] must be an int >= 1 or 'auto'; got {value!r}."
                )
            if variables[name].kind == "labels" and value != "auto":
                raise InputError(
                    f"clusters[{name!r}] was given, but {_ARGS[name]!r} holds labels, which are "
                    "used as they are; leave it out of 'clusters'."
                )
            spec[name] = value if value == "auto" else int(value)
    else:
        raise InputError(
            f"'clusters' must be 'auto', an int or a dict; got {type(clusters).__name__}."
        )
    return {name: spec[name] for name in _NAMES if variables[name].kind == "continuous"}


def _clusters_json(clusters: Any) -> Any:
    """The ``clusters`` argument as JSON values (numpy ints become ints)."""
    if isinstance(clusters, str):
        return clusters
    if _is_int(clusters):
        return int(clusters)
    return {k: v if v == "auto" else int(v) for k, v in dict(clusters).items()}


def _seed_int(seq: np.random.SeedSequence) -> int:
    return int(seq.generate_state(1)[0])


def _estimate_pooled(
    variables: Mapping[str, Variable],
    *,
    requested: Mapping[str, int | str],
    clusters_arg: Any,
    seed: int,
    n_bootstrap: int,
    n_permutations: int,
    level: float,
    correction: str,
    normalize: bool,
    n_components: int | None,
    n_init: int,
    max_bias: float,
    max_clusters: int,
    method: str,
    backend: str,
) -> Estimate:
    timing: dict[str, float] = {}
    notes: list[str] = []

    def note(message: str, *, emit: bool) -> None:
        notes.append(message)
        if emit:
            warnings.warn(message, EstimateWarning, stacklevel=4)

    n = next(iter(variables.values())).n
    seeds = dict(zip(("image", "text", "target", "bootstrap", "null"), np.random.SeedSequence(seed).spawn(5)))

    # 1. reduce the continuous variables; count what each can support
    t = time.perf_counter()
    reduced: dict[str, tuple[np.ndarray, int | None, float | None]] = {}
    distinct: dict[str, int] = {}
    with single_thread():
        for name, var in variables.items():
            if var.kind == "continuous":
                reduced[name] = reduce(
                    var.data, normalize=normalize, n_components=n_components,
                    seed=_seed_int(seeds[name]),
                )
                distinct[name] = n_distinct_rows(var.data)
    timing["pca"] = time.perf_counter() - t
    given = {name: labels_of(var) for name, var in variables.items() if var.kind == "labels"}

    # 2. choose the clusters
    fixed = {name: d.n_clusters for name, d in given.items()}
    for name, k in requested.items():
        if k != "auto":
            check_clusters(_ARGS[name], int(k), n, distinct[name])
            fixed[name] = int(k)
    ks, too_few = auto_clusters(
        n, fixed, distinct, max_bias=max_bias, max_clusters=max_clusters
    )
    for name in _NAMES:
        if ks[name] == 1:
            note(
                f"'{_ARGS[name]}' is constant (a single distinct value): it carries no "
                "information, so every atom involving it is 0.",
                emit=True,
            )
    bias_bound = plugin_bias_bits(n, ks["image"], ks["text"], ks["target"])
    per_cell = n / (ks["image"] * ks["text"] * ks["target"])
    if bias_bound > max_bias:
        note(
            f"Too few samples per cell: N = {n} for a {ks['image']}x{ks['text']}x{ks['target']} "
            f"joint ({per_cell:.1f} samples per cell); the plug-in bias under independence is "
            f"about {bias_bound:.3f} bits (max_bias = {max_bias}). "
            + (
                "Even 2 clusters per variable exceed it; collect more samples."
                if too_few
                else "Use clusters='auto' or fewer clusters."
            ),
            emit=True,
        )

    # 3. k-means
    t = time.perf_counter()
    disc: dict[str, Discretised] = dict(given)
    for name in reduced:
        z, used, explained = reduced[name]
        k = ks[name]
        with single_thread():
            labels = kmeans_labels(z, k, seed=_seed_int(seeds[name]), n_init=n_init)
        size = np.bincount(labels, minlength=k)
        disc[name] = Discretised(labels, k, "continuous", size, used, explained)
        if k > 1 and size.min() < max(1.0, _DEGENERATE_FRACTION * n / k):
            note(
                f"Degenerate cluster in '{_ARGS[name]}': the smallest of its {k} k-means clusters "
                f"holds {int(size.min())} of {n} samples (outliers or duplicated rows?); "
                "consider fewer clusters or removing outliers.",
                emit=True,
            )
    timing["kmeans"] = time.perf_counter() - t

    # 4. tables: data, bootstrap resamples, permutation null -- one batched solve
    t = time.perf_counter()
    shape = (ks["image"], ks["text"], ks["target"])
    l1, l2, ly = disc["image"].labels, disc["text"].labels, disc["target"].labels
    tables = np.concatenate(
        [
            joint_table(l1, l2, ly, shape)[None],
            bootstrap_tables(l1, l2, ly, shape, n_bootstrap, np.random.default_rng(seeds["bootstrap"])),
            permutation_tables(l1, l2, ly, shape, n_permutations, np.random.default_rng(seeds["null"])),
        ]
    )
    timing["tables"] = time.perf_counter() - t
    t = time.perf_counter()
    cols = solve_tables(tables, method=method, backend=backend)
    timing["solve"] = time.perf_counter() - t
    atoms = cols.stack()
    plugin, boot, null = atoms[0], atoms[1 : 1 + n_bootstrap], atoms[1 + n_bootstrap :]
    bad = convergence_note(cols, note, primary=1)

    estimates, details = _summarise(
        plugin, boot, null, level=level, correction=correction, note=note
    )
    details["solver"] = {
        "method": method,
        "backend": backend,
        "tables": len(cols),
        "not_converged": bad,
        "max_gap_bits": float(np.nanmax(cols.gap)) if len(cols) else 0.0,
    }
    details["variables"] = {name: disc[name].summary() for name in _NAMES}
    details["plugin_bias_bound_bits"] = bias_bound
    details["samples_per_cell"] = per_cell

    clusters = {name: int(ks[name]) for name in _NAMES}
    config = {
        "protocol": "pooled",
        "clusters": _clusters_json(clusters_arg),
        "clusters_used": clusters,
        "seed": seed,
        "n_bootstrap": n_bootstrap,
        "n_permutations": n_permutations,
        "level": level,
        "correction": correction,
        "normalize": normalize,
        "n_components": n_components,
        "n_init": n_init,
        "max_bias": max_bias,
        "max_clusters": max_clusters,
        "method": method,
        "backend": backend,
        "kinds": {name: variables[name].kind for name in _NAMES},
    }
    return Estimate(
        **estimates,
        n=n,
        clusters=clusters,
        config=config,
        warnings=tuple(notes),
        details=details,
        timing=timing,
    )


def convergence_note(cols: AtomColumns, note: Any, *, primary: int = 0) -> int:
    """Record tables the solver did not converge on; warn only when the gap can show.

    The first ``primary`` tables (the plug-in) enter the result directly; the others
    (resamples) enter through means and quantiles over hundreds of tables, where a few
    tables off by a small gap move nothing. A ConvergenceWarning is raised when a primary
    table, or more than 5% of all tables, is left with a certified gap above
    :data:`GAP_WARN` bits; otherwise the fact is only noted in ``warnings``.
    """
    bad = ~cols.converged
    if not bad.any():
        return 0
    gap = float(np.nanmax(cols.gap[bad]))
    large = bad & (cols.gap > GAP_WARN)
    message = (
        f"The PID solver did not converge on {int(bad.sum())} of {len(cols)} tables; their atoms "
        f"are within the certified gap of the optimum (largest {gap:.2e} bits)."
    )
    if large[:primary].any() or large.mean() > 0.05:
        message += " That gap can show in the result: use fewer clusters."
        warnings.warn(message, ConvergenceWarning, stacklevel=4)
    note(message, emit=False)
    return int(bad.sum())


def _summarise(
    plugin: np.ndarray,
    boot: np.ndarray,
    null: np.ndarray,
    *,
    level: float,
    correction: str,
    note: Any,
    bias: np.ndarray | None = None,
) -> tuple[dict[str, AtomEstimate], dict[str, Any]]:
    """Turn plug-in (4,), bootstrap (B, 4) and null (P, 4) atoms into the six AtomEstimates.

    ``bias`` (4,), when given, is removed instead of the bootstrap or null estimate of it.
    """
    summary = summarise_null(plugin, null, atol=SOLVER_ATOL)
    boot_bias = bootstrap_bias(plugin, boot)
    if bias is None:
        bias = boot_bias if correction == "bootstrap" else summary.mean
    corrected = plugin - bias
    reflected = reflected_replicates(plugin, boot, bias)
    lo, hi = interval(reflected, level)
    # widen by the size of the correction applied (its error can be as large, see estimate())
    slack = np.abs(bias) + SOLVER_ATOL
    lo, hi = lo - slack, hi + slack

    out: dict[str, AtomEstimate] = {}
    per_atom: dict[str, dict[str, float]] = {}
    for j, atom in enumerate(BIT_ATOMS):
        out[atom] = AtomEstimate(plugin[j], summary.mean[j], corrected[j], lo[j], hi[j])
        per_atom[atom] = {
            "null_sd": float(summary.sd[j]),
            "p_value": float(summary.p_value[j]),
            "bootstrap_bias": float(boot_bias[j]),
            "bootstrap_sd": float(np.std(boot[:, j], ddof=1)),
            "interval_widening": float(slack[j]),
        }

    within = [a for a in BIT_ATOMS if per_atom[a]["p_value"] > 1.0 - level]
    if within:
        note(
            "Not distinguishable from the permutation null (plug-in not above the null at "
            f"level {level}): {', '.join(within)}.",
            emit=False,
        )
    negative = [a for a in BIT_ATOMS if out[a].corrected < 0]
    if negative:
        parts = [
            f"{a} = {out[a].corrected:.4f}" + (" (interval reaches 0)" if out[a].ci_high >= 0 else "")
            for a in negative
        ]
        note(
            "Negative corrected atoms, kept as they are (not clamped): " + "; ".join(parts) + ".",
            emit=False,
        )

    # contribution metric
    iu, it = BIT_ATOMS.index("unique_image"), BIT_ATOMS.index("unique_text")
    c_plugin = float(contribution_image(plugin[iu], plugin[it]))
    c_null_all = contribution_image(null[:, iu], null[:, it])
    c_null = float(np.mean(c_null_all[np.isfinite(c_null_all)])) if np.isfinite(c_null_all).any() else math.nan
    undefined = out["unique_image"].ci_low <= 0 and out["unique_text"].ci_low <= 0
    if undefined:
        c_corr = c_lo = c_hi = math.nan
        note(
            "The contribution metric is undefined: neither unique atom is distinguishable from "
            "zero (both intervals reach 0), so U_image / (U_image + U_text) would divide noise "
            "by noise.",
            emit=False,
        )
    else:
        c_corr = float(contribution_image(corrected[iu], corrected[it]))
        # the same widening: C grows with U_image and shrinks with U_text
        su, st = slack[iu], slack[it]
        c_low_rep = contribution_image(reflected[:, iu] - su, reflected[:, it] + st)
        c_high_rep = contribution_image(reflected[:, iu] + su, reflected[:, it] - st)
        c_lo = float(interval(c_low_rep[:, None], level)[0][0])
        c_hi = float(interval(c_high_rep[:, None], level)[1][0])
    out["contribution_image"] = AtomEstimate(c_plugin, c_null, c_corr, c_lo, c_hi)
    out["contribution_text"] = AtomEstimate(1 - c_plugin, 1 - c_null, 1 - c_corr, 1 - c_hi, 1 - c_lo)
    return out, {"atoms": per_atom, "contribution_defined": not undefined}
