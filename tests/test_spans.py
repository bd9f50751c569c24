"""Question-token spans: the span finder marks exactly the question's tokens.

The expected positions come from the tokenizer, not from a copy of the span finder: the
template's text after the question (rendered once with a marker in the question's place)
tokenizes to K tokens that end the prompt, and the question, tokenized on its own, takes
the tokens right before them (its special and unknown tokens left out). Compared on varied
questions for every decoder family, on the first encoding (cache miss) and on later ones
(cache hits, other batch compositions and paddings), and on a question equal to the
template's own generation prompt, which a search for the question's last occurrence in the
prompt gets wrong.
"""

from __future__ import annotations

import functools

import pytest
import torch
from tiny_families import build_paligemma, build_qwen2_vl
from tiny_models import build_idefics3, build_llava, build_llava_next, easy_vqa_images

from mmpid.errors import InputError
from mmpid.models import load_adapter

torch.set_num_threads(1)

BUILDERS = {
    "llava": build_llava,
    "llava_next": build_llava_next,
    "idefics3": build_idefics3,
    "qwen2_vl": build_qwen2_vl,
    "paligemma": build_paligemma,
}

#: A piece of each family's template: as the question, it occurs twice in the prompt (rfind takes the last).
TEMPLATE_TAIL = {
    "llava": "ASSISTANT:",
    "llava_next": "ASSISTANT:",
    "idefics3": "Assistant:",
    "qwen2_vl": "assistant",
    "paligemma": "answer en",
}

#: Unicode only: every word is <unk> (a special token) for the word-level tokenizers of LLaVA and Idefics3.
FOREIGN = "quelle est la forme côté 三角形 ✓?"
WORD_LEVEL = ("llava", "llava_next", "idefics3")

VARIED = [
    "what is the red shape?",
    "what's the colour, shape & size?!",  # punctuation, apostrophe, ampersand
    "is the red shape red, red or red?",  # repeated words
    "red red red",  # a question made of one repeated word
    "what is the côté of the 三角形 shape ✓?",  # unicode amid known words
    FOREIGN,
    "  does the image contain a circle?  ",  # surrounding whitespace
    "shape",  # one word
    "what is the shape? what is the shape?",  # the question repeats itself
]


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def adapter(request, tmp_path_factory):
    path = BUILDERS[request.param](tmp_path_factory.mktemp(request.param))
    return load_adapter(str(path), device="cpu")


MARK = "zzqqzz"


@functools.lru_cache(maxsize=None)
def _appended(adapter) -> int:
    """Tokens the processor appends after the prompt's own (PaliGemma's newline): the prompt
    rendered with a marker in the question's place, through the processor and the tokenizer."""
    tok = adapter.tokenizer
    mark = tok(MARK, add_special_tokens=False)["input_ids"]
    prompt = adapter.build_prompt(MARK)
    ids = adapter._call_processor([easy_vqa_images(1)], [prompt])["input_ids"][0].tolist()
    at = [i for i in range(len(ids) - len(mark) + 1) if ids[i : i + len(mark)] == mark]
    assert len(at) == 1, (prompt, ids, mark)
    text = tok(prompt, add_special_tokens=False)["input_ids"]
    in_text = [i for i in range(len(text) - len(mark) + 1) if text[i : i + len(mark)] == mark]
    return (len(ids) - at[0]) - (len(text) - in_text[0])


def known_positions(adapter, question, row, length) -> list[int]:
    """The question's token positions in the expanded ids, from the template and the tokenizer.

    The question sits where the marker sat in the rendered template (not wherever its text last
    occurs); the tokenizer's offsets say which tokens of the prompt cover it, and they land at
    the same distance from the end of the processor's ids as from the end of the prompt's tokens.
    """
    tok = adapter.tokenizer
    marked = adapter.build_prompt(MARK)
    lo = marked.index(MARK)
    prompt = marked[:lo] + question + marked[lo + len(MARK):]
    full = tok(prompt, add_special_tokens=False, return_offsets_mapping=True)
    ids = full["input_ids"]
    special = set(tok.all_special_ids) | {adapter.image_token_id()}
    hi = lo + len(question)
    local = [
        j for j, ((a, e), t) in enumerate(zip(full["offset_mapping"], ids))
        if e > a and a < hi and e > lo and t not in special
    ]
    end = int(length) - _appended(adapter)  # one past the prompt's last token in the ids
    positions = [end - (len(ids) - j) for j in local]
    assert [row[p] for p in positions] == [ids[j] for j in local], question
    return positions


def encoded_positions(enc) -> list[list[int]]:
    return [torch.nonzero(row).flatten().tolist() for row in enc.text_mask]


