"""The zoo: shipped models load offline like hub models and behave as their cards say."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from mmpid import zoo  # noqa: E402
from mmpid.errors import InputError  # noqa: E402
from mmpid.zoo import recipe as R  # noqa: E402
from mmpid.zoo._data import load_split  # noqa: E402
from mmpid.zoo.tokenizer import ANSWERS, PROMPT_TEMPLATE, build_tokenizer, words  # noqa: E402

SHIPPED = ("blind", "hinted", "normal", "shuffle")
N = zoo.SUBSET_SIZE


def _images(processor, images):
    """Idefics3 processors take one list of images per prompt."""
    return [[im] for im in images] if type(processor).__name__.startswith("Idefics3") else list(images)


@pytest.fixture(scope="module")
def test_split():
    return load_split("test")


@pytest.fixture(scope="module")
def loaded():
    """Every shipped model and processor, loaded once through the Auto classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    out = {}
    for name in SHIPPED:
        folder = zoo.resolve("zoo:" + name)
        out[name] = (AutoProcessor.from_pretrained(folder), AutoModelForImageTextToText.from_pretrained(folder))
    return out


# --------------------------------------------------------------------------- list / resolve


def test_list_models_names_the_shipped_models():
    # zoo:smol (tests/test_zoo_smol.py) is assembled from an installed package, not loaded from its folder
    assert zoo.list_models() == [*SHIPPED, "smol"]
    assert sorted(R.RECIPES) == [*SHIPPED, "smol"]


@pytest.mark.parametrize("name", SHIPPED)
def test_resolve_returns_the_model_folder(name):
    folder = zoo.resolve("zoo:" + name)
    assert folder == zoo.MODELS_DIR / name
    assert zoo.resolve(name) == folder
    for f in ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json",
              "MODEL_CARD.md", "zoo.json"):
        assert (folder / f).is_file(), f


def test_resolve_rejects_unknown_names_and_lists_the_known_ones():
    with pytest.raises(InputError, match=r"'spec'.*zoo:blind, zoo:hinted, zoo:normal, zoo:shuffle.*Got 'zoo:nope'"):
        zoo.resolve("zoo:nope")
    with pytest.raises(InputError, match=r"'spec' parameter must be a string.*Got int"):
        zoo.resolve(3)


def test_resolve_tells_how_to_retrain_a_missing_model(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "MODELS_DIR", tmp_path)
    assert zoo.list_models() == []
    with pytest.raises(InputError, match=r"none \(the package ships no models\).*mmpid zoo train normal"):
        zoo.resolve("zoo:normal")


def test_train_validates_before_training():
    with pytest.raises(InputError, match=r"'name' parameter must be one of \['blind', 'hinted', 'normal', 'shuffle', 'smol'\]"):
        zoo.train("big")
    with pytest.raises(InputError, match=r"'seed' parameter must be a non-negative int. Got -1"):
        zoo.train("normal", seed=-1)


# --------------------------------------------------------------------------- tokenizer / processor


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_every_easy_vqa_word_and_answer_is_one_token(family):
    import easy_vqa

    tok = build_tokenizer(family=family)
    vocab = set(tok.get_vocab())
    questions = easy_vqa.get_train_questions()[0] + easy_vqa.get_test_questions()[0]
    for q in questions:
        assert set(words(q)) <= vocab, q
        assert tok.unk_token_id not in tok(q)["input_ids"], q
    ids = tok(list(ANSWERS), add_special_tokens=False)["input_ids"]
    assert all(len(i) == 1 for i in ids)
    assert len({i[0] for i in ids}) == len(ANSWERS)
    assert tok.unk_token_id not in {i[0] for i in ids}
    assert tok.convert_ids_to_tokens(tok("Is there a RED shape?")["input_ids"]) == ["is", "there", "a", "red", "shape", "?"]
    assert tok("a zebra")["input_ids"] == [tok.convert_tokens_to_ids("a"), tok.unk_token_id]
    with pytest.raises(InputError, match=r"'family' parameter must be one of \('llava', 'idefics3'\). Got 'blip'"):
        build_tokenizer(family="blip")


