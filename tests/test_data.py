"""Dataset loaders: easy-vqa, JSONL, Hugging Face datasets with a column mapping."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from mmpid.data import Sample, load_dataset, open_image, resolve_columns
from mmpid.errors import DatasetError, InputError


def test_easy_vqa_subset_is_seeded_and_ordered():
    a = load_dataset("easy-vqa", split="test", limit=50, seed=3)
    b = load_dataset("easy-vqa", split="test", limit=50, seed=3)
    c = load_dataset("easy-vqa", split="test", limit=50, seed=4)
    ids = [s.id for s in a]
    assert ids == [s.id for s in b] and ids != [s.id for s in c]
    idx = [int(i.split("-")[1]) for i in ids]
    assert idx == sorted(idx) and len(set(idx)) == 50
    assert len(a.answers) == 13 and "yes" in a.answers
    assert all(a.label(s.answer) >= 0 for s in a)
    im = a[0].image
    assert im.mode == "RGB" and im.size == (64, 64)


def test_easy_vqa_full_and_train():
    test = load_dataset("easy-vqa")
    assert len(test) == len(load_dataset("easy-vqa", limit=10**9))
    assert load_dataset("easy_vqa", split="train", limit=5)[0].id.startswith("train-")
    with pytest.raises(DatasetError, match="'split'.*train.*test.*Got 'val'"):
        load_dataset("easy-vqa", split="val")
    with pytest.raises(InputError, match="'limit'"):
        load_dataset("easy-vqa", limit=0)


def _write_images(folder, n):
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(folder / f"{i}.png")


def test_jsonl_relative_paths_mapping_and_answers(tmp_path):
    _write_images(tmp_path, 3)
    answers = [" Red", "blue", "red"]
    rows = [{"img": f"{i}.png", "q": f"what is {i}?", "a": answers[i], "qid": f"q{i}"} for i in range(3)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = load_dataset(str(tmp_path / "d.jsonl"), columns={"image": "img", "question": "q", "answer": "a", "id": "qid"})
    assert [s.id for s in ds] == ["q0", "q1", "q2"]
    assert ds.answers == ("blue", "red")
    assert [ds.label(s.answer) for s in ds] == [1, 0, 1]
    np.testing.assert_array_equal(np.asarray(ds[1].image), np.asarray(Image.open(tmp_path / "1.png")))


def test_jsonl_missing_fields_and_bad_json(tmp_path):
    (tmp_path / "d.jsonl").write_text(json.dumps({"image": "x.png", "question": "q"}) + "\n")
    with pytest.raises(DatasetError, match=r"d.jsonl:1: missing field\(s\) \['answer'\]"):
        load_dataset(str(tmp_path / "d.jsonl"))
    (tmp_path / "e.jsonl").write_text("{not json\n")
    with pytest.raises(DatasetError, match="e.jsonl:1: not valid JSON"):
        load_dataset(str(tmp_path / "e.jsonl"))
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(str(tmp_path / "none.jsonl"))


def test_undecodable_image_raises_dataset_error(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    s = Sample(id="s1", question="q", answer="a", image_source=str(tmp_path / "bad.png"))
    with pytest.raises(DatasetError, match="Sample 's1'.*does not decode"):
        _ = s.image
    with pytest.raises(DatasetError, match="does not decode"):
        open_image(b"\x89PNG garbage", sample_id="x")
    with pytest.raises(DatasetError, match="does not decode"):
        open_image(str(tmp_path / "missing.png"))


def _hf_dataset(tmp_path, n=6):
    import datasets

    _write_images(tmp_path, n)
    data = {
        "image": [str(tmp_path / f"{i}.png") for i in range(n)],
        "question": [f"question {i}?" for i in range(n)],
        "multiple_choice_answer": ["yes" if i % 2 else "no" for i in range(n)],
        "question_id": [100 + i for i in range(n)],
    }
    ds = datasets.Dataset.from_dict(data).cast_column("image", datasets.Image())
    return ds


def test_hf_dataset_from_disk_with_mapping(tmp_path):
    import datasets

    ds = _hf_dataset(tmp_path)
    datasets.DatasetDict({"validation": ds}).save_to_disk(str(tmp_path / "vqav2_local"))
    out = load_dataset(str(tmp_path / "vqav2_local"), split="validation", limit=4, seed=0)
    # the 'vqav2' preset applies because the name contains it
    assert len(out) == 4 and out.answers == ("no", "yes")
    assert all(s.id.isdigit() and int(s.id) >= 100 for s in out)
    s = out[0]
    assert s.image.size == (16, 16) and s.question.startswith("question")
    with pytest.raises(DatasetError, match="'split' parameter is 'test'.*validation"):
        load_dataset(str(tmp_path / "vqav2_local"), split="test")


def test_hf_dataset_missing_columns(tmp_path):
    ds = _hf_dataset(tmp_path)
    ds.save_to_disk(str(tmp_path / "plain"))
    with pytest.raises(DatasetError, match=r"no column\(s\) \['answer'\].*question_id"):
        load_dataset(str(tmp_path / "plain"))
    ok = load_dataset(str(tmp_path / "plain"), columns={"answer": "multiple_choice_answer"})
    assert ok[0].answer in {"yes", "no"} and ok[0].id.startswith("test-")
    with pytest.raises(InputError, match="unknown key"):
        load_dataset(str(tmp_path / "plain"), columns={"picture": "image"})


def test_scienceqa_choices(tmp_path):
    import datasets

    _write_images(tmp_path, 2)
    ds = datasets.Dataset.from_dict(
        {
            "image": [str(tmp_path / "0.png"), None],
            "question": ["Which is bigger?", "Pick one."],
            "choices": [["cat", "elephant"], ["up", "down"]],
            "answer": [1, 0],
        }
    ).cast_column("image", datasets.Image())
    ds.save_to_disk(str(tmp_path / "scienceqa"))
    out = load_dataset(str(tmp_path / "scienceqa"))
    assert out[0].answer == "elephant" and out[0].question == "Which is bigger? Options: cat, elephant."
    assert out.answers == ("cat", "down", "elephant", "up")
    assert out[1].image_source is None  # skipped by the extraction loop, with a reason


def test_resolve_columns_presets():
    assert resolve_columns(None, name="lmms-lab/GQA")["id"] == "question_id"
    assert resolve_columns(None, name="my/data") == {"image": "image", "question": "question", "answer": "answer"}
    assert resolve_columns({"answer": "label"})["answer"] == "label"
