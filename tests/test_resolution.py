"""The resolution rule behind clusters='auto': which clusters each variable gets, and why."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mmpid import synthetic
from mmpid.errors import EstimateWarning
from mmpid.estimate import BIT_ATOMS, estimate
from mmpid.estimate.resolution import (
    LADDER,
    MIN_PER_CLUSTER,
    corrected_information,
    ladder,
    solver_work,
    tolerance,
)


def _entropy(labels: np.ndarray) -> float:
    c = np.bincount(labels) / len(labels)
    c = c[c > 0]
    return float(-(c * np.log2(c)).sum())


def test_corrected_information_by_hand() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 4, 1000), rng.integers(0, 3, 1000)
    # y a function of (a, b): every occupied pair has one y, so m123 = m12 and the
    # first-order bias is -(m3 - 1) / (2 N ln 2); nothing is unseen
    y = (a + b) % 5
    value, bias, missing = corrected_information(a, b, y)
    assert bias == pytest.approx(-(5 - 1) / (2 * 1000 * math.log(2)))
    assert value + bias == pytest.approx(_entropy(y), abs=1e-12)  # the plug-in I = H(y)
    assert missing == 0.0
    # all-distinct samples: every cell seen once, the whole mass unseen
    idx = np.arange(50)
    assert corrected_information(idx, idx, idx)[2] == 1.0


def test_ladder_tops_out_at_the_exact_values() -> None:
    assert ladder(10_000, 107, 128) == [k for k in LADDER if k < 107] + [107]
    assert ladder(10_000, 10_000, 128) == list(LADDER)  # continuous: no exact step
    assert ladder(10_000, 300, 128) == list(LADDER)  # too many distinct values to keep
    assert max(ladder(1_000, 10_000, 128)) <= 1_000 // MIN_PER_CLUSTER
    assert ladder(500, 1, 128) == [1]  # a constant variable


def test_tolerance_and_work() -> None:
    assert tolerance(0.1) == 0.01 and tolerance(3.0) == pytest.approx(0.03)
    # the Schur complement is formed on the smaller source's side
    assert solver_work(107, 24, 13) == solver_work(24, 107, 13) == 107 * 13 * (24 * 13) ** 2


def _quiet_estimate(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimateWarning)
        return estimate(*args, n_bootstrap=30, n_permutations=10, seed=0, **kwargs)


def test_few_distinct_rows_are_kept_exactly() -> None:
    # 40 distinct "questions", each a fixed embedding; the target reads 20 bits of them
    rng = np.random.default_rng(1)
    n = 4000
    q = rng.integers(0, 40, n)
    centres = rng.normal(size=(40, 16))
    x_text = centres[q]
    x_image = rng.normal(size=(n, 16))
    y = q % 20
    est = _quiet_estimate(x_image, x_text, y)
    assert est.details["resolution"]["exact"] == ["text"]
    assert est.clusters["text"] == 40
    assert est.details["variables"]["text"]["kind"] == "exact"
    assert est.unique_text.corrected == pytest.approx(_entropy(y), abs=0.02)
    assert est.clusters["image"] == LADDER[0]  # the image adds nothing: the coarsest step


def test_independent_data_keep_the_coarsest_resolution() -> None:
    data = synthetic.make("independent", 3000, dim_target=16, seed=2)
    est = _quiet_estimate(data.x_image, data.x_text, data.y)
    trace = est.details["resolution"]["trace"]
    assert len(trace) == len(ladder(3000, 3000, 128)) ** 3  # every candidate is scored
    assert min(est.clusters.values()) == 2
    chosen = [t for t in trace if all(t[v] == est.clusters[v] for v in est.clusters)]
    assert chosen and chosen[0]["admissible"]


def test_redundancy_needs_both_sources_resolved() -> None:
    # a = b = t on 16 symbols: the joint information is the same whichever source is
    # resolved, but redundancy needs both; the rule scores each source's own information too
    data = synthetic.make("redundant_16", 4000, seed=3)
    est = _quiet_estimate(data.x_image, data.x_text, data.y)
    assert est.clusters["image"] >= 16 and est.clusters["text"] >= 16
    assert est.redundancy.corrected == pytest.approx(4.0, abs=0.02)


def test_conservative_rule_is_kept() -> None:
    data = synthetic.make("and", 5000, dim_target=32, seed=31)
    est = _quiet_estimate(data.x_image, data.x_text, data.y, clusters="conservative")
    assert est.clusters == {"image": 7, "text": 7, "target": 7}
    assert "resolution" not in est.details
    assert est.config["clusters"] == "conservative"


@pytest.mark.slow
@pytest.mark.parametrize("structure", synthetic.MANY_CLASSES)
def test_many_latent_classes_recovered_at_n_10000(structure: str) -> None:
    # the bar: every atom within 0.05 bits of the truth at N = 10,000
    data = synthetic.make(structure, 10_000, seed=5)
    est = estimate(data.x_image, data.x_text, data.y, n_bootstrap=60, n_permutations=10, seed=0)
    for atom in BIT_ATOMS:
        assert abs(est[atom].corrected - data.truth[atom]) <= 0.05, (atom, est[atom])
        assert est[atom].contains(data.truth[atom]), (atom, est[atom])


def test_over_budget_the_target_is_coarsened_first() -> None:
    from mmpid.estimate.discretise import kmeans_labels, reduce
    from mmpid.estimate.resolution import choose_resolution

    data = synthetic.make("redundant_16", 3000, dim_target=16, seed=4)
    z = {v: reduce(x)[0] for v, x in (("image", data.x_image), ("text", data.x_text),
                                      ("target", data.y))}
    cache: dict = {}

    def labels(v: str, k: int) -> np.ndarray:
        if (v, k) not in cache:
            cache[v, k] = kmeans_labels(z[v], k, seed=0)
        return cache[v, k]

    steps = [2, 4, 8, 16, 24]
    free = choose_resolution(labels, dict.fromkeys(("image", "text", "target"), steps), {},
                             dict.fromkeys(("image", "text", "target"), 3000), max_bias=0.05)
    assert free.clusters == {"image": 16, "text": 16, "target": 16}
    tight = choose_resolution(labels, dict.fromkeys(("image", "text", "target"), steps), {},
                              dict.fromkeys(("image", "text", "target"), 3000), max_bias=0.05,
                              max_work=solver_work(16, 16, 8))
    assert tight.clusters == {"image": 16, "text": 16, "target": 8}


def test_a_rule_per_variable_is_recorded_as_given() -> None:
    data = synthetic.make("and", 2000, dim_target=8, seed=6)
    est = _quiet_estimate(data.x_image, data.x_text, data.y,
                          clusters={"image": "conservative", "text": 5})
    assert est.config["clusters"] == {"image": "conservative", "text": 5}
    assert est.clusters["text"] == 5 and "resolution" not in est.details
