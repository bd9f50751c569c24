"""Accuracy, blank-image accuracy and image-swap change rate of a zoo model on easy-vqa."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mmpid.errors import InputError
from mmpid.zoo.recipe import Encoded, other_rows, pad_left

#: Seed of the image permutation used for the image-swap check.
SWAP_SEED = 12345


@dataclass(frozen=True)
class Evaluation:
    """What a zoo model does on a set of easy-vqa questions.

    Attributes
    ----------
    n : int
        Questions evaluated.
    accuracy : float
        Fraction answered correctly (argmax of the LM head at the last prompt position).
    blank_accuracy : float
        The same with every image replaced by a blank 64x64 image of easy-vqa's mean colour
        (about zero pixel values after normalisation).
    swap_change_rate : float
        Fraction of predictions that change when each image is replaced by a different
        random image of the same split (seed :data:`SWAP_SEED`).
    non_answer_rate : float
        Fraction of predictions that are not one of the 13 answer tokens.
    """

    n: int
    accuracy: float
    blank_accuracy: float
    swap_change_rate: float
    non_answer_rate: float

    def to_dict(self) -> dict:
        """All fields as plain Python values."""
        return asdict(self)


def predict(model, data: Encoded, *, pad_id: int, rows=None, blank: bool = False,
            batch_size: int = 512, device: str = "cpu") -> np.ndarray:
    """Predicted token id of every question, shape (N,).

    ``rows`` (shape (N,)) overrides which image each question gets; ``blank`` feeds the
    blank image (:func:`mmpid.zoo.recipe.blank_image`) to every question instead.
    """
    import torch

    rows = data.image_rows if rows is None else np.asarray(rows)
    preds = np.empty(len(data.ids), dtype=np.int64)
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(data.ids), batch_size):
            hi = min(lo + batch_size, len(data.ids))
            ids, mask = pad_left(data.ids[lo:hi], pad_id)
            pixels = data.pixels[torch.from_numpy(rows[lo:hi])]
            if blank:
                pixels = data.blank.expand_as(pixels)
            logits = model(
                input_ids=ids.to(device), attention_mask=mask.to(device),
                pixel_values=pixels.to(device), logits_to_keep=1,
            ).logits[:, -1]
            preds[lo:hi] = logits.argmax(-1).cpu().numpy()
    return preds


def evaluate(model, data: Encoded, *, pad_id: int, answer_token_ids, batch_size: int = 512,
             device: str = "cpu") -> Evaluation:
    """Accuracy, blank-image accuracy and image-swap change rate of ``model`` on ``data``."""
    n_images = data.pixels.shape[0]
    if n_images < 2:
        raise InputError(f"The 'data' parameter must hold at least 2 images to swap them. Got {n_images}.")
    kw = dict(pad_id=pad_id, batch_size=batch_size, device=device)
    pred = predict(model, data, **kw)
    blank = predict(model, data, blank=True, **kw)
    swapped_rows = other_rows(data.image_rows, n_images, np.random.default_rng(SWAP_SEED))
    swapped = predict(model, data, rows=swapped_rows, **kw)
    return Evaluation(
        n=len(data.ids),
        accuracy=float(np.mean(pred == data.answer_ids)),
        blank_accuracy=float(np.mean(blank == data.answer_ids)),
        swap_change_rate=float(np.mean(swapped != pred)),
        non_answer_rate=float(np.mean(~np.isin(pred, np.asarray(answer_token_ids)))),
    )


def text_only_accuracy(train_questions, train_answers, test_questions, test_answers) -> float:
    """Test accuracy of the best question-only rule: the answer most often given to the same
    question string in training (ties broken by first occurrence). The ceiling of a blind model."""
    from collections import Counter, defaultdict

    if len(train_questions) != len(train_answers) or len(test_questions) != len(test_answers):
        raise InputError("Questions and answers must have the same length in both splits.")
    counts: dict[str, Counter] = defaultdict(Counter)
    for q, a in zip(train_questions, train_answers):
        counts[q][a] += 1
    overall = Counter(train_answers).most_common(1)[0][0]
    hits = [(counts[q].most_common(1)[0][0] if q in counts else overall) == a
            for q, a in zip(test_questions, test_answers)]
    return float(np.mean(hits))
