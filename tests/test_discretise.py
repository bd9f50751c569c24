"""Discretisation: validation, the 'auto' cluster rule, PCA + k-means labels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmpid.errors import InputError, SampleSizeError
from mmpid.estimate.discretise import (
    as_variable,
    auto_clusters,
    check_clusters,
    kmeans_labels,
    labels_of,
    n_distinct_rows,
    plugin_bias_bits,
    reduce,
)

ALL_CONTINUOUS: dict[str, int] = {}
BIG = {"image": 10**6, "text": 10**6, "target": 10**6}


def test_plugin_bias_formula() -> None:
    # (k1 k2 - 1)(ky - 1) / (2 N ln 2)
    assert plugin_bias_bits(1000, 4, 5, 3) == pytest.approx(19 * 2 / (2000 * math.log(2)))
    assert plugin_bias_bits(1000, 4, 5, 1) == 0.0


@pytest.mark.parametrize(("n", "k"), [(2000, 5), (3000, 6), (5000, 7), (100_000, 19)])
def test_auto_rule_all_continuous(n: int, k: int) -> None:
    ks, too_few = auto_clusters(n, ALL_CONTINUOUS, BIG, max_bias=0.05, max_clusters=20)
    assert ks == {"image": k, "text": k, "target": k}
    assert not too_few
    # k is the largest choice within the bias budget
    assert plugin_bias_bits(n, k, k, k) <= 0.05 < plugin_bias_bits(n, k + 1, k + 1, k + 1)


def test_auto_rule_respects_label_alphabets_and_caps() -> None:
    ks, _ = auto_clusters(3000, {"target": 13}, BIG, max_bias=0.05)
    # (k^2 - 1) * 12 <= 0.05 * 2 * 3000 * ln 2 = 207.9  ->  k = 4
    assert ks == {"image": 4, "text": 4, "target": 13}
    # a variable with 3 distinct rows never gets more than 3 clusters; the others grow instead
    ks, _ = auto_clusters(5000, {}, {"image": 3, "text": 10**6, "target": 10**6})
    assert ks["image"] == 3
    assert ks["text"] == ks["target"] > 7
    assert plugin_bias_bits(5000, ks["image"], ks["text"], ks["target"]) <= 0.05


def test_auto_rule_max_clusters_and_too_few() -> None:
    ks, too_few = auto_clusters(10**7, {}, BIG, max_clusters=12)
    assert ks == {"image": 12, "text": 12, "target": 12} and not too_few
    ks, too_few = auto_clusters(50, {"target": 13}, BIG)
    assert ks == {"image": 2, "text": 2, "target": 13}
    assert too_few


def test_labels_pass_through_and_relabel() -> None:
    var = as_variable(np.array([7, 3, 7, 9, 3]), "y")
    assert var.kind == "labels"
    disc = labels_of(var)
    np.testing.assert_array_equal(disc.labels, [1, 0, 1, 2, 0])
    assert disc.n_clusters == 3
    np.testing.assert_array_equal(disc.sizes, [2, 2, 1])
    assert as_variable(np.array(["a", "b", "a"]), "y").kind == "labels"


def test_float_1d_is_one_continuous_feature() -> None:
    var = as_variable(np.array([0.5, 1.5, 2.5]), "x_image")
    assert var.kind == "continuous" and var.data.shape == (3, 1)


def test_nan_rows_are_named() -> None:
    x = np.ones((10, 3))
    x[4, 1] = np.nan
    x[7, 0] = np.inf
    with pytest.raises(InputError, match=r"'x_text' has 2 row\(s\) with NaN or inf values \(rows 4, 7\)"):
        as_variable(x, "x_text")


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (np.ones((2, 3, 4)), "must have shape"),
        (np.ones((0, 3)), "is empty"),
        (np.ones((5, 0)), "has no features"),
    ],
)
def test_bad_shapes(x: np.ndarray, match: str) -> None:
    with pytest.raises(InputError, match=match):
        as_variable(x, "x_image")


def test_reduce_normalises_rows_and_projects() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 30)) * rng.uniform(1, 50, size=(200, 1))
    z, used, explained = reduce(x, normalize=True, n_components=None)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0)
    assert used is None and explained is None
    z, used, explained = reduce(x, normalize=True, n_components=5, seed=0)
    assert z.shape == (200, 5) and used == 5 and 0 < explained < 1
    # scaling a row does not move it after normalisation
    x2 = x.copy()
    x2[0] *= 1000
    z2, _, _ = reduce(x2, normalize=True, n_components=5, seed=0)
    np.testing.assert_allclose(z2, z, atol=1e-10)
    # a single feature is never normalised (it would collapse to +-1)
    z1, _, _ = reduce(np.arange(5.0)[:, None], normalize=True)
    np.testing.assert_array_equal(z1[:, 0], np.arange(5.0))


def test_kmeans_recovers_separated_clusters_and_is_seeded() -> None:
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 3, size=300)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    z = centres[truth] + rng.normal(scale=0.5, size=(300, 2))
    labels = kmeans_labels(z, 3, seed=0)
    # same partition as the truth, labels numbered by first appearance
    assert len({(a, b) for a, b in zip(truth, labels)}) == 3
    assert labels[0] == 0 and set(labels) == {0, 1, 2}
    np.testing.assert_array_equal(labels, kmeans_labels(z, 3, seed=0))
    np.testing.assert_array_equal(kmeans_labels(z, 1), np.zeros(300, dtype=np.int64))


def test_distinct_rows_and_cluster_checks() -> None:
    z = np.array([[0.0, 1.0], [0.0, 1.0], [2.0, 3.0]])
    assert n_distinct_rows(z) == 2
    with pytest.raises(SampleSizeError, match="only N = 3 samples"):
        check_clusters("x_image", 4, 3, 3)
    with pytest.raises(SampleSizeError, match="has only 2 distinct rows"):
        check_clusters("x_image", 3, 3, 2)
    with pytest.raises(InputError, match="must be an int >= 1"):
        check_clusters("x_image", 0, 3, 2)


def test_float_noise_does_not_split_a_constant_variable() -> None:
    import warnings as _w

    import mmpid
    from mmpid.errors import EstimateWarning

    rng = np.random.default_rng(3)
    row = rng.normal(size=16)
    y = np.tile(row, (400, 1)) + 1e-9 * rng.normal(size=(400, 16))
    assert n_distinct_rows(y) == 1
    assert n_distinct_rows(np.vstack([y, y[:1] + 1.0])) == 2
    with _w.catch_warnings(record=True) as caught:
        _w.simplefilter("always")
        est = mmpid.estimate(rng.normal(size=(400, 8)), rng.normal(size=(400, 8)), y, n_bootstrap=10, n_permutations=4)
    assert est.clusters["target"] == 1
    assert any(issubclass(w.category, EstimateWarning) and "constant" in str(w.message) for w in caught)
    assert est.synergy.plugin == 0.0 and est.redundancy.plugin == 0.0