CLASSES = {
    "llava": ("LlavaForConditionalGeneration", "LlavaProcessor"),
    "idefics3": ("Idefics3ForConditionalGeneration", "Idefics3Processor"),
}


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_is_a_standard_small_vlm(name, loaded):
    processor, model = loaded[name]
    recipe = R.RECIPES[name]
    model_cls, processor_cls = CLASSES[recipe.family]
    assert type(model).__name__ == model_cls
    assert type(processor).__name__ == processor_cls
    folder = zoo.resolve(name)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    assert size < 10_000_000
    assert model.config.vision_config.patch_size == recipe.patch_size
    assert model.config.image_token_id == processor.tokenizer.convert_tokens_to_ids("<image>")
    assert model.config.text_config.model_type == "llama"


@pytest.mark.parametrize("name", SHIPPED)
def test_chat_template_renders_the_recorded_prompt_and_expands_the_image(name, loaded, test_split):
    processor, _ = loaded[name]
    q = test_split.questions[0]
    prompt = processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}], add_generation_prompt=True
    )
    assert prompt == PROMPT_TEMPLATE.format(image="<image>", question=q)
    enc = processor(images=_images(processor, [test_split.images[0]]), text=[prompt], return_tensors="pt")
    n_image = int((enc["input_ids"] == processor.tokenizer.convert_tokens_to_ids("<image>")).sum())
    assert n_image == R.RECIPES[name].n_image_tokens
    assert processor.tokenizer.convert_ids_to_tokens(enc["input_ids"][0, -2:].tolist()) == ["assistant", ":"]


@pytest.mark.parametrize("name", ["normal", "shuffle"])
def test_training_inputs_equal_the_processor_outputs(name, loaded, test_split):
    """encode_split (used for training) makes exactly what processor(images, text) makes."""
    processor, _ = loaded[name]
    data = R.encode_split(test_split, processor)
    rows = [0, 1, 7]
    prompts = [PROMPT_TEMPLATE.format(image="<image>", question=test_split.questions[i]) for i in rows]
    images = [test_split.images[test_split.image_ids[i]] for i in rows]
    enc = processor(images=_images(processor, images), text=prompts, padding=True, return_tensors="pt")
    ids, mask = R.pad_left([data.ids[i] for i in rows], processor.tokenizer.pad_token_id)
    assert torch.equal(ids, enc["input_ids"])
    assert torch.equal(mask, enc["attention_mask"])
    torch.testing.assert_close(data.pixels[data.image_rows[rows]], enc["pixel_values"])
    np.testing.assert_array_equal(
        data.answer_ids[rows], processor.tokenizer.convert_tokens_to_ids([test_split.answers[i] for i in rows])
    )
    # the blank image of the cards (easy-vqa's mean colour) normalises to about zero, not exactly
    # zero (Idefics3 would drop an all-zero image as padding)
    blank = R.blank_image()
    assert blank.shape == (64, 64, 3) and blank.dtype == np.uint8
    torch.testing.assert_close(data.blank, R.pixel_values(processor, [blank]))
    assert 0 < float(data.blank.abs().max()) < 0.02


# --------------------------------------------------------------------------- recorded behaviour


@pytest.mark.parametrize("name", SHIPPED)
def test_card_accuracy_is_reproduced_on_the_fixed_subset(name, test_split):
    info = zoo.info(name)
    if R.RECIPES[name].hints is not None:  # its test questions are easy-vqa-hinted's
        from mmpid.zoo._data import hint_split

        test_split, _ = hint_split(test_split, "test", R.RECIPES[name].hints)
    acc = zoo.subset_accuracy(zoo.resolve(name), test_split, n=N)
    # same computation as recorded at training time; tolerance allows one flipped near-tie
    assert abs(acc - info["subset_accuracy"]) <= 1.5 / N
    # the subset is a fair sample of the full test split
    assert abs(acc - info["test"]["accuracy"]) < 0.06
    card = (zoo.resolve(name) / zoo.CARD_FILE).read_text()
    assert f"{100 * info['test']['accuracy']:.1f}%" in card
    assert f"{100 * info['test']['blank_accuracy']:.1f}%" in card
    assert f"seed: {info['seed']}" in card


