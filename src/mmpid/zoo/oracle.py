"""The oracle: the PID of a model's predictions from easy-vqa's own latents.

A zoo model's prediction is (nearly) a function of the image's shape and colour and the
question's meaning (:mod:`mmpid.zoo.latents`). The BROJA PID of (image latent, question
meaning -> prediction), estimated from integer labels with the same estimator, bias
correction and intervals as any other estimate, says what the model's behaviour depends on
without any discretisation of embeddings. Since the latents are functions of the inputs'
embeddings, the information the embeddings hold about the prediction is at least the
oracle's total: an estimate from embeddings that reports much less has missed information.

Only questions whose image's shape and colour the split's answers settle are used
(8,879 of the test split's 9,673). A subset is the oracle of its sample ids (e.g. from
:func:`mmpid.zoo.latents.subset_indices`). On ``easy-vqa-hinted`` (``hints=``), the text latent of
a hinted question is its meaning times the answer its hint states
(:func:`mmpid.zoo.latents.text_latent`): the text alone determines the answer there.

>>> import numpy as np
>>> from mmpid.zoo.latents import latents, text_latent
>>> lat = latents("test")
>>> ids = [f"test-{i}" for i in range(2000)]
>>> pred = np.where(lat.known[:2000], lat.image[:2000] % 8, 0)  # "answers" the colour
>>> est = oracle(pred, ids, n_bootstrap=20, n_permutations=10)
>>> round(est.unique_image.corrected, 2), abs(est.unique_text.corrected) < 0.01
(3.0, True)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmpid.errors import InputError
from mmpid.estimate import Estimate, estimate
from mmpid.zoo.latents import latents, text_latent

__all__ = ["oracle", "oracle_of_store", "question_indices"]


def question_indices(sample_ids: Sequence[str]) -> tuple[str, np.ndarray]:
    """The split and the question index of easy-vqa sample ids like ``"test-123"``.

    Raises InputError for ids of another dataset or of two splits.
    """
    splits, index = set(), []
    for sid in sample_ids:
        split, _, number = str(sid).rpartition("-")
        if split not in ("train", "test") or not number.isdigit():
            raise InputError(
                f"The oracle needs easy-vqa sample ids like 'test-123'; got {sid!r}. "
                "Extract with --dataset easy-vqa."
            )
        splits.add(split)
        index.append(int(number))
    if len(splits) != 1:
        raise InputError(f"The sample ids mix easy-vqa splits {sorted(splits)}; use one split.")
    return splits.pop(), np.asarray(index, dtype=np.int64)


def known(sample_ids: Sequence[str]) -> np.ndarray:
    """(N,) bool: the samples whose image's shape and colour are settled (the oracle's questions)."""
    split, index = question_indices(sample_ids)
    return latents(split).known[index]


def oracle(predictions: Any, sample_ids: Sequence[str], *, hints: Any = None, **options: Any) -> Estimate:
    """The PID of ``predictions`` from easy-vqa's latents, in bits.

    Parameters
    ----------
    predictions : (N,) integer labels, the model's answer to each sample.
    sample_ids : N easy-vqa sample ids (``"test-123"``: split and question index); any subset.
    hints : the :class:`mmpid.data.hints.HintSpec` of the questions the model saw (``easy-vqa-hinted``:
        ``DEFAULT_HINTS``), or None for plain easy-vqa.
    **options : passed to :func:`mmpid.estimate` (``seed``, ``n_bootstrap``, ...).

    Returns
    -------
    Estimate on the samples whose image latent is known, with source 1 = the image's
    shape x colour (24 classes) and source 2 = the question's meaning (24 on the test split),
    times the stated answer on hinted questions.
    """
    from mmpid.data.hints import HintSpec

    if hints is not None and not isinstance(hints, HintSpec):
        raise InputError(f"The 'hints' parameter must be a HintSpec or None. Got {hints!r}.")
    pred = np.asarray(predictions)
    if pred.ndim != 1 or pred.dtype.kind not in "iu" or len(pred) != len(sample_ids):
        raise InputError(
            "'predictions' must be (N,) integer labels, one per sample id; got shape "
            f"{pred.shape}, dtype {pred.dtype} for {len(sample_ids)} sample ids."
        )
    split, index = question_indices(sample_ids)
    lat = latents(split)
    keep = lat.known[index]
    if keep.sum() < 2:
        raise InputError(
            f"Only {int(keep.sum())} of {len(index)} samples have a known image latent; "
            "the oracle needs at least 2 (use more questions)."
        )
    idx = index[keep]
    text = lat.meaning if hints is None else text_latent(split, hints).label
    return estimate(lat.image[idx], text[idx], pred[keep], **options)


def oracle_of_store(store: Any, **options: Any) -> Estimate:
    """:func:`oracle` of the predictions saved in a feature store of easy-vqa samples.

    The hints of an ``easy-vqa-hinted`` store are read from its manifest.
    """
    from mmpid.data.hints import HintSpec

    recorded = store.manifest.get("dataset_info", {}).get("hints")
    hints = None if not recorded else HintSpec(fraction=recorded["fraction"], seed=recorded["seed"])
    return oracle(store.predictions(), store.sample_ids, hints=hints, **options)
