"""The bias correction at the boundary (issue 11): the rate-extrapolated bootstrap correction,
the m-out-of-n resamples it needs, and the interval's kind named in every output."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mmpid import synthetic
from mmpid.estimate import estimate
from mmpid.estimate.bootstrap import RATE_RANGE, extrapolated_bias
from mmpid.estimate.summary import interval_kind
from mmpid.estimate.tables import bootstrap_tables


def _replicates(c: float, r: float, n: int, m: int, cols: int = 1) -> tuple[np.ndarray, ...]:
    """Exact bootstrap means of the model E[t | variance v] = c v^r, with the plug-in at 0."""
    boot = np.full((3, cols), c * ((2 / n) ** r - (1 / n) ** r))
    sub = np.full((3, cols), c * ((1 / n + 1 / m) ** r - (1 / n) ** r))
    return np.zeros(cols), boot, sub


@pytest.mark.parametrize("rate", [0.5, 0.6, 0.75, 0.9, 1.0])
def test_extrapolated_bias_recovers_the_rate_and_the_bias(rate: float) -> None:
    n, m, c = 10_000, 2_500, 0.7
    plugin, boot, sub = _replicates(c, rate, n, m)
    bias, fitted = extrapolated_bias(plugin, boot, sub, n, m)
    np.testing.assert_allclose(fitted, [rate], atol=2e-3)
    np.testing.assert_allclose(bias, [c * n**-rate], rtol=5e-3)


def test_extrapolated_bias_classical_for_smooth_atoms_and_clipped() -> None:
    n, m = 2_000, 500
    # smooth (rate 1): exactly the bootstrap's own estimate, mean(t*) - t
    plugin, boot, sub = _replicates(3.0, 1.0, n, m)
    bias, rate = extrapolated_bias(plugin, boot, sub, n, m)
    np.testing.assert_allclose(bias, boot.mean(0) - plugin, rtol=1e-12)
    # ratios outside the model's range are clipped to its ends: never more than 1/(sqrt2 - 1)
    boot = np.array([[0.01, 0.01, -0.02, 0.0]])
    sub = np.array([[0.001, 0.5, -0.02, 0.3]])  # ratio 0.1, 50, 1 and an atom at 0 in both
    bias, rate = extrapolated_bias(np.zeros(4), boot, sub, n, m)
    np.testing.assert_allclose(rate, [RATE_RANGE[0], RATE_RANGE[1], RATE_RANGE[0], RATE_RANGE[1]])
    np.testing.assert_allclose(bias, [0.01 / (2**0.5 - 1), 0.01, -0.02 / (2**0.5 - 1), 0.0])


def test_bootstrap_tables_of_another_size() -> None:
    rng = np.random.default_rng(0)
    l1, l2, ly = (rng.integers(0, 3, 400) for _ in range(3))
    tables = bootstrap_tables(l1, l2, ly, (3, 3, 3), 5, np.random.default_rng(1), resample_size=100)
    assert tables.shape == (5, 3, 3, 3)
    np.testing.assert_array_equal(tables.sum(axis=(1, 2, 3)), np.full(5, 100.0))


def test_extrapolated_correction_removes_more_of_the_boundary_bias() -> None:
    """AND (uniques truly 0 beside redundancy): the classical rule removes about 41% of the
    uniques' bias; the extrapolated one removes more, and the same resamples feed both."""
    data = synthetic.make("and", 3_000, seed=4)
    kw = dict(n_bootstrap=60, n_permutations=2, seed=0)
    new = estimate(data.a, data.b, data.t, correction="extrapolated", **kw)
    old = estimate(data.a, data.b, data.t, **kw)  # the default, "bootstrap"
    for atom in ("unique_image", "unique_text"):
        d = new.details["atoms"][atom]
        assert RATE_RANGE[0] <= d["bias_rate"] <= RATE_RANGE[1]
        np.testing.assert_allclose(d["bias_removed"], d["bootstrap_bias"] / (2 ** d["bias_rate"] - 1))
        np.testing.assert_allclose(new[atom].plugin, old[atom].plugin)
        np.testing.assert_allclose(d["bootstrap_bias"], old.details["atoms"][atom]["bootstrap_bias"])
        assert new[atom].corrected <= old[atom].corrected + 1e-12
        # the interval is centred on the corrected value and widened by the correction applied
        assert new[atom].ci_low <= new[atom].corrected - abs(d["bias_removed"]) + 1e-12
    assert new.details["subsample"] == {"size": 750, "resamples": 60}
    assert old.details["subsample"] == {"size": None, "resamples": 0}
    assert "basic bootstrap interval" in new.details["interval_kind"]
    assert "rate-extrapolated" in new.details["interval_kind"]
    assert "rate-extrapolated" not in old.details["interval_kind"]


def test_interval_kind_names_level_and_rule() -> None:
    assert interval_kind("extrapolated", 0.9).startswith("90% basic bootstrap interval")
    assert "null-mean" in interval_kind("null", 0.95)
    assert "Gaussian" in interval_kind("gaussian", 0.95)


def test_each_correction_at_once_equals_separate_calls() -> None:
    """The coverage benchmark's shared run (one discretisation, one solve) gives exactly the
    numbers of separate estimate() calls, for every correction."""
    from mmpid.estimate.core import estimate_each_correction

    data = synthetic.make("and", 1_000, dim_image=8, dim_text=8, seed=7)
    kw = dict(n_bootstrap=20, n_permutations=3, seed=2)
    both = estimate_each_correction(data.x_image, data.x_text, data.t,
                                    corrections=("bootstrap", "extrapolated", "null"), **kw)
    for corr, shared in both.items():
        alone = estimate(data.x_image, data.x_text, data.t, correction=corr, **kw)
        pd.testing.assert_frame_equal(shared.to_frame(), alone.to_frame())
        assert json.dumps(shared.details, default=str) == json.dumps(alone.details, default=str)
        assert shared.warnings == alone.warnings and shared.config == alone.config
        assert shared.details["subsample"] == alone.details["subsample"]
        assert shared.details["solver"]["tables"] == alone.details["solver"]["tables"]
