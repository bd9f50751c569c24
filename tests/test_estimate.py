"""The estimator: tables, null, bootstrap, contribution, result objects, validation (fast)."""

from __future__ import annotations

import dataclasses
import json
import math
import warnings

import numpy as np
import pytest

from mmpid import synthetic
from mmpid.errors import EstimateWarning, InputError, OptionError, SampleSizeError
from mmpid.estimate import ATOMS, AtomEstimate, Estimate, contribution_image, estimate
from mmpid.estimate.bootstrap import SOLVER_ATOL, bootstrap_bias, interval, reflected_replicates
from mmpid.estimate.null import summarise_null
from mmpid.estimate.options import EstimateOptions
from mmpid.estimate.tables import bootstrap_tables, joint_table, permutation_tables

FAST = {"n_bootstrap": 40, "n_permutations": 20}


def _labels(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 3, n), rng.integers(0, 4, n), rng.integers(0, 2, n)


# ---------------------------------------------------------------- tables
def test_joint_table_counts_triples() -> None:
    l1, l2, ly = np.array([0, 0, 1, 2]), np.array([1, 1, 0, 3]), np.array([1, 1, 0, 0])
    t = joint_table(l1, l2, ly, (3, 4, 2))
    assert t.shape == (3, 4, 2) and t.sum() == 4
    assert t[0, 1, 1] == 2 and t[1, 0, 0] == 1 and t[2, 3, 0] == 1


def test_bootstrap_tables_are_resamples() -> None:
    l1, l2, ly = _labels(500)
    shape = (3, 4, 2)
    tabs = bootstrap_tables(l1, l2, ly, shape, 7, np.random.default_rng(0))
    assert tabs.shape == (7, *shape)
    np.testing.assert_array_equal(tabs.sum(axis=(1, 2, 3)), 500)
    # a resample only holds cells that the data holds
    data = joint_table(l1, l2, ly, shape)
    assert np.all(tabs[:, data == 0] == 0)
    again = bootstrap_tables(l1, l2, ly, shape, 7, np.random.default_rng(0))
    np.testing.assert_array_equal(tabs, again)
    assert not np.array_equal(tabs[0], tabs[1])


def test_permutation_tables_keep_both_marginals() -> None:
    l1, l2, ly = _labels(400, seed=1)
    ly = (l1 == 0).astype(np.int64)  # y depends on the image
    shape = (3, 4, 2)
    data = joint_table(l1, l2, ly, shape)
    tabs = permutation_tables(l1, l2, ly, shape, 5, np.random.default_rng(0))
    for t in tabs:
        np.testing.assert_array_equal(t.sum(axis=2), data.sum(axis=2))  # (image, text) pairs
        np.testing.assert_array_equal(t.sum(axis=(0, 1)), data.sum(axis=(0, 1)))  # target
    # the dependence is gone: y=1 is no longer confined to image label 0
    assert tabs[:, 1:, :, 1].sum() > 0 and data[1:, :, 1].sum() == 0


# ---------------------------------------------------------------- null, bootstrap, contribution
def test_null_summary() -> None:
    null = np.array([[0.1, 1.0], [0.2, 2.0], [0.3, 3.0], [0.4, 4.0]])
    s = summarise_null(np.array([0.25, 5.0]), null)
    np.testing.assert_allclose(s.mean, [0.25, 2.5])
    np.testing.assert_allclose(s.sd, np.std(null, axis=0, ddof=1))
    # p = (1 + #{null >= plugin}) / (P + 1)
    np.testing.assert_allclose(s.p_value, [3 / 5, 1 / 5])


