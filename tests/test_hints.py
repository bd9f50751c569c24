"""Hinted easy-vqa: the hint generator, the dataset variant, the hinted text latent and its oracle,
and the comparison section of the HTML report."""

from __future__ import annotations

import json
import re
import warnings

import numpy as np
import pytest

from mmpid.data import load_dataset
from mmpid.data.hints import DEFAULT_HINTS, HINT_WORDS, HintSpec, apply_hints, hint_kind, hinted_question, is_hinted
from mmpid.errors import EstimateWarning, InputError
from mmpid.zoo._data import load_questions
from mmpid.zoo.latents import COLORS, SHAPES, SUBSETS, latents, subset_indices, text_latent
from mmpid.zoo.oracle import oracle

_HINT = re.compile(r"^the shape is (a )?([a-z]+)\. (what .*)$")


def _entropy_bits(labels: np.ndarray) -> float:
    p = np.bincount(labels) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def _mutual_information_bits(x: np.ndarray, y: np.ndarray) -> float:
    _, xi = np.unique(x, return_inverse=True)
    _, yi = np.unique(y, return_inverse=True)
    return _entropy_bits(xi) + _entropy_bits(yi) - _entropy_bits(xi * (yi.max() + 1) + yi)


@pytest.fixture(scope="module")
def test_split():
    questions, answers, _ = load_questions("test")
    ids = [f"test-{i}" for i in range(len(questions))]
    hinted_q, mask = apply_hints(ids, questions, answers)
    return questions, answers, ids, hinted_q, mask


# --------------------------------------------------------------------------- the hint generator


def test_hint_states_the_true_answer_of_only_what_questions(test_split) -> None:
    questions, answers, _, hinted_q, mask = test_split
    assert mask.any()
    for q, a, h, m in zip(questions, answers, hinted_q, mask):
        if not m:
            assert h == q
            continue
        match = _HINT.match(h)
        assert match is not None, h
        article, stated, rest = match.groups()
        assert stated == a and rest == q  # the hint states the true answer, the question follows unchanged
        assert (article is not None) == (a in SHAPES) and (article is None) == (a in COLORS)
        assert q.startswith("what")
    # no yes/no question is hinted
    assert not any(m for q, m in zip(questions, mask) if not q.startswith("what"))


def test_hints_cover_the_chosen_fraction_of_each_what_type(test_split) -> None:
    questions, _, _, _, mask = test_split
    for kind in ("color", "shape"):
        of_kind = np.array([hint_kind(q) == kind for q in questions])
        n = int(of_kind.sum())
        share = mask[of_kind].mean()
        # binomial(n, 1/3): 5 standard deviations
        assert abs(share - 1 / 3) < 5 * np.sqrt(2 / 9 / n), (kind, share, n)


def test_hints_are_deterministic_per_sample_id(test_split) -> None:
    questions, answers, ids, hinted_q, mask = test_split
    again, mask2 = apply_hints(ids, questions, answers)
    assert again == hinted_q and np.array_equal(mask, mask2)
    # a subset, in another order, gets the same hints: the draw depends on the id only
    pick = np.random.default_rng(0).permutation(len(ids))[:500]
    sub, sub_mask = apply_hints([ids[i] for i in pick], [questions[i] for i in pick], [answers[i] for i in pick])
    assert sub == [hinted_q[i] for i in pick] and np.array_equal(sub_mask, mask[pick])
    # another seed picks other questions; fraction 0 none, fraction 1 every what-question
    _, other = apply_hints(ids, questions, answers, HintSpec(seed=1))
    assert 0 < (other != mask).sum() and abs(other.mean() - mask.mean()) < 0.03
    _, none = apply_hints(ids, questions, answers, HintSpec(fraction=0.0))
    _, every = apply_hints(ids, questions, answers, HintSpec(fraction=1.0))
    assert not none.any()
    np.testing.assert_array_equal(every, [hint_kind(q) is not None for q in questions])