def usable(adapter, questions):
    """The questions that keep at least one non-special token (the others raise, tested apart)."""
    keep = []
    for q in questions:
        try:
            adapter.encode(easy_vqa_images(1), [q])
        except InputError:
            continue
        keep.append(q)
    return keep


def check_batch(adapter, images, questions):
    enc = adapter.encode(images, questions)
    rows = enc.inputs["input_ids"].tolist()
    want = [known_positions(adapter, q, row, n) for q, row, n in zip(questions, rows, enc.lengths)]
    assert encoded_positions(enc) == want
    assert all(want), "every question keeps at least one token"
    return enc


def test_spans_are_the_question_tokens(adapter):
    family = adapter.family
    questions = usable(adapter, [*VARIED, TEMPLATE_TAIL[family]])
    # the word-level tokenizers map unknown words to <unk> (special): the all-foreign question has no tokens
    assert len(questions) >= len(VARIED)
    adapter.spans.clear()
    images = easy_vqa_images(len(questions))
    first = check_batch(adapter, images, questions)  # cache misses
    cache = adapter.spans.cache
    assert {q for _, q in cache} == set(questions)
    again = check_batch(adapter, images, questions)  # cache hits, same batch
    assert torch.equal(first.text_mask, again.text_mask)
    # hits inside other batches: another order, other padding, duplicates, a new question mixed in
    mixed = [questions[-1], "what color is the triangle?", questions[0], questions[-1], questions[2]]
    check_batch(adapter, easy_vqa_images(len(mixed)), mixed)
    for q in questions:  # one at a time: no padding at all
        check_batch(adapter, easy_vqa_images(1), [q])


def test_question_equal_to_part_of_the_template(adapter):
    q = TEMPLATE_TAIL[adapter.family]
    prompt = adapter.build_prompt(q)
    # the question's text occurs twice in the prompt: the span is the question's, not the template's
    assert prompt.count(q) >= 2
    adapter.spans.clear()
    for _ in range(2):
        check_batch(adapter, easy_vqa_images(2), [q, "what is the red shape?"])


def test_two_images_per_example(adapter):
    if adapter.family in ("paligemma",):
        pytest.skip("the tiny PaliGemma takes one image per prompt")
    ims = easy_vqa_images(4)
    pairs = [[ims[0], ims[1]], [ims[2], ims[3]]]
    qs = ["is the red shape red, red or red?", "what is the red shape?"]
    for _ in range(2):
        enc = adapter.encode(pairs, qs)
        rows = enc.inputs["input_ids"].tolist()
        assert encoded_positions(enc) == [known_positions(adapter, q, r, n) for q, r, n in zip(qs, rows, enc.lengths)]


def test_errors_are_raised_every_time_and_not_cached(adapter):
    adapter.spans.clear()
    for _ in range(2):
        with pytest.raises(InputError, match="dropped the question"):
            adapter.encode(easy_vqa_images(1), ["   "])
    if adapter.family in WORD_LEVEL:
        for _ in range(2):
            with pytest.raises(InputError, match="has no tokens after removing special tokens"):
                adapter.encode(easy_vqa_images(1), [FOREIGN])
    assert not adapter.spans.cache


def test_image_token_counts_follow_the_images(adapter):
    """The per-size cache of image-token counts gives what the ids hold, in any order and mix of sizes."""
    base = easy_vqa_images(1)[0]
    images = [base, base.resize((48, 80)), base.resize((96, 40))]
    adapter.image_token_cache.clear()
    qs = ["what is the red shape?"] * 3
    for order in ([0, 1, 2], [2, 0, 1], [1, 1, 2]):
        ims = [images[i] for i in order]
        enc = adapter.encode(ims, qs)
        assert enc.expected_image_tokens == enc.n_image_tokens
        assert adapter.expected_image_tokens([[im] for im in ims]) == enc.n_image_tokens
    if adapter.family == "qwen2_vl":  # dynamic resolution: the three sizes give three counts
        assert len(set(adapter.expected_image_tokens([[im] for im in images]))) == 3


def test_a_full_cache_is_emptied_and_spans_stay_right(adapter, monkeypatch):
    import mmpid.models.spans as spans

    monkeypatch.setattr(spans, "CACHE_SIZE", 3)
    adapter.spans.clear()
    questions = usable(adapter, VARIED)
    for i in range(0, len(questions), 2):
        chunk = questions[i : i + 2]
        check_batch(adapter, easy_vqa_images(len(chunk)), chunk)
        assert len(adapter.spans.cache) <= 3
    check_batch(adapter, easy_vqa_images(3), questions[:3])  # some hits, some misses after the clears