def test_reflected_replicates_and_basic_interval() -> None:
    plugin = np.array([1.0])
    boot = np.array([[1.1], [1.2], [1.3], [1.4], [1.5]])
    bias = bootstrap_bias(plugin, boot)
    np.testing.assert_allclose(bias, [0.3])
    refl = reflected_replicates(plugin, boot, bias)
    np.testing.assert_allclose(refl[:, 0], 2 * 1.0 - boot[:, 0])  # 2t - t*
    np.testing.assert_allclose(refl.mean(), 0.7)  # the corrected value
    lo, hi = interval(refl, 0.5)
    np.testing.assert_allclose([lo[0], hi[0]], np.quantile(2 - boot[:, 0], [0.25, 0.75]))
    # with another bias (the null's), the replicates are shifted, not rescaled
    refl_null = reflected_replicates(plugin, boot, np.array([0.1]))
    np.testing.assert_allclose(refl_null - refl, 0.2)
    lo, hi = interval(np.array([[np.nan], [np.nan]]), 0.9)
    assert math.isnan(lo[0]) and math.isnan(hi[0])


def test_contribution_metric() -> None:
    c = contribution_image(np.array([0.3, 0.0, -0.1, 0.5, 0.0]), np.array([0.1, 0.0, 0.2, -0.2, -0.1]))
    np.testing.assert_allclose(c, [0.75, np.nan, 0.0, 1.0, np.nan])
    assert float(contribution_image(1.0, 1.0)) == 0.5


# ---------------------------------------------------------------- results
def _atom(v: float) -> AtomEstimate:
    return AtomEstimate(v, 0.0, v, v - 0.1, v + 0.1)


def test_estimate_result_api() -> None:
    est = Estimate(
        *(_atom(i / 10) for i in range(4)),
        AtomEstimate(0.6, 0.5, math.nan, math.nan, math.nan),
        AtomEstimate(0.4, 0.5, math.nan, math.nan, math.nan),
        n=10,
        clusters={"image": 2, "text": 2, "target": 2},
        config={"seed": 0},
    )
    assert est["synergy"] is est.synergy and est.synergy.corrected == 0.3
    with pytest.raises(KeyError, match="'nope' is not an atom"):
        est["nope"]
    assert list(est) == list(ATOMS)
    frame = est.to_frame()
    assert list(frame.columns) == ["atom", "plugin", "null_mean", "corrected", "ci_low", "ci_high"]
    assert list(frame.atom) == list(ATOMS)
    assert not est.contribution_image.defined and est.redundancy.defined
    assert est.unique_text.contains(0.2) and not est.unique_text.contains(0.31)
    d = est.to_dict()
    assert d["atoms"]["unique_image"] == {"plugin": 0.1, "null_mean": 0.0, "corrected": 0.1,
                                          "ci_low": 0.1 - 0.1, "ci_high": 0.1 + 0.1}
    json.dumps(d)  # serialisable (NaN allowed)
    with pytest.raises(AttributeError):
        est.n = 3  # type: ignore[misc]


# ---------------------------------------------------------------- estimate() on labels (fast)
def test_estimate_on_labels_finds_unique_image() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 2, 2000), rng.integers(0, 2, 2000)
    est = estimate(a, b, a.copy(), seed=0, **FAST)
    assert est.clusters == {"image": 2, "text": 2, "target": 2}
    assert est.config["kinds"] == {"image": "labels", "text": "labels", "target": "labels"}
    assert est.unique_image.corrected == pytest.approx(1.0, abs=0.01)
    assert est.unique_image.contains(1.0)
    for atom in ("redundancy", "unique_text", "synergy"):
        assert abs(est[atom].corrected) < 0.01 and est[atom].contains(0.0)
    assert est.contribution_image.corrected == pytest.approx(1.0, abs=1e-12)
    assert est.contribution_text.corrected == pytest.approx(0.0, abs=1e-12)
    assert est.contribution_image.contains(1.0)
    # every atom sits inside its own interval, the contributions sum to 1
    for atom in ATOMS:
        e = est[atom]
        assert e.ci_low <= e.corrected <= e.ci_high, atom
    assert est.contribution_image.plugin + est.contribution_text.plugin == pytest.approx(1.0)
    assert est.details["atoms"]["unique_image"]["p_value"] == pytest.approx(1 / 21)
    assert est.details["solver"]["tables"] == 1 + 40 + 20  # data, bootstrap, permutations
    json.dumps(est.to_dict())


