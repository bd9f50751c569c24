"""easy-vqa's latents read back from the data, and the oracle PID built on them."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

import mmpid
import mmpid.zoo.latents
import mmpid.zoo.oracle
from mmpid.errors import InputError
from mmpid.zoo._data import load_questions
from mmpid.zoo.latents import COLORS, SHAPES, latents, question_meaning
from mmpid.zoo.oracle import oracle, question_indices

BITS = ("redundancy", "unique_image", "unique_text", "synergy")


@pytest.mark.parametrize(
    ("question", "meaning"),
    [
        ("what color is the shape?", "what-color"),
        ("what is the color of the rectangle?", "what-color"),
        ("what shape does the image contain?", "what-shape"),
        ("what is the blue shape?", "what-shape"),
        ("is there a red shape in the image?", "yes/no: red"),
        ("does the image not contain a circle?", "yes/no: not circle"),
        ("is no teal shape present?", "yes/no: not teal"),
        ("is a triangle present?", "yes/no: triangle"),
    ],
)
def test_question_meaning(question: str, meaning: str) -> None:
    assert question_meaning(question) == meaning


def _answer(meaning: str, shape: int, color: int) -> str:
    """The answer that a question of this meaning has about an image, from the latents."""
    if meaning == "what-shape":
        return SHAPES[shape]
    if meaning == "what-color":
        return COLORS[color]
    negated = meaning.startswith("yes/no: not ")
    subject = meaning.rsplit(" ", 1)[1]
    present = subject == (COLORS[color] if subject in COLORS else SHAPES[shape])
    return "yes" if present != negated else "no"


def test_latents_reproduce_every_answer_of_the_test_split() -> None:
    lat = latents("test")
    questions, answers, _ = load_questions("test")
    assert len(lat.meaning_names) == 24 and int(lat.known.sum()) == 8879
    assert len(set(questions)) == 107
    idx = np.flatnonzero(lat.known)
    recomputed = [_answer(lat.meaning_names[lat.meaning[i]], lat.shape[i], lat.color[i]) for i in idx]
    assert recomputed == [answers[i] for i in idx]
    # image = shape x colour, 24 classes, all present
    assert set(np.unique(lat.image[idx])) == set(range(24))


def test_oracle_of_functions_of_one_latent() -> None:
    lat = latents("test")
    ids = [f"test-{i}" for i in range(len(lat.known))]
    colour = np.where(lat.known, lat.color, 0)
    est = oracle(colour, ids, n_bootstrap=20, n_permutations=10, seed=0)
    c = np.bincount(lat.color[lat.known]) / lat.known.sum()
    entropy = float(-(c * np.log2(c)).sum())
    assert est.unique_image.corrected == pytest.approx(entropy, abs=0.01)
    for atom in ("redundancy", "unique_text", "synergy"):
        assert abs(est[atom].corrected) < 0.01, atom
    meaning = lat.meaning.copy()
    est = oracle(meaning, ids, n_bootstrap=20, n_permutations=10, seed=0)
    assert est.unique_text.corrected > 4.0 and abs(est.unique_image.corrected) < 0.01


def test_oracle_of_the_true_answer_holds_all_of_its_entropy() -> None:
    lat = latents("test")
    _, answers, _ = load_questions("test")
    values, truth = np.unique(np.asarray(answers), return_inverse=True)
    ids = [f"test-{i}" for i in range(len(answers))]
    est = oracle(truth.ravel(), ids, n_bootstrap=20, n_permutations=10, seed=0)
    c = np.bincount(truth.ravel()[lat.known]) / lat.known.sum()
    entropy = float(-(c * np.log2(c)).sum())
    assert sum(est[a].corrected for a in BITS) == pytest.approx(entropy, abs=0.01)
    assert est.synergy.corrected > 0.3  # yes/no answers need both the image and the question


def test_oracle_refuses_other_datasets() -> None:
    with pytest.raises(InputError, match="needs easy-vqa sample ids like 'test-123'; got 'gqa-7'"):
        question_indices(["test-1", "gqa-7"])
    with pytest.raises(InputError, match=r"mix easy-vqa splits \['test', 'train'\]"):
        question_indices(["test-1", "train-2"])
    with pytest.raises(InputError, match="'predictions' must be \\(N,\\) integer labels"):
        oracle(np.zeros(3), ["test-1", "test-2", "test-3"])


@pytest.mark.parametrize("module", [mmpid.zoo.latents, mmpid.zoo.oracle])
def test_docstring_examples_run(module: object) -> None:
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0


def test_embeddings_of_the_latents_give_the_oracle_back() -> None:
    # Embed the latents as a model might (each image latent a noisy cluster, each distinct
    # question string its own fixed vector) with the true answer as the target: the
    # estimate from the embeddings must find the oracle's atoms (the resolution issue in
    # miniature, fast enough for every run).
    lat = latents("test")
    questions, answers, _ = load_questions("test")
    rng = np.random.default_rng(0)
    idx = np.flatnonzero(lat.known)
    _, q = np.unique(np.asarray(questions)[idx], return_inverse=True)
    _, y = np.unique(np.asarray(answers)[idx], return_inverse=True)
    x_image = rng.normal(size=(24, 32))[lat.image[idx]] * 3 + rng.normal(size=(len(idx), 32))
    x_text = rng.normal(size=(q.max() + 1, 32))[q.ravel()]
    orc = oracle(y.ravel(), [f"test-{i}" for i in idx], n_bootstrap=30, n_permutations=10, seed=0)
    est = mmpid.estimate(x_image, x_text, y.ravel(), n_bootstrap=30, n_permutations=10, seed=0)
    assert est.clusters["text"] == 107 and est.clusters["image"] >= 24
    for atom in BITS:
        assert est[atom].corrected == pytest.approx(orc[atom].corrected, abs=0.05), atom
