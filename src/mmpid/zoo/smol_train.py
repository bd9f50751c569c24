"""How ``zoo:smol`` is trained: SmolLM2-135M-Instruct frozen, a vision bridge learned on easy-vqa.

Three stages, all on easy-vqa's training split (see :data:`mmpid.zoo.recipe.RECIPES` ``["smol"]``):

1. **vision pretraining** (:func:`mmpid.zoo.recipe.pretrain_vision`, as the other zoo
   models): the tower's pooled features classify each image's shape and colour, as easy-vqa's
   latents settle them (:func:`settled_image_labels`);
2. **word alignment** (:func:`align_connector`, no language model involved): the tower and the
   connector are trained so that the image tokens land on SmolLM2's own input embeddings of
   the image's colour and shape words (`` red``, `` circle``, ...): image token 2k gets the
   colour word, 2k+1 the shape word; the loss is the squared distance relative to the
   target's squared norm; the learning rate decays along a cosine to 0;
3. **answer training** (:func:`fit_smol`): the language-model loss on the answer token at the
   last prompt position (as the other zoo models), through SmolLM2; the tower and connector
   stay as stage 2 left them, and trained are the embedding rows of the added tokens and
   rank-``lora_rank`` updates of every layer's query and value projections: the language
   model learns to read the words the image tokens spell.

The loop checkpoints every ``CHECKPOINT_EVERY`` steps into ``out/checkpoint.pt`` and resumes
from it; evaluation saves each finished part (``out/eval-*.npy``) and resumes too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from mmpid.zoo import smol as S
from mmpid.zoo.recipe import (
    COLOURS,
    PRETRAINED_LM_IMAGE_BATCH,
    SHAPES,
    Encoded,
    Recipe,
    blank_image,
    clipped_step,
    lr_factor,
    pad_left,
    pixel_values,
    warmup_cosine,
)
from mmpid.zoo.tokenizer import ANSWERS

CHECKPOINT_EVERY = 10
EVAL_BATCH = 64
#: Test questions evaluated (a seeded random subset; None: all 9,673). A forward pass of
#: SmolLM2 costs about 0.03 s a question on 2 quiet CPU cores (0.15 s on a loaded machine).
EVAL_N: int | None = None
EVAL_SEED = 7


def encode_split(split, processor, tokenizer) -> Encoded:
    """Tokenise an easy-vqa split with :data:`mmpid.zoo.smol.PROMPT_TEMPLATE` (ids exactly as the
    processor makes them for ``prompt``; the answers as the tokens written after ``Assistant:``)."""
    head_text, tail_text = S.PROMPT_TEMPLATE.split("{question}")
    one = [[split.images[0]]]
    head = processor(images=one, text=[head_text.format(image="<image>")], return_tensors="pt")["input_ids"][0]
    tail = tokenizer(tail_text, add_special_tokens=False)["input_ids"]
    body = tokenizer(list(split.questions), add_special_tokens=False)["input_ids"]
    ids = [head.tolist() + q + tail for q in body]
    index = {a: t for a, t in zip(ANSWERS, S.answer_token_ids(tokenizer, ANSWERS))}
    answer_ids = np.asarray([index[a] for a in split.answers], dtype=np.int64)
    return Encoded(ids, answer_ids, split.image_ids.copy(), pixel_values(processor, split.images),
                   pixel_values(processor, [blank_image()]))


def settled_image_labels(split: str, n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """Each image's shape and colour as easy-vqa's latents settle them (:func:`mmpid.zoo.latents.latents`:
    read from every answer about the image, yes/no answers included), as indices into
    :data:`mmpid.zoo.recipe.SHAPES` / :data:`~mmpid.zoo.recipe.COLOURS`; -1 where unsettled.

    Returns two int64 arrays of shape (n_images,). On the train split 95.9% of the images get
    a shape and 92.8% a colour (from the what-questions alone: fewer)."""
    from mmpid.zoo import latents as L
    from mmpid.zoo._data import load_questions

    lat = L.latents(split)
    _, _, image_ids = load_questions(split)
    to_shape = np.asarray([SHAPES.index(s) for s in L.SHAPES] + [-1])
    to_colour = np.asarray([COLOURS.index(c) for c in L.COLORS] + [-1])
    shape = np.full(n_images, -1, dtype=np.int64)
    colour = np.full(n_images, -1, dtype=np.int64)
    shape[image_ids] = to_shape[lat.shape]  # -1 indexes the appended -1
    colour[image_ids] = to_colour[lat.color]
    return shape, colour


def align_connector(model, data: Encoded, shape, colour, word_ids: dict[str, int], recipe: Recipe, *, seed: int,
                    steps: int, log: Callable[[str], None] | None = None) -> dict:
    """Stage 2: train tower + connector so that image token 2k (2k+1) equals SmolLM2's input
    embedding of the image's colour (shape) word. Unlabelled (-1) targets are left out. AdamW,
    lr ``recipe.lr`` decaying along a cosine to 0 over ``steps``.

    Returns ``{"seconds", "final_loss"}`` (relative squared error, mean of the last 50 steps)."""
    import torch

    rng = np.random.default_rng([seed, 2])
    torch.manual_seed(seed)
    emb = model.model.text_model.embed_tokens.weight.detach()
    colour_t = emb[[word_ids[c] for c in COLOURS]]
    shape_t = emb[[word_ids[s] for s in SHAPES]]
    shape = torch.as_tensor(np.asarray(shape, dtype=np.int64))
    colour = torch.as_tensor(np.asarray(colour, dtype=np.int64))
    params = [*model.model.vision_model.parameters(), *model.model.connector.parameters()]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    model.model.vision_model.train()
    losses: list[float] = []
    start = time.perf_counter()
    n_tok = recipe.n_image_tokens
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = recipe.lr * warmup_cosine(step, steps, 0)
        rows = torch.from_numpy(rng.integers(0, data.pixels.shape[0], size=recipe.batch_size))
        pix = data.pixels[rows].flatten(0, 1)
        feats = model.model.vision_model(pixel_values=pix).last_hidden_state
        tokens = model.model.connector(feats)  # (B, n_tok, 576)
        c, s = colour[rows], shape[rows]
        target = torch.zeros_like(tokens)
        mask = torch.zeros(tokens.shape[:2], dtype=torch.bool)
        for k in range(n_tok):
            lab, table = (c, colour_t) if k % 2 == 0 else (s, shape_t)
            ok = lab >= 0
            target[ok, k] = table[lab[ok]]
            mask[ok, k] = True
        err = ((tokens - target) ** 2).sum(-1) / (target ** 2).sum(-1).clamp_min(1e-6)
        loss = err[mask].mean()
        losses.append(clipped_step(opt, loss, params))
        if log is not None and (step + 1) % 50 == 0:
            log(f"smol alignment step {step + 1}/{steps} loss {np.mean(losses[-50:]):.4f} "
                f"{time.perf_counter() - start:.0f}s")
    model.model.vision_model.eval()
    return {"seconds": time.perf_counter() - start, "final_loss": float(np.mean(losses[-50:]))}


class _Grown:
    """Training-time view of the tied embedding: SmolLM2's rows frozen, the added rows a parameter."""

    def __init__(self, model, n_base: int) -> None:
        import torch
        from torch import nn

        self.model = model
        self.n_base = n_base
        weight = model.model.text_model.embed_tokens.weight
        self.base = weight.detach()[:n_base]
        self.rows = nn.Parameter(weight.detach()[n_base:].clone())
        self.old_embed = model.model.text_model.embed_tokens
        self.old_head = model.lm_head
        grown = self

        class Embed(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.weight = grown.old_embed.weight  # for get_input_embeddings() users

            def forward(self, ids):
                return nn.functional.embedding(ids, torch.cat([grown.base, grown.rows]))

        class Head(nn.Module):
            def forward(self, h):
                return nn.functional.linear(h, torch.cat([grown.base, grown.rows]))

        self.embed, self.head = Embed(), Head()

    def __enter__(self):
        self.model.model.text_model.embed_tokens = self.embed
        self.model.lm_head = self.head
        return self

    def __exit__(self, *exc) -> None:
        import torch

        self.model.model.text_model.embed_tokens = self.old_embed
        self.model.lm_head = self.old_head
        with torch.no_grad():
            self.old_embed.weight[self.n_base:] = self.rows.detach()


def fit_smol(model, data: Encoded, recipe: Recipe, *, pad_id: int, seed: int, ckpt: Path,
             log: Callable[[str], None] | None = None) -> dict:
    """Stage 3: answer-token training through the frozen SmolLM2 (LoRA already added). Trained:
    the LoRA factors and the added tokens' embedding rows; the tower and connector stay frozen.

    Checkpoints the trained tensors, the optimiser, the data order and the loss history into
    ``ckpt`` every :data:`CHECKPOINT_EVERY` steps and resumes from it. float32 throughout
    (bfloat16 autocast was no faster on this machine's CPU).

    Returns ``{"seconds", "final_loss", "loss_curve"}`` (nats; curve per 10 steps).
    """
    import torch
    import torch.nn.functional as F

    n_base = 49152
    with _Grown(model, n_base) as grown:
        for name, p in model.named_parameters():
            p.requires_grad = ".lora_" in name
        params = [p for p in model.parameters() if p.requires_grad] + [grown.rows]
        opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.0)
        rng = np.random.default_rng(seed)
        n = len(data.ids)
        order = rng.permutation(n)
        state = {"step": 0, "cursor": 0, "losses": [], "seconds": 0.0}
        if ckpt.is_file():
            saved = torch.load(ckpt, weights_only=False)
            model.load_state_dict(saved["trained"], strict=False)
            grown.rows.data.copy_(saved["rows"])
            opt.load_state_dict(saved["opt"])
            order = saved["order"]
            state = saved["state"]
            if log:
                log(f"smol resumed at step {state['step']}")

        def save() -> None:
            trained = {k: v for k, v in model.state_dict().items()
                       if k.startswith(("model.vision_model.", "model.connector.")) or ".lora_" in k}
            tmp = ckpt.with_suffix(".tmp")
            torch.save({"trained": trained, "rows": grown.rows.detach(), "opt": opt.state_dict(),
                        "order": order, "state": state}, tmp)
            tmp.replace(ckpt)

        model.train()
        model.model.text_model.eval()  # no dropout in SmolLM2 anyway; keeps the frozen LM as it is
        while state["step"] < recipe.steps:
            step = state["step"]
            t0 = time.perf_counter()
            for g in opt.param_groups:
                g["lr"] = recipe.lr * lr_factor(step, recipe)
            if state["cursor"] + recipe.batch_size > n:
                order, state["cursor"] = np.random.default_rng([seed, step]).permutation(n), 0
            batch = order[state["cursor"]: state["cursor"] + recipe.batch_size]
            state["cursor"] += recipe.batch_size
            ids, mask = pad_left([data.ids[i] for i in batch], pad_id)
            target = torch.from_numpy(data.answer_ids[batch])
            out = model(input_ids=ids, attention_mask=mask,
                        pixel_values=data.pixels[torch.from_numpy(data.image_rows[batch])], logits_to_keep=1)
            loss = F.cross_entropy(out.logits[:, -1].float(), target)
            state["losses"].append(clipped_step(opt, loss, params))
            state["seconds"] += time.perf_counter() - t0
            state["step"] = step + 1
            if log is not None:
                log(f"smol step {step + 1}/{recipe.steps} loss {state['losses'][-1]:.4f} "
                    f"mean10 {np.mean(state['losses'][-10:]):.4f} {state['seconds']:.0f}s")
            if state["step"] % CHECKPOINT_EVERY == 0 or state["step"] == recipe.steps:
                save()
    model.eval()
    losses = state["losses"]
    curve = [float(np.mean(losses[i:i + 10])) for i in range(0, len(losses), 10)]
    return {"seconds": state["seconds"], "final_loss": float(np.mean(losses[-50:])), "loss_curve": curve}


