"""Known-answer validation of the whole pipeline on the zoo (issue 5).

`zoo:blind` was trained with every question paired with a random other image, so its
predictions cannot depend on the image; `zoo:normal` was trained on matching pairs and loses
32 points of accuracy without the image. mmpid must tell them apart, end to end: extraction
through the same adapter as a hub model, discretisation, permutation null, bias correction,
bootstrap. Both run on the whole easy-vqa test split (9,673 questions) with the default
'auto' clusters (7 per continuous variable in the span protocol, where Y is the 13-way
prediction).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from mmpid.data import load_dataset
from mmpid.errors import EstimateWarning
from mmpid.estimate import Estimate, estimate
from mmpid.extract import extract
from mmpid.models.registry import load_adapter
from mmpid.store import FeatureStore
from mmpid.zoo import resolve

pytestmark = pytest.mark.slow

N = 9673  # the whole test split
SETTINGS = {"clusters": "auto", "n_bootstrap": 100, "n_permutations": 50, "seed": 0}
#: Issue 5's bar for normal's U_image + S (span protocol, last layer, Y = prediction).
ISSUE_BAR = 0.5


def _last_layer(model: str, protocol: str, out: Path) -> tuple:
    adapter = load_adapter(str(resolve(model)), device="cpu")
    data = load_dataset("easy-vqa", split="test")
    extract(adapter, data, out, protocol=protocol, target="prediction", batch_size=64, progress=False)
    store = FeatureStore.open(out)
    return store.load(store.layers[-1])


def _estimate(features: tuple, **settings: object) -> Estimate:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimateWarning)  # recorded in est.warnings
        return estimate(*features, **{**SETTINGS, **settings})


@pytest.fixture(scope="module")
def features(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], tuple]:
    """(x_image, x_text, y) of the last layer, per (model, protocol)."""
    root = tmp_path_factory.mktemp("validation")
    return {
        (model, protocol): _last_layer(f"zoo:{model}", protocol, root / f"{model}-{protocol}")
        for model in ("normal", "blind")
        for protocol in ("span", "input-fusion")
    }


@pytest.fixture(scope="module")
def estimates(features: dict[tuple[str, str], tuple]) -> dict[tuple[str, str], Estimate]:
    return {key: _estimate(f) for key, f in features.items()}


def test_blind_model_has_no_image_information(estimates: dict) -> None:
    est = estimates["blind", "span"]
    assert est.n == N
    for atom in ("unique_image", "synergy"):
        a = est[atom]
        assert abs(a.corrected) <= 0.05, (atom, a)
        assert a.ci_low <= 0.0 <= a.ci_high, (atom, a)
    # ...while its predictions are far from independent of the question.
    assert est.unique_text.ci_low > 0.5


def test_normal_model_uses_the_image(estimates: dict) -> None:
    est = estimates["normal", "span"]
    assert est.n == N
    image_only = est.unique_image.corrected + est.synergy.corrected
    # Measured: U_image 0.27 [0.26, 0.29], S 0.05 [0.04, 0.06], R 0.07 bits (7 clusters each).
    assert image_only >= 0.25
    assert est.unique_image.ci_low > 0.0
    assert est.synergy.ci_low > 0.0


@pytest.mark.xfail(strict=True, reason="issue 5 asks U_image + S >= 0.5 bits; measured 0.32 with "
                   "auto clusters, and less with finer ones: normal's question tokens read the image "
                   "(README, the zoo)")
def test_normal_image_information_reaches_the_issue_bar(estimates: dict) -> None:
    est = estimates["normal", "span"]
    assert est.unique_image.corrected + est.synergy.corrected >= ISSUE_BAR


def test_finer_clusters_show_normal_question_span_holds_the_image(features: dict,
                                                                  estimates: dict) -> None:
    """Why the bar above is not met: the question tokens come after the image and have read
    it. Finer clusters resolve more of what both spans hold, so redundancy grows and the
    image-only atoms shrink (measured: R 0.07 -> 0.27, U_image + S 0.32 -> 0.22 bits at 12
    clusters; the same on the 38,575 training questions, 0.15 at 16). A bar missed only for
    want of clusters would move the other way."""
    auto = estimates["normal", "span"]
    fine = _estimate(features["normal", "span"], clusters=12, n_bootstrap=30, n_permutations=10)
    assert fine.redundancy.corrected > auto.redundancy.corrected + 0.1

    def image_only(est: Estimate) -> float:
        return est.unique_image.corrected + est.synergy.corrected

    assert image_only(fine) < image_only(auto) - 0.05


@pytest.mark.parametrize("protocol", ["span", "input-fusion"])
def test_normal_image_contribution_exceeds_blind(estimates: dict, protocol: str) -> None:
    normal = estimates["normal", protocol].contribution_image
    blind = estimates["blind", protocol].contribution_image
    assert normal.ci_low > blind.ci_high, (normal, blind)