def test_hint_validation() -> None:
    with pytest.raises(InputError, match=r"'fraction' parameter must be a number in \[0, 1\]. Got 1.5"):
        HintSpec(fraction=1.5)
    with pytest.raises(InputError, match=r"'seed' parameter must be a non-negative int. Got -1"):
        HintSpec(seed=-1)
    with pytest.raises(InputError, match="Only what-color and what-shape questions take a hint"):
        hinted_question("is there a red shape?", "yes")
    with pytest.raises(InputError, match=r"same length. Got 2, 1, 2"):
        apply_hints(["test-0", "test-1"], ["what color is the shape?"], ["red", "blue"])
    assert not is_hinted("test-0", "is there a red shape?", HintSpec(fraction=1.0))


def test_the_hinted_tokenizer_knows_every_hint_word_and_the_others_are_unchanged(test_split) -> None:
    pytest.importorskip("transformers")
    from mmpid import zoo
    from mmpid.zoo import recipe as R
    from mmpid.zoo.tokenizer import build_tokenizer, words

    tok = R.build_processor(R.RECIPES["hinted"]).tokenizer
    vocab = set(tok.get_vocab())
    _, _, _, hinted_q, mask = test_split
    assert set(HINT_WORDS) <= vocab
    for q in np.asarray(hinted_q, dtype=object)[mask]:
        assert set(words(q)) <= vocab
        assert tok.unk_token_id not in tok(q)["input_ids"], q
    # the other models' tokenizers: the same ids as shipped, and '.' unknown to them
    plain = build_tokenizer(family="llava")
    shipped = json.loads((zoo.resolve("zoo:normal") / "tokenizer.json").read_text())["model"]["vocab"]
    assert plain.get_vocab() == {**shipped, **{t: plain.get_vocab()[t] for t in plain.get_vocab() if t not in shipped}}
    assert "." not in plain.get_vocab()
    # the hinted vocabulary extends the plain one: every plain id is kept
    assert all(tok.get_vocab()[t] == i for t, i in plain.get_vocab().items())
    assert R.RECIPES["normal"].extra_words == () and R.RECIPES["hinted"].hints == DEFAULT_HINTS


# --------------------------------------------------------------------------- the dataset variant


def test_easy_vqa_hinted_is_easy_vqa_with_the_hints(test_split) -> None:
    _, _, _, hinted_q, mask = test_split
    plain = load_dataset("easy-vqa", limit=400, seed=3)
    hinted = load_dataset("easy-vqa-hinted", limit=400, seed=3)
    assert hinted.name == "easy-vqa-hinted" and plain.name == "easy-vqa"
    assert hinted.answers == plain.answers and len(hinted) == len(plain)
    assert hinted.info["hints"] == {"fraction": 1 / 3, "seed": 0, "n_hinted": int(sum(
        mask[int(s.id.split("-")[1])] for s in hinted))}
    assert hinted.info["hints"]["n_hinted"] > 0
    for p, h in zip(plain, hinted):
        i = int(h.id.split("-")[1])
        assert (p.id, p.answer, p.image_source) == (h.id, h.answer, h.image_source)
        assert h.question == hinted_q[i]  # the same hints as the whole split's
        assert (h.question != p.question) == mask[i]
    assert hinted.fingerprint() != plain.fingerprint()


# --------------------------------------------------------------------------- latents and oracle


def test_subsets_partition_the_known_questions() -> None:
    lat = latents("test")
    parts = [set(subset_indices(n, hints=DEFAULT_HINTS)) for n in SUBSETS[:5]]
    assert all(parts) and sum(map(len, parts)) == int(lat.known.sum())
    assert set().union(*parts) == set(np.flatnonzero(lat.known))
    assert set(subset_indices("hinted", hints=DEFAULT_HINTS)) == parts[3] | parts[4]
    assert subset_indices("hinted").size == 0  # no hints: nothing is hinted
    with pytest.raises(InputError, match=r"'name' parameter must be one of"):
        subset_indices("colour")


