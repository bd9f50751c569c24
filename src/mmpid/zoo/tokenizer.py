"""A word-level tokenizer over easy-vqa's vocabulary, built locally (no hub download).

Every easy-vqa question word, the 13 answers and the few words of the prompt format are
single tokens, so each answer is predicted by one logit of the language-model head.
"""

from __future__ import annotations

import re

from mmpid.errors import InputError

FAMILIES = ("llava", "idefics3")

#: Special tokens, in id order: padding, unknown word, begin/end of sequence, image placeholder.
SPECIAL_TOKENS: tuple[str, ...] = ("<pad>", "<unk>", "<s>", "</s>", "<image>")

#: Extra special tokens the Idefics3 processor wraps a global image in (appended last).
IDEFICS3_TOKENS: tuple[str, ...] = ("<fake_token_around_image>", "<global-img>", "<end_of_utterance>")

#: The 13 easy-vqa answers, in the order of ``easy_vqa.get_answers()``.
ANSWERS: tuple[str, ...] = (
    "circle", "green", "red", "gray", "yes", "teal", "black",
    "rectangle", "yellow", "triangle", "brown", "blue", "no",
)

#: Words of the prompt format (see ``PROMPT_TEMPLATE``).
PROMPT_WORDS: tuple[str, ...] = ("user", "assistant", ":")

#: Question words of easy-vqa that are not answers (train and test splits together).
QUESTION_WORDS: tuple[str, ...] = (
    "?", "a", "color", "contain", "does", "image", "in", "is", "not", "of",
    "present", "shape", "the", "there", "what",
)

#: The prompt an adapter renders for one image and one question; the answer is the next
#: token after the last prompt token. ``{image}`` is the processor's image token, which the
#: processor expands to one placeholder per image feature.
PROMPT_TEMPLATE = "USER: {image}\n{question} ASSISTANT:"

# Jinja chat template rendering the same prompt from chat messages.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}USER: "
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'image' %}<image>\n{% endif %}"
    "{% endfor %}"
    "{% for item in message['content'] %}"
    "{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "{% elif message['role'] == 'assistant' %} ASSISTANT: "
    "{% for item in message['content'] %}{% if item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}"
    "</s>"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)

_WORD = re.compile(r"\w+|[^\w\s]")


def vocabulary(family: str = "llava", *, extra_words: tuple[str, ...] = ()) -> list[str]:
    """The token strings in id order: special tokens, answers, prompt words, question words.

    ``family="idefics3"`` appends :data:`IDEFICS3_TOKENS`; ``extra_words`` come last (words of a
    model's own, e.g. the ``"."`` of ``zoo:hinted``'s hints), so every other id stays the same.
    """
    extra = IDEFICS3_TOKENS if family == "idefics3" else ()
    base = [*SPECIAL_TOKENS, *ANSWERS, *PROMPT_WORDS, *QUESTION_WORDS, *extra]
    known = set(base)
    return base + [w for w in dict.fromkeys(extra_words) if w not in known]


def words(text: str) -> list[str]:
    """Split ``text`` the way the tokenizer does (lower case; words and punctuation marks)."""
    return _WORD.findall(text.lower())


def build_tokenizer(*, family: str = "llava", extra_words: tuple[str, ...] = ()):
    """Build the word-level fast tokenizer.

    Parameters
    ----------
    family : str
        ``"llava"`` or ``"idefics3"`` (adds the Idefics3 image-wrapping special tokens).
    extra_words : tuple of str
        Words appended after the standard vocabulary (those already in it are skipped); each must
        be one word or one punctuation mark as :func:`words` splits them.

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        Lower-cases, splits on whitespace and punctuation, maps unknown words to ``<unk>``;
        ``<image>`` is a special token kept whole. Pads on the left, so that the last
        position of every row of a batch is the last prompt token.
    """
    from tokenizers import Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    if family not in FAMILIES:
        raise InputError(f"The 'family' parameter must be one of {FAMILIES}. Got {family!r} instead.")
    for w in extra_words:
        if not isinstance(w, str) or words(w) != [w]:
            raise InputError(f"The 'extra_words' parameter must hold single lower-case words or marks. Got {w!r}.")
    specials = list(SPECIAL_TOKENS) + (list(IDEFICS3_TOKENS) if family == "idefics3" else [])
    vocab = {tok: i for i, tok in enumerate(vocabulary(family, extra_words=tuple(extra_words)))}
    core = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    core.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    core.add_special_tokens(specials)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token="<pad>",
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        extra_special_tokens={"image_token": "<image>"},
        padding_side="left",
        model_max_length=128,
        clean_up_tokenization_spaces=False,
    )
    return tok
