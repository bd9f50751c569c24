"""``estimate``: the PID of (image, text) about a target from samples, with its uncertainty."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from mmpid.errors import InputError, OptionError
from mmpid.estimate.checks import label_like_floats
from mmpid.estimate.bootstrap import SUBSAMPLE_FRACTION
from mmpid.estimate.convergence import convergence_note
from mmpid.estimate.discretise import (
    Discretised,
    Variable,
    as_variable,
    auto_clusters,
    check_clusters,
    exact_labels,
    kmeans_labels,
    labels_of,
    n_distinct_rows,
    plugin_bias_bits,
    reduce,
    single_thread,
)
from mmpid.estimate.options import CLUSTER_RULES, EstimateOptions
from mmpid.estimate.options import is_int as _is_int
from mmpid.estimate.resolution import choose_resolution, ladder
from mmpid.estimate.result import Estimate
from mmpid.estimate.run import Notes, seed_int, seed_streams
from mmpid.estimate.summary import summarise
from mmpid.estimate.solve import solve_tables
from mmpid.estimate.tables import bootstrap_tables, joint_table, permutation_tables

__all__ = ["estimate", "estimate_each_correction"]

_NAMES = ("image", "text", "target")
_ARGS = {"image": "x_image", "text": "x_text", "target": "y"}
# A k-means cluster holding less than this fraction of the average cluster size is degenerate.
_DEGENERATE_FRACTION = 0.05


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
    max_clusters: int = 128,
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
      mean(bootstrap)``. With ``correction="extrapolated"``: ``corrected = plugin - bias``,
      where the bias is the bootstrap's ``mean(t*) - plugin`` scaled by the rate at
      which the atom's bias shrinks with N, fitted per atom from a second set of
      ``n_bootstrap`` resamples of size N/4 (:func:`mmpid.estimate.bootstrap.extrapolated_bias`).
      A smooth atom (bias ~ 1/N) gets the classical ``2 * plugin - mean(bootstrap)``; an atom on
      its boundary (a unique truly 0 beside real redundancy, bias ~ N^(-1/2)) gets up to 2.41
      times the bootstrap's estimate, of which the classical rule removes only 41%. Unlike the
      null mean, the bootstrap adapts to the dependence actually present: when the target is a
      function of one source the joint has few occupied cells and the plug-in synergy has
      almost no bias, while the null (every cell occupied) would put ``null_mean`` of synergy
      there and over-correct. ``correction="bootstrap"`` is the classical rule (no second
      resample size); ``correction="null"`` gives ``corrected = plugin - null_mean``.
    - **interval**: ``n_bootstrap`` resamples of the N samples (labels kept fixed, so the
      interval is conditional on the discretisation), re-estimating the joint and the PID of
      each. It is a *basic* bootstrap interval (the ``level`` quantiles of the reflected
      replicates ``corrected + mean(t*) - t*_b``, centred on the corrected value), widened on
      both sides by the size of the correction applied, ``|plugin - corrected|``, plus the
      solver accuracy (1e-6 bits): a correction can be off by about its own size where an atom
      sits on its boundary. ``details["interval_kind"]`` says so in words. Its coverage on every
      synthetic structure is measured by ``benchmarks/interval_coverage.py`` (README, "How good are the
      intervals").
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
    clusters : ``"auto"`` (default), ``"conservative"``, an int for every continuous variable,
        or a dict ``{"image": k1, "text": k2, "target": ky}`` (values int or a rule name).
        ``"auto"`` chooses each continuous variable's resolution from the data
        (:mod:`mmpid.estimate.resolution`): its exact values when it has at most
        ``max_clusters`` distinct rows (a dataset's question embeddings), else a step of a
        ladder of k-means resolutions, taking the coarsest joint whose Miller-Madow corrected
        I(X1,X2;Y) + I(X1;Y) + I(X2;Y) is within 1% (at least 0.01 bits) of the best, plus
        the best one's first-order bias, among
        joints whose first-order plug-in bias (counted on occupied cells) is at most
        ``max_bias`` bits, whose Good-Turing unseen mass is at most 10%, and that the solver
        handles in about 0.2 s. ``details["resolution"]`` has every candidate scored.
        ``"conservative"`` (the rule before 0.2) gives the continuous variables the largest
        common k for which the plug-in bias under independence,
        ``(k1*k2 - 1)*(ky - 1) / (2 N ln 2)``, is at most ``max_bias`` bits: k = 5 at
        N = 2,000, 7 at 5,000, 9 at 10,000 when all three are continuous. It under-reads
        structured data: on zoo:normal it sees 1.40 of the oracle's 2.29 bits and no synergy.
    seed : seeds PCA, k-means, the bootstrap and the permutations; same inputs and seed give
        identical results.
    n_bootstrap, n_permutations : resamples for the interval and the null (each >= 2).
    level : confidence level of the intervals, in (0, 1).
    protocol : ``"pooled"`` (one joint over the N samples) or ``"per-sample"`` (the paper's
        per-example token-level procedure, with its own noise floor as ``null_mean``).
    correction : ``"bootstrap"`` (default), ``"extrapolated"`` or ``"null"`` (see above).
    normalize, n_components, n_init : discretisation (L2 rows, PCA components or None for
        no PCA, k-means restarts for an explicit or conservative k; the auto rule runs each of
        its up to 13 k-means per variable once, from a k-means++ start).
    max_bias, max_clusters : the rules' admissible plug-in bias (bits) and largest alphabet.
    method, backend : passed to :func:`mmpid.pid.decompose_many`.
    length, n_shuffles : per-sample protocol only (common token length, target shuffles).
    estimator : ``"discrete"`` (default; everything above) or ``"gaussian"``: the Gaussian PID
        of the PCA-reduced features with exact log-determinant bias correction, independent of
        any clustering; continuous inputs only, and the clustering options must stay at their
        defaults. See :func:`mmpid.estimate.gaussian.estimate_gaussian`. ``"both"`` is refused
        here (this function returns one Estimate): :func:`mmpid.estimate_both` runs the two
        on the same inputs and lists where they disagree.

    Returns
    -------
    Estimate with the atoms ``redundancy, unique_image, unique_text, synergy`` (bits) and
    ``contribution_image, contribution_text`` (fractions), each an AtomEstimate.

    Raises
    ------
    OptionError : an option out of range, or one the chosen protocol would ignore (checked
        before the data; see :class:`mmpid.estimate.options.EstimateOptions`).
    InputError : mismatched N, NaN/inf rows.
    SampleSizeError : more clusters asked for than samples or distinct points.

    Examples
    --------
    >>> from mmpid import synthetic
    >>> data = synthetic.make("unique_image", 2000, seed=0)
    >>> est = estimate(data.x_image, data.x_text, data.y, n_bootstrap=50, n_permutations=20)
    >>> round(est.unique_image.corrected, 1), round(est.contribution_image.corrected, 2)
    (1.0, 1.0)
    """
    opts = EstimateOptions(
        clusters=clusters, seed=seed, n_bootstrap=n_bootstrap, n_permutations=n_permutations,
        level=level, protocol=protocol, correction=correction, normalize=normalize,
        n_components=n_components, n_init=n_init, max_bias=max_bias, max_clusters=max_clusters,
        method=method, backend=backend, length=length, n_shuffles=n_shuffles,
        estimator=estimator,
    )
    if opts.estimator == "both":
        raise OptionError(
            "estimator", estimator, "'discrete' or 'gaussian' in estimate(), which returns one Estimate",
            hint="For both on the same inputs, with their disagreements, call "
            "mmpid.estimate_both(x_image, x_text, y, ...) (an EstimatorComparison).",
        )
    if opts.estimator == "gaussian":
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
            clusters=10 if opts.clusters == "auto" else opts.clusters,
            length=opts.length,
            n_shuffles=opts.n_shuffles,
            n_components=opts.n_components,
            normalize=opts.normalize,
            n_bootstrap=opts.n_bootstrap,
            level=opts.level,
            seed=opts.seed,
            method=opts.method,
            backend=opts.backend,
        )
    return _pooled(x_image, x_text, y, [opts])[opts.correction]