def test_recorded_metrics_show_what_each_model_uses():
    normal, blind, shuffle = (zoo.info(n) for n in ("normal", "blind", "shuffle"))
    for info in (normal, blind, shuffle):
        assert info["test"]["n"] == 9673
        assert info["test"]["non_answer_rate"] == 0.0
        assert info["recipe"] == R.RECIPES[info["name"]].to_dict()
        assert info["size_bytes"] < 10_000_000
    ceiling = blind["text_only_accuracy"]
    # blind: image-invariant, and as good as the best question-only rule
    assert blind["test"]["swap_change_rate"] <= 0.02
    assert abs(blind["test"]["accuracy"] - ceiling) < 0.01
    assert blind["test"]["blank_accuracy"] == pytest.approx(blind["test"]["accuracy"], abs=0.005)
    # normal and shuffle: well above the question-only ceiling, and they lose it without the image
    for info in (normal, shuffle):
        assert info["test"]["accuracy"] - ceiling >= 0.10
        assert info["test"]["accuracy"] - info["test"]["blank_accuracy"] >= 0.10
        assert info["test"]["swap_change_rate"] >= 0.10


def test_hinted_records_what_the_hints_change():
    """zoo:hinted answers hinted questions without the image, and needs it on the others."""
    info = zoo.info("hinted")
    sub = info["hints"]["subsets"]
    assert info["hints"]["fraction"] == pytest.approx(1 / 3) and info["hints"]["seed"] == 0
    assert sub["hinted"]["n"] == info["hints"]["n_hinted_test"] > 700
    assert sub["hinted"]["n"] + sub["unhinted"]["n"] == info["test"]["n"] == 9673
    assert sub["hinted"]["accuracy"] >= 0.95
    assert sub["hinted"]["blank_accuracy"] >= 0.9  # the hint suffices
    assert sub["unhinted what"]["accuracy"] - sub["unhinted what"]["blank_accuracy"] >= 0.5  # the image is needed
    card = (zoo.resolve("hinted") / zoo.CARD_FILE).read_text()
    assert f"{100 * sub['hinted']['blank_accuracy']:.1f}%" in card


@pytest.mark.slow
def test_hinted_model_answers_hinted_questions_from_a_blank_image(test_split):
    from mmpid.data.hints import DEFAULT_HINTS
    from mmpid.zoo._data import hint_split

    hinted, mask = hint_split(test_split, "test", DEFAULT_HINTS)
    rows = np.flatnonzero(mask)
    blank = [R.blank_image()] * len(rows)
    preds = zoo.predict_folder(zoo.resolve("hinted"), blank, [hinted.questions[i] for i in rows])
    truth = [test_split.answers[i] for i in rows]
    assert np.mean([p == a for p, a in zip(preds, truth)]) >= 0.9
    # the same questions without their hint, from a blank image: mostly wrong
    plain = zoo.predict_folder(zoo.resolve("hinted"), blank, [test_split.questions[i] for i in rows])
    assert np.mean([p == a for p, a in zip(plain, truth)]) <= 0.5


def test_normal_loses_at_least_20_points_with_a_blank_image():
    normal = zoo.info("normal")["test"]
    assert normal["accuracy"] - normal["blank_accuracy"] >= 0.20


def test_normal_reaches_85_percent():
    assert zoo.info("normal")["test"]["accuracy"] >= 0.85