def predict_saved(model, data: Encoded, *, pad_id: int, path: Path, rows=None, blank: bool = False,
                  log: Callable[[str], None] | None = None, label: str = "") -> np.ndarray:
    """Predicted token ids (N,), float32, batched :data:`EVAL_BATCH`; partial results saved to
    ``path`` (resumable). With ``blank`` only the distinct prompts are run."""
    import torch

    if path.is_file():
        return np.load(path)
    rows = data.image_rows if rows is None else np.asarray(rows)
    keys = [tuple(r) for r in data.ids]
    if blank:
        uniq = sorted(set(keys))
        todo_ids, inverse = uniq, np.asarray([uniq.index(k) for k in keys]) if len(uniq) < 2000 else None
        where = {k: i for i, k in enumerate(uniq)}
        inverse = np.asarray([where[k] for k in keys])
    else:
        todo_ids, inverse = keys, None
    part = path.with_suffix(".part.npy")
    preds = np.load(part) if part.is_file() else np.full(len(todo_ids), -1, dtype=np.int64)
    start = time.perf_counter()
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(todo_ids), EVAL_BATCH):
            hi = min(lo + EVAL_BATCH, len(todo_ids))
            if (preds[lo:hi] >= 0).all():
                continue
            ids, mask = pad_left([list(k) for k in todo_ids[lo:hi]], pad_id)
            pix = data.blank.expand(hi - lo, *data.blank.shape[1:]) if blank else \
                data.pixels[torch.from_numpy(rows[lo:hi])]
            logits = model(input_ids=ids, attention_mask=mask, pixel_values=pix, logits_to_keep=1).logits[:, -1]
            preds[lo:hi] = logits.argmax(-1).numpy()
            np.save(part, preds)
            if log is not None:
                log(f"smol eval {label} {hi}/{len(todo_ids)} {time.perf_counter() - start:.0f}s")
    out = preds[inverse] if inverse is not None else preds
    np.save(path, out)
    return out