def _pooled(x_image: Any, x_text: Any, y: Any, opts: list[EstimateOptions]) -> dict[str, Estimate]:
    """The pooled discrete estimate under each of ``opts`` (the same options but the correction),
    from one discretisation and one solve: ``{correction: Estimate}``."""
    first = opts[0]
    variables = {
        name: as_variable(arr, _ARGS[name]) for name, arr in zip(_NAMES, (x_image, x_text, y))
    }
    sizes = {_ARGS[k]: v.n for k, v in variables.items()}
    if len(set(sizes.values())) != 1:
        raise InputError(
            f"x_image, x_text and y must have the same number of samples N; got {sizes}."
        )
    requested = _parse_clusters(first.clusters, variables)
    return _estimate_pooled_each(
        variables, requested=requested, clusters_arg=first.clusters_json(), seed=first.seed,
        n_bootstrap=first.n_bootstrap, n_permutations=first.n_permutations, level=first.level,
        corrections=tuple(o.correction for o in opts), normalize=first.normalize,
        n_components=first.n_components, n_init=first.n_init, max_bias=first.max_bias,
        max_clusters=first.max_clusters, method=first.method, backend=first.backend,
    )


def _parse_clusters(
    clusters: int | str | Mapping[str, int | str], variables: Mapping[str, Variable]
) -> dict[str, int | str]:
    """name -> int or a rule name for the continuous variables (labels keep their alphabet).

    ``clusters`` was validated by :class:`EstimateOptions`; what is left to check needs the data.
    """
    if isinstance(clusters, str) or _is_int(clusters):
        spec: dict[str, int | str] = {name: clusters for name in _NAMES}  # type: ignore[misc]
    else:
        spec = {name: "auto" for name in _NAMES}
        for name, value in clusters.items():
            if variables[name].kind == "labels" and value not in CLUSTER_RULES:
                raise InputError(
                    f"clusters[{name!r}] was given, but {_ARGS[name]!r} holds labels, which are "
                    "used as they are; leave it out of 'clusters'."
                )
            spec[name] = value
    return {
        name: v if isinstance(v, str) else int(v)
        for name, v in spec.items()
        if variables[name].kind == "continuous"
    }