def _predict(processor, model, images, questions):
    prompts = [PROMPT_TEMPLATE.format(image="<image>", question=q) for q in questions]
    enc = processor(images=_images(processor, images), text=prompts, padding=True, return_tensors="pt")
    with torch.inference_mode():
        return model(**enc, logits_to_keep=1).logits[:, -1].argmax(-1).numpy()


def test_blind_model_ignores_the_image_and_normal_does_not(loaded, test_split):
    rng = np.random.default_rng(0)
    rows = test_split.image_ids[:N]
    swapped = R.other_rows(rows, len(test_split.images), rng)
    qs = test_split.questions[:N]
    own = [test_split.images[i] for i in rows]
    other = [test_split.images[i] for i in swapped]
    changed = {}
    for name in ("blind", "normal"):
        processor, model = loaded[name]
        changed[name] = float(np.mean(_predict(processor, model, own, qs) != _predict(processor, model, other, qs)))
    assert changed["blind"] <= 0.02
    assert changed["normal"] >= 0.2


# --------------------------------------------------------------------------- recipe pieces


def test_other_rows_never_returns_the_own_row_and_covers_the_rest():
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(5), 2000)
    other = R.other_rows(rows, 5, rng)
    assert not np.any(other == rows)
    counts = np.bincount(other[rows == 2], minlength=5)
    assert counts[2] == 0
    np.testing.assert_allclose(counts[[0, 1, 3, 4]] / 2000, 0.25, atol=0.04)


def test_lr_schedule_warms_up_then_decays_to_zero():
    r = R.Recipe(name="x", description="", steps=100, warmup_steps=10)
    assert R.lr_factor(0, r) == pytest.approx(0.1)
    assert R.lr_factor(9, r) == pytest.approx(1.0)
    assert R.lr_factor(10, r) == pytest.approx(1.0)
    assert R.lr_factor(55, r) == pytest.approx(0.5)
    assert R.lr_factor(100, r) == pytest.approx(0.0)


def test_recipe_rejects_impossible_architectures():
    with pytest.raises(InputError, match=r"'family' parameter must be one of \('llava', 'idefics3'\). Got 'blip'"):
        R.Recipe(name="x", description="", family="blip")
    with pytest.raises(InputError, match=r"'patch_size' times 'scale_factor' must divide the image size 64. Got 24 x 1"):
        R.Recipe(name="x", description="", patch_size=24)
    with pytest.raises(InputError, match=r"'steps' parameter must be a positive int. Got 0"):
        R.Recipe(name="x", description="", steps=0)
    with pytest.raises(InputError, match=r"'scale_factor' parameter must be 1 for the llava family. Got 2"):
        R.Recipe(name="x", description="", scale_factor=2)
    assert R.Recipe(name="x", description="", family="idefics3", patch_size=8, scale_factor=4).n_image_tokens == 4
    with pytest.raises(InputError, match=r"'vision_pretrain_steps' parameter must be a non-negative int. Got -1"):
        R.Recipe(name="x", description="", vision_pretrain_steps=-1)
    with pytest.raises(InputError, match=r"'fraction' parameter must be a number in \[0, 1\]. Got 2"):
        R.Recipe(name="x", description="", hint_fraction=2)
    with pytest.raises(InputError, match=r"'hint_blank_fraction' parameter must be a number in \[0, 1\]. Got -0.5"):
        R.Recipe(name="x", description="", hint_blank_fraction=-0.5)


def test_image_labels_read_each_images_shape_and_colour_from_its_answers():
    shape, colour = R.image_labels(["triangle", "yes", "teal", "circle", "no"], [2, 0, 2, 0, 3], 4)
    np.testing.assert_array_equal(shape, [R.SHAPES.index("circle"), -1, R.SHAPES.index("triangle"), -1])
    np.testing.assert_array_equal(colour, [-1, -1, R.COLOURS.index("teal"), -1])
    assert len(R.COLOURS) == 8 and set(R.COLOURS).isdisjoint({*R.SHAPES, "yes", "no"})