def test_estimate_is_deterministic() -> None:
    d = synthetic.make("and", 600, dim_image=16, dim_text=16, seed=0)
    one = estimate(d.x_image, d.x_text, d.y, seed=3, **FAST)
    two = estimate(d.x_image, d.x_text, d.y, seed=3, **FAST)
    assert one == two
    assert json.dumps(one.to_dict(), sort_keys=True) == json.dumps(two.to_dict(), sort_keys=True)
    other = estimate(d.x_image, d.x_text, d.y, seed=4, **FAST)
    assert other.synergy.ci_low != one.synergy.ci_low


def test_null_correction_subtracts_the_null_mean() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 3, 1500), rng.integers(0, 3, 1500)
    y = (a + b) % 3
    est = estimate(a, b, y, correction="null", seed=0, **FAST)
    for atom in ("redundancy", "unique_image", "unique_text", "synergy"):
        e = est[atom]
        assert e.corrected == pytest.approx(e.plugin - e.null_mean, abs=1e-12)
    assert est.config["correction"] == "null"


def test_contribution_undefined_when_no_unique_information() -> None:
    rng = np.random.default_rng(2)
    a, b = rng.integers(0, 2, 1500), rng.integers(0, 2, 1500)
    est = estimate(a, b, a ^ b, seed=0, **FAST)
    for atom in ("contribution_image", "contribution_text"):
        e = est[atom]
        assert not e.defined and math.isnan(e.ci_low) and math.isnan(e.ci_high)
    assert any("contribution metric is undefined" in w for w in est.warnings)
    assert est.details["contribution_defined"] is False
    assert any("Not distinguishable from the permutation null" in w and "redundancy" in w for w in est.warnings)


def test_interval_widened_by_solver_accuracy_for_exact_zeros() -> None:
    a = np.repeat([0, 1], 500)
    est = estimate(a, a.copy(), a.copy(), seed=0, **FAST)  # a = b = y: R = 1, nothing else
    for atom in ("unique_image", "unique_text", "synergy"):
        e = est[atom]
        assert e.ci_low <= 0 <= e.ci_high and e.ci_high - e.ci_low <= 2 * SOLVER_ATOL + 1e-9


# ---------------------------------------------------------------- bad input
def test_mismatched_n() -> None:
    with pytest.raises(InputError, match=r"same number of samples N; got \{'x_image': 10, 'x_text': 9"):
        estimate(np.zeros(10, int), np.zeros(9, int), np.zeros(10, int))


def test_nan_rows_named() -> None:
    x = np.random.default_rng(0).normal(size=(50, 4))
    x[[3, 17]] = np.nan
    with pytest.raises(InputError, match=r"'x_text' has 2 row\(s\) with NaN or inf values \(rows 3, 17\)"):
        estimate(np.zeros(50, int), x, np.zeros(50, int))
    x[[3, 17]] = np.inf
    with pytest.raises(InputError, match="'y' has 2 row"):
        estimate(np.zeros(50, int), np.zeros(50, int), x)


def test_more_clusters_than_samples() -> None:
    x = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(SampleSizeError, match="clusters for 'x_image' is 30 but there are only N = 20"):
        estimate(x, x, x, clusters=30, **FAST)
    dup = np.repeat(x[:3], 10, axis=0)  # 30 rows, 3 distinct
    with pytest.raises(SampleSizeError, match="'x_text' has only 3 distinct rows"):
        estimate(np.zeros(30, int), dup, np.zeros(30, int), clusters={"text": 5}, **FAST)


def test_constant_variable_warns_and_gives_zero_atoms() -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 2, 400)
    const = np.ones((400, 8))
    with pytest.warns(EstimateWarning, match="'x_text' is constant"):
        est = estimate(a, const, a.copy(), seed=0, **FAST)
    assert est.clusters["text"] == 1
    assert est.unique_image.corrected == pytest.approx(1.0, abs=0.01)
    for atom in ("redundancy", "unique_text", "synergy"):
        assert est[atom].corrected == pytest.approx(0.0, abs=1e-6)


def test_too_few_samples_per_cell_warns() -> None:
    x = np.random.default_rng(0).normal(size=(300, 5))
    with pytest.warns(EstimateWarning, match=r"Too few samples per cell: N = 300 for a 8x8x8 joint"):
        est = estimate(x, x[:, ::-1].copy(), x[:, 1:].copy(), clusters=8, seed=0, **FAST)
    assert any("Too few samples per cell" in w for w in est.warnings)


