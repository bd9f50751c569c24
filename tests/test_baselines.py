"""The baselines on known answers: the two-player algebra, a model that ignores the image, IG
completeness, attention rows, compare's files and its reporting of a method that cannot run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmpid.baselines import bootstrap_share, two_player_game
from mmpid.errors import InputError, OptionError


# ------------------------------------------------------------------ the two-player algebra


@pytest.mark.parametrize(
    ("r", "ui", "ut", "s"),
    [(1.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0), (0.0, 1.0, 0.0, 0.0), (0.3, 0.2, 0.7, 0.4)],
)
def test_two_player_game_is_the_pid_algebra(r, ui, ut, s):
    g = two_player_game(0.0, r + ui, r + ut, r + ui + ut + s)
    np.testing.assert_allclose(g.phi_image, ui + (r + s) / 2)
    np.testing.assert_allclose(g.phi_text, ut + (r + s) / 2)
    np.testing.assert_allclose(g.interaction, s - r)
    np.testing.assert_allclose(g.phi_image + g.phi_text, r + ui + ut + s)  # efficiency


def test_redundancy_and_synergy_get_the_same_shapley_values():
    red = two_player_game(0.0, 1.0, 1.0, 1.0)
    syn = two_player_game(0.0, 0.0, 0.0, 1.0)
    np.testing.assert_allclose([red.phi_image, red.phi_text], [syn.phi_image, syn.phi_text])
    assert float(red.interaction) == -1.0 and float(syn.interaction) == 1.0
    both = two_player_game(0.0, 1.0, 1.0, 2.0)  # R = S = 1 cancel in the interaction
    assert float(both.interaction) == 0.0


def test_two_player_game_hand_values_vectorised():
    g = two_player_game([0, 1], [2, 1], [3, 4], [7, 4])
    np.testing.assert_allclose(g.phi_image, [(2 + 4) / 2, (0 + 0) / 2])
    np.testing.assert_allclose(g.phi_text, [(3 + 5) / 2, (3 + 3) / 2])
    np.testing.assert_allclose(g.interaction, [7 - 2 - 3 + 0, 4 - 1 - 4 + 1])


def test_two_player_game_rejects_nan():
    with pytest.raises(InputError, match="v_both"):
        two_player_game(0.0, 1.0, 1.0, np.nan)


def test_bootstrap_share_of_zero_image_is_zero():
    rng = np.random.default_rng(0)
    s = bootstrap_share(np.zeros(50), rng.normal(2, 1, 50), n_boot=200)
    assert s.value == 0.0 and s.ci_high == 0.0


# ------------------------------------------------------------------ on zoo models

N = 24


@pytest.fixture(scope="module")
def data():
    from mmpid.data import load_dataset

    return load_dataset("easy-vqa", limit=N, seed=1)


@pytest.fixture(scope="module")
def blind():
    from mmpid.models import load_adapter

    return load_adapter("zoo:blind", device="cpu")


@pytest.fixture(scope="module")
def normal():
    from mmpid.models import load_adapter

    return load_adapter("zoo:normal", device="cpu")


@pytest.mark.slow
def test_blind_model_gets_no_image_share_from_output_methods(blind, data):
    from mmpid.baselines import ablation, integrated_gradients, mm_shap, modality_shapley, perceptual_score

    abl = ablation(blind, data, batch_size=12, n_boot=200)
    assert abl.stats["swap_image_flip"].value == 0.0
    assert abl.stats["blank_image_flip"].value == 0.0
    assert abl.stats["swap_image_dacc"].value == 0.0
    assert abl.image_share.value < 0.01
    assert abl.stats["mask_question_dlogp"].value > 1.0  # the question matters
    ps = perceptual_score(blind, data, batch_size=12, n_permutations=2, n_boot=200)
    assert ps.stats["image_raw"].value == 0.0 and ps.image_share.value == 0.0
    sh = modality_shapley(blind, data, batch_size=12, n_boot=200)
    assert sh.image_share.value < 0.01
    assert abs(sh.stats["phi_image"].value) < 0.02 < sh.stats["phi_text"].value
    ms = mm_shap(blind, _head(data, 6), max_evals=80, n_boot=200)
    assert ms.image_share.value < 0.03
    np.testing.assert_allclose(ms.per_sample["sum_phi"], ms.per_sample["delta"], atol=1e-4)  # efficiency
    ig = integrated_gradients(blind, _head(data, 6), n_steps=8, batch_size=6, n_boot=200)
    assert ig.image_share.value < 0.03  # blind's log p moves by ~0.002 bits with the image, not exactly 0


def _head(dataset, n):
    from mmpid.data import VQADataset

    return VQADataset(dataset[:n], name=dataset.name, split=dataset.split, answers=dataset.answers)


def test_attention_is_not_zero_on_the_blind_model_and_rows_sum_to_one(blind, data):
    from mmpid.baselines import attention

    att = attention(blind, data, batch_size=12, n_boot=200)
    assert att.stats["max_row_sum_error"].value < 1e-5
    assert att.stats["image_mass"].value > 0.05  # attention flows to the image the model ignores
    assert att.stats["image_density"].value * 1 < att.stats["image_mass"].value


def test_normal_model_uses_the_image(normal, data):
    from mmpid.baselines import ablation, modality_shapley

    assert ablation(normal, data, batch_size=12, n_boot=200).stats["blank_image_dlogp"].value > 0.3
    assert modality_shapley(normal, data, batch_size=12, n_boot=200).image_share.ci_low > 0.05


@pytest.mark.slow
def test_ig_completeness(normal, data):
    """IG's attributions sum to v(input) - v(baseline): the error shrinks with the steps (unk
    baseline) and is what captum reports; the zero pad embedding makes the sum diverge instead."""
    from mmpid.baselines import integrated_gradients

    head = _head(data, 8)
    coarse = integrated_gradients(normal, head, n_steps=16, batch_size=8, n_boot=100)
    fine = integrated_gradients(normal, head, n_steps=512, batch_size=8, n_boot=100)
    for ig in (coarse, fine):
        total = ig.per_sample["image"] + ig.per_sample["text"]  # other positions equal the baseline
        np.testing.assert_allclose(ig.per_sample["completeness_error"], np.abs(total - ig.per_sample["delta"]),
                                   atol=1e-3)
    assert coarse.stats["completeness_error"].value > 1.0  # steep paths: 16 steps are far too few
    assert fine.stats["completeness_error"].value < 0.01 * np.abs(fine.per_sample["delta"]).mean()
    pad = integrated_gradients(normal, head, n_steps=128, batch_size=8, n_boot=100, text_baseline="pad")
    assert pad.stats["completeness_error"].value > 0.5  # the zero pad embedding: no convergence


def test_options_are_checked(normal, data):
    from mmpid.baselines import compare, mm_shap

    with pytest.raises(OptionError, match="methods"):
        compare(normal, data, methods=["lime"], pid=False)
    with pytest.raises(OptionError, match="max_evals"):
        mm_shap(normal, _head(data, 2), max_evals=5)


def test_compare_writes_files_and_reports_a_method_that_cannot_run(normal, data, tmp_path, monkeypatch):
    import contextlib

    from mmpid.baselines import compare
    from mmpid.errors import ModelFamilyError

    @contextlib.contextmanager
    def no_weights(model):
        raise ModelFamilyError("no attention weights under attn_implementation='sdpa'")
        yield

    import sys

    monkeypatch.setattr(sys.modules["mmpid.baselines.attention"], "eager_attention", no_weights)
    c = compare(normal, data, methods=["ablation", "shapley", "attention"], pid=False, out_dir=tmp_path,
                batch_size=12)
    assert set(c.methods) == {"ablation", "shapley"}
    assert "no attention weights" in c.errors["attention"]
    data_json = json.loads((tmp_path / "compare.json").read_text())
    assert set(data_json["methods"]) == {"ablation", "shapley"} and "attention" in data_json["errors"]
    csv = (tmp_path / "compare.csv").read_text()
    assert "attention" in csv and "ablation" in csv
    assert (tmp_path / "compare.png").read_bytes()[:4] == b"\x89PNG"
    assert "compare.png" in (tmp_path / "compare.html").read_text()


@pytest.mark.slow
def test_other_families(tmp_path, data):
    """Qwen2-VL's 3-D rope positions are replayed right (a batch of 3 = its rope sections);
    BLIP (cross-attention) is refused by every method with the reason, and compare goes on."""
    import sys

    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import tiny_families

    from mmpid.baselines import compare
    from mmpid.models import load_adapter

    few = _head(data, 6)
    qwen = load_adapter(str(tiny_families.build_qwen2_vl(tmp_path / "qwen")), device="cpu")
    c = compare(qwen, few, methods=["shapley", "attention"], pid=False, batch_size=3)
    assert not c.errors
    g = c.methods["shapley"].per_sample
    np.testing.assert_allclose(g["phi_image"] + g["phi_text"], g["v_both"] - g["v_empty"], atol=1e-5)
    blip = load_adapter(str(tiny_families.build_blip_vqa(tmp_path / "blip")), device="cpu")
    c = compare(blip, few, methods=["ablation", "shapley"], pid=False, batch_size=3)
    assert not c.methods and set(c.errors) == {"ablation", "shapley"}
    assert all("'blip' family" in e for e in c.errors.values())