def test_image_labels_agree_with_every_answer_about_the_image():
    split = load_split("train")
    shape, colour = R.image_labels(split.answers, split.image_ids, len(split.images))
    names = {"shape": (shape, R.SHAPES), "colour": (colour, R.COLOURS)}
    for labels, classes in names.values():
        asked = [(i, a) for a, i in zip(split.answers, split.image_ids) if a in classes]
        assert all(classes[labels[i]] == a for i, a in asked)  # one image, one shape, one colour
        assert (labels >= 0).sum() == len({i for i, _ in asked})
    # and with the yes/no questions, which the labels were not read from
    checked = 0
    for q, a, i in zip(split.questions, split.answers, split.image_ids):
        named = [s for s in R.SHAPES if s in q]
        if a in ("yes", "no") and named and shape[i] >= 0:
            present = R.SHAPES[shape[i]] == named[0]
            assert present == ((a == "yes") != (" not " in q or " no " in q)), q
            checked += 1
    assert checked > 5000


def test_fit_is_reproducible_from_the_seed(test_split):
    recipe = R.Recipe(name="tiny", description="", patch_size=32, steps=3, batch_size=8, warmup_steps=1,
                      vision_hidden=16, text_hidden=16, heads=2, blind=True)
    processor = R.build_processor(recipe)
    data = R.encode_split(test_split, processor)
    states = []
    for _ in range(2):
        model = R.build_model(recipe, processor.tokenizer, seed=3)
        out = R.fit(model, data, recipe, pad_id=processor.tokenizer.pad_token_id, seed=3)
        states.append((model.state_dict(), out["final_loss"]))
    assert states[0][1] == states[1][1]
    for k, v in states[0][0].items():
        torch.testing.assert_close(v, states[1][0][k], rtol=0, atol=0)
    again = R.build_model(recipe, processor.tokenizer, seed=4)
    assert not torch.equal(again.state_dict()["lm_head.weight"], states[0][0]["lm_head.weight"])
    blanked = R.Recipe(name="tiny", description="", patch_size=32, steps=3, batch_size=8, warmup_steps=1,
                       vision_hidden=16, text_hidden=16, heads=2, hint_fraction=0.5, hint_blank_fraction=0.5)
    with pytest.raises(InputError, match=r"'hinted' parameter must be the \(N,\) bool mask.*Got None"):
        R.fit(R.build_model(blanked, processor.tokenizer), data, blanked, pad_id=0, seed=3)


TOWERS = {"llava": "model.vision_tower.", "idefics3": "model.vision_model."}


@pytest.mark.parametrize("family", ["llava", "idefics3"])
def test_pretrain_vision_trains_only_the_vision_tower_reproducibly(family, test_split):
    recipe = R.Recipe(name="tiny", description="", family=family, patch_size=16 if family == "idefics3" else 32,
                      scale_factor=2 if family == "idefics3" else 1, batch_size=8, vision_hidden=16, text_hidden=16,
                      heads=2, vision_pretrain_steps=3)
    processor = R.build_processor(recipe)
    data = R.encode_split(test_split, processor)
    shape, colour = R.image_labels(test_split.answers, test_split.image_ids, len(test_split.images))
    before = R.build_model(recipe, processor.tokenizer, seed=1).state_dict()
    runs = []
    for _ in range(2):
        model = R.build_model(recipe, processor.tokenizer, seed=1)
        out = R.pretrain_vision(model, data, shape, colour, recipe, seed=1)
        runs.append((model.state_dict(), out["final_loss"]))
    assert np.isfinite(runs[0][1]) and runs[0][1] == runs[1][1]
    changed = {k for k, v in runs[0][0].items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith(TOWERS[family]) for k in changed)
    assert TOWERS[family] + "embeddings.patch_embedding.weight" in changed
    for k, v in runs[0][0].items():
        torch.testing.assert_close(v, runs[1][0][k], rtol=0, atol=0)