def test_degenerate_cluster_warns() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 3))
    x[0] = [1e6, -1e6, 1e6]  # an outlier gets a cluster of its own
    with pytest.warns(EstimateWarning, match="Degenerate cluster in 'x_image'"):
        estimate(x, rng.integers(0, 2, 600), rng.integers(0, 2, 600), clusters=4, normalize=False,
                 seed=0, **FAST)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"level": 1.0}, r"'level' must be a number in \(0, 1\), e.g. 0.95; got 1.0"),
        ({"level": 95}, r"'level' must be a number in \(0, 1\).*got 95"),
        ({"n_bootstrap": 1}, "'n_bootstrap' must be an int >= 2; got 1"),
        ({"n_permutations": 2.5}, "'n_permutations' must be an int >= 2; got 2.5"),
        ({"protocol": "token"}, r"'protocol' must be one of \['pooled', 'per-sample'\]; got 'token'"),
        ({"correction": "none"}, "'correction' must be one of"),
        ({"clusters": "many"}, r"'clusters' must be one of \['auto', 'conservative'\]"),
        ({"clusters": 0}, "'clusters' must be .*an int >= 1.*got 0"),
        ({"clusters": {"audio": 3}}, r"Unknown keys: \['audio'\]"),
        ({"clusters": {"target": 3}}, "holds labels, which are used as they are"),
        ({"seed": -1}, "'seed' must be a non-negative int"),
        ({"max_bias": 0}, "'max_bias' must be a positive"),
        ({"n_components": 0}, "'n_components' must be None or an int"),
        ({"method": "cvx"}, r"'method' must be one of \['exact', 'ipfp'\]"),
        ({"backend": "jax"}, "'backend' must be one of"),
        ({"length": 5}, "'length' must be left at its default .* with protocol='pooled'"),
        ({"n_shuffles": 3}, "'n_shuffles' must be left at its default"),
        # options of the pooled protocol are refused, not ignored, under per-sample
        ({"protocol": "per-sample", "correction": "null"}, "'correction' must be left at its default"),
        ({"protocol": "per-sample", "n_permutations": 999}, "'n_permutations' must be left at its"),
        ({"protocol": "per-sample", "max_clusters": 20}, "'max_clusters' must be left at its"),
        ({"protocol": "per-sample", "clusters": {"image": 3}}, "'clusters' must be an int >= 1 or 'auto'"),
    ],
)
def test_bad_options(kwargs: dict, match: str) -> None:
    x = np.random.default_rng(0).normal(size=(50, 4))
    with pytest.raises(InputError, match=match):
        estimate(x, x, np.zeros(50, int), **kwargs)


def test_options_are_checked_before_the_data() -> None:
    """A bad option is reported even when the data would fail too: nothing is computed first."""
    with pytest.raises(OptionError, match="'level'"):
        estimate(np.full((5, 2), np.nan), [1], "not data", level=2.0)


def test_options_record_what_was_used() -> None:
    opts = EstimateOptions(clusters=np.int64(4), seed=np.int64(3), level=0.9)
    assert opts.to_dict()["clusters"] == 4 and type(opts.seed) is int
    assert json.loads(json.dumps(opts.to_dict())) == opts.to_dict()
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.level = 0.5  # type: ignore[misc]