def test_on_hinted_questions_the_text_latent_determines_the_answer() -> None:
    _, answers, _ = load_questions("test")
    _, truth = np.unique(np.asarray(answers), return_inverse=True)
    text = text_latent("test", DEFAULT_HINTS)
    plain = latents("test")
    hinted = subset_indices("hinted", hints=DEFAULT_HINTS)
    # I(text latent; answer) = H(answer) exactly on hinted questions ...
    h = _entropy_bits(np.unique(truth[hinted], return_inverse=True)[1])
    assert h > 2.0
    assert _mutual_information_bits(text.label[hinted], truth[hinted]) == pytest.approx(h, abs=1e-12)
    # ... but the meaning alone does not, nor does the text latent on unhinted what-questions
    assert _mutual_information_bits(plain.meaning[hinted], truth[hinted]) < 1.01
    unhinted = subset_indices("what-color", hints=DEFAULT_HINTS)
    assert _mutual_information_bits(text.label[unhinted], truth[unhinted]) < 1e-12
    # within one question type the image latent determines it too, hinted or not (over both types
    # it does not: the image does not say whether the colour or the shape is asked)
    for idx in (subset_indices("hinted what-color", hints=DEFAULT_HINTS), unhinted):
        h = _entropy_bits(np.unique(truth[idx], return_inverse=True)[1])
        assert _mutual_information_bits(plain.image[idx], truth[idx]) == pytest.approx(h, abs=1e-12)
    # the unhinted questions keep their meaning as their text latent
    names = np.array(text.names, dtype=object)
    assert list(names[text.label[~text.hinted]]) == list(np.array(plain.meaning_names, dtype=object)[
        plain.meaning[~text.hinted]])


@pytest.mark.parametrize(("subset", "atom"), [("hinted what-color", "redundancy"), ("what-color", "unique_image")])
def test_oracle_of_the_true_answer_per_subset(subset: str, atom: str) -> None:
    """On hinted what-color questions the true answer is all redundancy (image and text each
    determine it); on the unhinted ones all unique to the image: H(answer) bits either way."""
    _, answers, _ = load_questions("test")
    values, truth = np.unique(np.asarray(answers), return_inverse=True)
    idx = subset_indices(subset, hints=DEFAULT_HINTS)
    with warnings.catch_warnings():  # the text latent is constant on unhinted what-color questions
        warnings.simplefilter("ignore", EstimateWarning)
        est = oracle(truth[idx], [f"test-{i}" for i in idx], hints=DEFAULT_HINTS, n_bootstrap=5, n_permutations=3,
                     seed=0)
    h = _entropy_bits(np.unique(truth[idx], return_inverse=True)[1])
    assert est[atom].plugin == pytest.approx(h, abs=1e-6)
    for other in ("redundancy", "unique_image", "unique_text", "synergy"):
        if other != atom:
            assert abs(est[other].plugin) < 1e-6, other
    with pytest.raises(InputError, match="'hints' parameter must be a HintSpec or None"):
        oracle(truth[idx], [f"test-{i}" for i in idx], hints=0.3)


# --------------------------------------------------------------------------- the report section


def _comparison() -> dict:
    iv = lambda v: {"value": v, "ci_low": v - 0.05, "ci_high": v + 0.05}  # noqa: E731
    return {
        "info": {"model": "zoo:normal", "dataset": "easy-vqa", "n": 40, "pid_protocol": "span, layer 0"},
        "pid": {"redundancy": iv(0.011), "unique_image": iv(0.622), "unique_text": iv(1.333), "synergy": iv(0.444),
                "contribution_image": iv(0.318), "seconds": 1.0},
        "methods": {"shapley": {"method": "shapley", "image_share": iv(0.271), "stats": {}, "cost": {"seconds": 2.0},
                                "definition": "|phi_I| / (|phi_I| + |phi_T|)"}},
        "errors": {"attention": "ModelFamilyError: no attention weights"},
    }