def estimate_each_correction(
    x_image: Any,
    x_text: Any,
    y: Any,
    *,
    corrections: tuple[str, ...] = ("bootstrap", "extrapolated"),
    **options: Any,
) -> dict[str, Estimate]:
    """``{correction: estimate(x_image, x_text, y, correction=correction, **options)}``,
    computed once.

    The same as separate calls (the discretisation, the bootstrap and null tables come from
    the same seeded streams whatever the correction, and the N/4 resamples of
    ``"extrapolated"`` from a stream of their own), but the k-means ladder and the table
    solves are shared: the tables of ``"bootstrap"`` and ``"null"`` are a subset of those of
    ``"extrapolated"``. For the coverage benchmark, which compares the rules on equal terms.
    Pooled protocol, discrete estimator only.
    """
    if not corrections:
        raise OptionError("corrections", corrections, "a non-empty tuple of correction names")
    opts = [
        EstimateOptions(correction=c, **options) for c in corrections
    ]
    first = opts[0]
    if first.protocol != "pooled" or first.estimator != "discrete":
        raise OptionError(
            "protocol, estimator", (first.protocol, first.estimator),
            "('pooled', 'discrete'): estimate_each_correction runs the pooled discrete estimator only",
        )
    return _pooled(x_image, x_text, y, opts)