def test_float_labels_warn() -> None:
    """13 classes stored as floats are clustered, not kept: the user is told so."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 13, 1500)
    x = rng.normal(size=(1500, 4))
    with pytest.warns(EstimateWarning, match=r"'y' is a float array holding only 13 distinct"):
        est = estimate(x, x, y.astype(np.float32), clusters={"image": 2, "text": 2}, **FAST)
    assert est.clusters["target"] < 13
    assert any("13 distinct" in w for w in est.warnings)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = estimate(x, x, y, clusters={"image": 2, "text": 2}, **FAST)
    assert est.clusters["target"] == 13


def test_no_warnings_on_clean_data() -> None:
    d = synthetic.make("copy", 800, dim_image=16, dim_text=16, dim_target=8, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = estimate(d.x_image, d.x_text, d.y, seed=0, **FAST)
    assert est.contribution_image.contains(0.5)
    assert est.contribution_image.corrected == pytest.approx(0.5, abs=0.02)
    assert est.contribution_text.corrected == pytest.approx(1 - est.contribution_image.corrected)
    assert est.contribution_text.ci_low == pytest.approx(1 - est.contribution_image.ci_high)


# ---------------------------------------------------------------- per-sample protocol (fast parts)
def test_derangement_has_no_fixed_points() -> None:
    from mmpid.estimate.per_sample import _derangement

    rng = np.random.default_rng(0)
    for n in (2, 3, 10, 101):
        perm = _derangement(n, rng)
        np.testing.assert_array_equal(np.sort(perm), np.arange(n))
        assert np.all(perm != np.arange(n))


def test_per_sample_validation() -> None:
    rng = np.random.default_rng(0)
    sets = [rng.normal(size=(6, 4)) for _ in range(5)]
    with pytest.raises(InputError, match="same number of examples"):
        estimate(sets, sets[:4], sets, protocol="per-sample")
    with pytest.raises(InputError, match=r"x_text\[2\] must be a \(T, d\) token array"):
        estimate(sets, sets[:2] + [np.ones(4)] + sets[3:], sets, protocol="per-sample")
    with pytest.raises(InputError, match=r"y\[1\] has dimension 3 but y\[0\] has 4"):
        estimate(sets, sets, [sets[0], np.ones((6, 3))] + sets[2:], protocol="per-sample")
    with pytest.raises(SampleSizeError, match="'length' is 9 but example 0 has a token set of only 6"):
        estimate(sets, sets, sets, protocol="per-sample", length=9)
    with pytest.raises(InputError, match="'clusters' must be an int >= 1 or 'auto' \\(10, as the paper\\)"):
        estimate(sets, sets, sets, protocol="per-sample", clusters={"image": 3})
    with pytest.raises(InputError, match="an \\(N, T, d\\) array or a sequence"):
        estimate(np.ones((5, 4)), sets, sets, protocol="per-sample")


def test_per_sample_small_run() -> None:
    rng = np.random.default_rng(0)
    n = 8
    img = rng.normal(size=(n, 12, 6))
    txt = [rng.normal(size=(int(t), 6)) for t in rng.integers(8, 12, n)]
    tgt = rng.normal(size=(n, 14, 5))
    with pytest.warns(EstimateWarning, match="Only 8 examples"):
        est = estimate(img, txt, tgt, protocol="per-sample", clusters=4, n_bootstrap=20, seed=0)
    assert est.n == n and est.clusters == {"image": 4, "text": 4, "target": 4}
    assert est.config["protocol"] == "per-sample"
    assert est.details["lengths"] == [len(t) for t in txt]  # the shortest set of each example
    per_example = np.array([est.details["per_example"][a] for a in ("redundancy", "unique_image",
                                                                      "unique_text", "synergy")])
    np.testing.assert_allclose(est.redundancy.plugin, per_example[0].mean())
    for atom in ("redundancy", "unique_image", "unique_text", "synergy"):
        e = est[atom]
        assert e.corrected == pytest.approx(e.plugin - e.null_mean)
        assert e.ci_low <= e.corrected <= e.ci_high
    assert est.warnings[0].startswith("Per-sample protocol")
    with pytest.warns(EstimateWarning, match="Only 8 examples"):
        again = estimate(img, txt, tgt, protocol="per-sample", clusters=4, n_bootstrap=20, seed=0)
    assert again == est


def test_top_level_mmpid_estimate_is_callable() -> None:
    import mmpid
    import mmpid.estimate  # binds mmpid.estimate to the subpackage, which must stay callable

    a = np.repeat([0, 1], 200)
    est = mmpid.estimate(a, a.copy(), a.copy(), seed=0, **FAST)
    assert isinstance(est, Estimate)
    assert est == estimate(a, a.copy(), a.copy(), seed=0, **FAST)
    assert est.redundancy.corrected == pytest.approx(1.0, abs=0.01)