def train_smol(recipe: Recipe, *, seed: int, out: Path, progress: bool = True, eval_n: int | None = EVAL_N) -> dict:
    """Train ``zoo:smol`` and write its shipped folder to ``out`` (resumable).

    Returns the ``zoo.json`` record (accuracy, blank-image accuracy, swap change rate, the
    question-only rule, timings in seconds, the recipe)."""
    import torch
    import transformers
    from safetensors.torch import save_file

    from mmpid.zoo._data import load_split
    from mmpid.zoo.evaluate import SWAP_SEED, text_only_accuracy
    from mmpid.zoo.recipe import other_rows, pretrain_vision

    log = (lambda s: print(s, flush=True)) if progress else None
    out.mkdir(parents=True, exist_ok=True)
    t_load = time.perf_counter()
    lm = S.load_language_model()
    gguf_sha = S._sha256(lm.path)
    tok = S.build_tokenizer(lm.tokenizer)
    processor = S.build_processor(recipe, tok)
    model = S.build_model(recipe, lm, tok, seed=seed)
    del lm
    load_seconds = time.perf_counter() - t_load
    train_split, test_split = load_split("train"), load_split("test")
    train_data = encode_split(train_split, processor, tok)
    test_data = encode_split(test_split, processor, tok)
    word_ids = dict(zip(ANSWERS, S.answer_token_ids(tok, ANSWERS)))

    stage = out / "stage12.pt"
    if stage.is_file():
        saved = torch.load(stage, weights_only=False)
        model.load_state_dict(saved["state"], strict=False)
        pre, align = saved["pre"], saved["align"]
    else:
        shape, colour = settled_image_labels("train", len(train_split.images))
        wide = dataclasses.replace(recipe, batch_size=PRETRAINED_LM_IMAGE_BATCH)
        pre = pretrain_vision(model, train_data, shape, colour, wide, seed=seed, log=log)
        align = align_connector(model, train_data, shape, colour, word_ids, wide, seed=seed,
                                steps=recipe.alignment_steps, log=log)
        keep = {k: v for k, v in model.state_dict().items()
                if k.startswith(("model.vision_model.", "model.connector."))}
        torch.save({"state": keep, "pre": pre, "align": align}, stage)
    S.add_lora(model, rank=recipe.lora_rank, seed=seed)
    fitted = fit_smol(model, train_data, recipe, pad_id=tok.pad_token_id, seed=seed, ckpt=out / "checkpoint.pt",
                      log=log)

    # The shipped weights; evaluation runs on the merged model, as the assembled folder will be.
    state = S.shipped_state(model)
    save_file(state, str(out / S.WEIGHTS_FILE))
    spec = {"name": recipe.name, "recipe": recipe.to_dict(), "package": S.PACKAGE,
            "package_version": S.PACKAGE_VERSION, "gguf_file": S.GGUF_FILE, "gguf_sha256": gguf_sha,
            "lora_targets": ["q_proj", "v_proj"], "added_tokens": list(S.ADDED_TOKENS),
            "prompt_template": S.PROMPT_TEMPLATE}
    (out / S.ASSEMBLY_FILE).write_text(json.dumps(spec, indent=2) + "\n")
    S.merge_lora(model)

    t_eval = time.perf_counter()
    n_test = len(test_data.ids)
    sel = np.arange(n_test) if eval_n is None or eval_n >= n_test else \
        np.sort(np.random.default_rng(EVAL_SEED).choice(n_test, eval_n, replace=False))
    test_data = Encoded([test_data.ids[i] for i in sel], test_data.answer_ids[sel], test_data.image_rows[sel],
                        test_data.pixels, test_data.blank)
    questions = [test_split.questions[i] for i in sel]
    kw = dict(pad_id=tok.pad_token_id, log=log)
    pred = predict_saved(model, test_data, path=out / "eval-pred.npy", label="test", **kw)
    blank = predict_saved(model, test_data, path=out / "eval-blank.npy", blank=True, label="blank", **kw)
    swapped_rows = other_rows(test_data.image_rows, test_data.pixels.shape[0], np.random.default_rng(SWAP_SEED))
    swapped = predict_saved(model, test_data, path=out / "eval-swap.npy", rows=swapped_rows, label="swap", **kw)
    eval_seconds = time.perf_counter() - t_eval
    y = test_data.answer_ids
    test = {"n": len(y), "of": n_test, "subset_seed": None if len(y) == n_test else EVAL_SEED,
            "accuracy": float(np.mean(pred == y)), "blank_accuracy": float(np.mean(blank == y)),
            "swap_change_rate": float(np.mean(swapped != pred)),
            "non_answer_rate": float(np.mean(~np.isin(pred, list(word_ids.values()))))}
    kinds = _question_kinds(questions)
    by_kind = {k: float(np.mean((pred == y)[kinds == k])) for k in sorted(set(kinds))}
    record = {
        "name": recipe.name, "seed": seed, "out_dir": None, "device": "cpu", "threads": torch.get_num_threads(),
        "train_seconds": round(pre["seconds"] + align["seconds"] + fitted["seconds"], 1),
        "stage_seconds": {"load": round(load_seconds, 1), "vision_pretrain": round(pre["seconds"], 1),
                          "alignment": round(align["seconds"], 1), "answer_training": round(fitted["seconds"], 1),
                          "evaluation": round(eval_seconds, 1)},
        "final_loss": fitted["final_loss"], "test": test, "accuracy_by_question_kind": by_kind,
        "recipe": recipe.to_dict(), "loss_curve": fitted["loss_curve"],
        "vision_pretrain_final_loss": pre["final_loss"], "alignment_final_loss": align["final_loss"],
        "load_average": round(os.getloadavg()[0], 2),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "n_trained": int(sum(v.numel() for v in state.values())),
        "size_bytes": int((out / S.WEIGHTS_FILE).stat().st_size),
        "text_only_accuracy": text_only_accuracy(train_split.questions, train_split.answers,
                                                 test_split.questions, test_split.answers),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version(), S.PACKAGE: S.PACKAGE_VERSION},
    }
    from mmpid.zoo import INFO_FILE

    (out / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return record


def _question_kinds(questions) -> np.ndarray:
    """"shape", "colour" or "yes/no" for each question (its meaning, :func:`mmpid.zoo.latents.question_meaning`:
    "what is the blue shape?" asks for the shape)."""
    from mmpid.zoo.latents import question_meaning

    names = {"what-shape": "shape", "what-color": "colour"}
    return np.asarray([names.get(question_meaning(q), "yes/no") for q in questions])