def _estimate_pooled_each(
    variables: Mapping[str, Variable],
    *,
    requested: Mapping[str, int | str],
    clusters_arg: Any,
    seed: int,
    n_bootstrap: int,
    n_permutations: int,
    level: float,
    corrections: tuple[str, ...],
    normalize: bool,
    n_components: int | None,
    n_init: int,
    max_bias: float,
    max_clusters: int,
    method: str,
    backend: str,
) -> dict[str, Estimate]:
    """The pooled discrete estimate under each of ``corrections``, from one discretisation
    and one batched solve (the tables of one correction do not depend on the others)."""
    timing: dict[str, float] = {}
    note = Notes()

    n = next(iter(variables.values())).n
    seeds = seed_streams(seed)

    # 1. reduce the continuous variables; count what each can support
    t = time.perf_counter()
    reduced: dict[str, tuple[np.ndarray, int | None, float | None]] = {}
    distinct: dict[str, int] = {}
    with single_thread():
        for name, var in variables.items():
            if var.kind == "continuous":
                reduced[name] = reduce(
                    var.data, normalize=normalize, n_components=n_components,
                    seed=seed_int(seeds[name]),
                )
                distinct[name] = n_distinct_rows(var.data)
    timing["pca"] = time.perf_counter() - t
    given = {name: labels_of(var) for name, var in variables.items() if var.kind == "labels"}

    # 2. choose the clusters, 3. k-means (or the exact values)
    t = time.perf_counter()
    cache: dict[tuple[str, int], np.ndarray] = {}

    def labels(name: str, k: int, *, restarts: int = 1) -> np.ndarray:
        # the auto rule fits up to 13 k-means per continuous variable: one run each
        # (k-means++ start); an explicit or conservative k gets n_init restarts
        if (name, k) not in cache:
            if k == distinct[name]:
                cache[name, k] = exact_labels(variables[name].data)
            else:
                with single_thread():
                    cache[name, k] = kmeans_labels(
                        reduced[name][0], k, seed=seed_int(seeds[name]), n_init=restarts
                    )
        return cache[name, k]

    rule = "conservative" if "conservative" in requested.values() else "auto"
    fixed = {name: d.n_clusters for name, d in given.items()}
    for name, k in requested.items():
        if k not in ("auto", "conservative"):
            check_clusters(_ARGS[name], int(k), n, distinct[name])
            fixed[name] = int(k)
    resolution = None
    if rule == "conservative":
        ks, too_few = auto_clusters(
            n, fixed, distinct, max_bias=max_bias, max_clusters=max_clusters
        )
        bias_bound = plugin_bias_bits(n, ks["image"], ks["text"], ks["target"])
    else:
        fixed_labels = {name: d.labels for name, d in given.items()}
        fixed_labels.update({name: labels(name, k, restarts=n_init)
                             for name, k in fixed.items() if name in reduced})
        resolution = choose_resolution(
            labels,
            {name: ladder(n, distinct[name], max_clusters) for name in reduced if name not in fixed},
            fixed_labels,
            distinct,
            max_bias=max_bias,
        )
        ks, bias_bound = resolution.clusters, resolution.bias
        too_few = bias_bound > max_bias
    for name in reduced:
        message = label_like_floats(variables[name].data, _ARGS[name], ks[name])
        if message:
            note(message, emit=True)
    for name in _NAMES:
        if ks[name] == 1:
            note(
                f"'{_ARGS[name]}' is constant (a single distinct value): it carries no "
                "information, so every atom involving it is 0.",
                emit=True,
            )
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

    disc: dict[str, Discretised] = dict(given)
    for name in reduced:
        z, used, explained = reduced[name]
        k = ks[name]
        exact = k == distinct[name] and k > 1
        lab = labels(name, k, restarts=n_init if resolution is None else 1)
        size = np.bincount(lab, minlength=k)
        disc[name] = Discretised(
            lab, k, "exact" if exact else "continuous", size,
            None if exact else used, None if exact else explained,
        )
        if not exact and k > 1 and size.min() < max(1.0, _DEGENERATE_FRACTION * n / k):
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
    # the second resample size of the extrapolated correction (m-out-of-n bootstrap)
    m = n // SUBSAMPLE_FRACTION
    n_sub = n_bootstrap if "extrapolated" in corrections and m >= 2 else 0
    if n_sub:
        sub_tables = bootstrap_tables(
            l1, l2, ly, shape, n_sub, np.random.default_rng(seeds["subsample"]), resample_size=m
        )
        tables = np.concatenate([tables, sub_tables])
    timing["tables"] = time.perf_counter() - t
    t = time.perf_counter()
    all_cols = solve_tables(tables, method=method, backend=backend)
    timing["solve"] = time.perf_counter() - t
    atoms = all_cols.stack()
    n_main = 1 + n_bootstrap + n_permutations
    plugin, boot, null = atoms[0], atoms[1 : 1 + n_bootstrap], atoms[1 + n_bootstrap : n_main]

    clusters = {name: int(ks[name]) for name in _NAMES}
    out: dict[str, Estimate] = {}
    shared = list(note.messages)
    for correction in corrections:
        note.messages = list(shared)
        uses_sub = bool(n_sub) and correction == "extrapolated"
        cols = all_cols if uses_sub else all_cols.head(n_main)
        bad = convergence_note(cols, note, primary=1)
        estimates, details = summarise(
            plugin, boot, null, level=level, correction=correction, note=note,
            sub=atoms[n_main:] if uses_sub else None, sizes=(n, m) if uses_sub else None,
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
        if resolution is not None:
            details["resolution"] = {**resolution.summary(), "trace": list(resolution.trace)}
        details["samples_per_cell"] = per_cell
        details["subsample"] = {"size": m if uses_sub else None, "resamples": n_sub if uses_sub else 0}
        config = {
            "protocol": "pooled",
            "clusters": clusters_arg,
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
        out[correction] = Estimate(
            **estimates,
            n=n,
            clusters=dict(clusters),
            config=config,
            warnings=tuple(note.messages),
            details=details,
            timing=dict(timing),
        )
    return out