def test_the_report_of_a_run_folder_holds_the_comparison_section(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from mmpid.report import ATOMS, LayerResults, render_report
    from mmpid.report.results import AtomRecord

    records = [AtomRecord(layer=0, atom=a, plugin=0.5, null_mean=0.1, corrected=0.4, ci_low=0.3, ci_high=0.5)
               for a in ATOMS]
    results = LayerResults({"model": "zoo:normal", "dataset": "easy-vqa"}, [0], [], records)
    results.save(tmp_path)
    without = render_report(tmp_path / "results.json", tmp_path)
    html = without.html.read_text()
    assert without.compare is None and "PID beside the methods" not in html
    (tmp_path / "compare.json").write_text(json.dumps(_comparison()))
    paths = render_report(tmp_path / "results.json", tmp_path)
    html = paths.html.read_text()
    section = html[html.index("PID beside the methods"):html.index("<h2>Warnings")]
    for text in ("0.271", "0.318", "0.622", "1.333", "0.444", "shapley", "not run: ModelFamilyError"):
        assert text in section, text
    assert paths.compare == tmp_path / "compare.png" and paths.compare in paths.pngs
    assert section.count("<img ") == 1 and section.count("<table") == 2
    assert "was run on" not in section  # same model as the report's
    (tmp_path / "compare.json").write_text(json.dumps({**_comparison(), "info": {"model": "zoo:blind"}}))
    assert "was run on zoo:blind, not on this report's model zoo:normal" in render_report(tmp_path, tmp_path).html.read_text()
    (tmp_path / "compare.json").write_text("{}")
    with pytest.raises(InputError, match="is not a comparison written by `mmpid compare`"):
        render_report(tmp_path, tmp_path)


def test_compare_into_a_run_folder_rerenders_its_report(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from mmpid.baselines.comparison import Comparison
    from mmpid.report import ATOMS, LayerResults
    from mmpid.report.results import AtomRecord

    data = _comparison()
    comp = Comparison(methods={}, pid=data["pid"], errors=data["errors"], info=data["info"])
    alone = comp.write(tmp_path / "alone")  # not a run folder: compare.html only
    assert "report" not in alone and not (tmp_path / "alone" / "report.html").exists()
    assert "0.622" in alone["html"].read_text()
    records = [AtomRecord(layer=0, atom=a, plugin=0.5, null_mean=0.1, corrected=0.4, ci_low=0.3, ci_high=0.5)
               for a in ATOMS]
    LayerResults({"model": "zoo:normal"}, [0], [], records).save(tmp_path / "run")
    paths = comp.write(tmp_path / "run")
    html = paths["report"].read_text()
    assert paths["report"] == tmp_path / "run" / "report.html"
    assert "PID beside the methods" in html and "0.622" in html and "not run: ModelFamilyError" in html


def test_oracle_of_a_hinted_store_reads_its_hints(tmp_path) -> None:
    """A store of easy-vqa-hinted samples records its hints; the oracle uses the hinted text latent."""
    _, answers, _ = load_questions("test")
    _, truth = np.unique(np.asarray(answers), return_inverse=True)
    idx = subset_indices("hinted what-color", hints=DEFAULT_HINTS)

    class Store:  # duck-types FeatureStore: manifest, sample_ids, predictions()
        def __init__(self, hints):
            self.manifest = {"dataset_info": {"name": "easy-vqa-hinted", "hints": hints}}
            self.sample_ids = [f"test-{i}" for i in idx]

        def predictions(self):
            return truth[idx]

    from mmpid.zoo.oracle import oracle_of_store

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimateWarning)  # without hints the text latent is constant
        hinted = oracle_of_store(Store({"fraction": 1 / 3, "seed": 0, "n_hinted": len(idx)}), n_bootstrap=5,
                                 n_permutations=3, seed=0)
        plain = oracle_of_store(Store(None), n_bootstrap=5, n_permutations=3, seed=0)
    assert hinted.redundancy.plugin > 2.9 and abs(hinted.unique_image.plugin) < 1e-6
    assert abs(plain.redundancy.plugin) < 1e-6 and plain.unique_image.plugin > 2.9
