"""Perceptual score (Gat, Schwartz, Schwing, NeurIPS 2021): the accuracy lost when one modality
is permuted across the samples, averaged over permutations; normalised by the accuracy.

Images are permuted within each batch (a derangement: no sample keeps its own image); questions
likewise. Both are re-encoded and the whole model is run.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from mmpid.baselines._core import (
    Interval,
    MethodResult,
    bootstrap_mean,
    bootstrap_share,
    check_positive_int,
    derangement,
    iter_probes,
    no_grad,
)

if TYPE_CHECKING:  # pragma: no cover
    from mmpid.data import VQADataset
    from mmpid.models.base import Adapter

__all__ = ["perceptual_score"]


def perceptual_score(
    adapter: Adapter,
    dataset: VQADataset,
    *,
    n_permutations: int = 3,
    batch_size: int = 64,
    seed: int = 0,
    n_boot: int = 1000,
) -> MethodResult:
    """Image and question perceptual scores of ``adapter`` on the labelled samples of ``dataset``.

    Returns
    -------
    MethodResult
        ``stats``: ``accuracy``, ``image_raw`` / ``text_raw`` (accuracy drops, fractions) and
        ``image_normalised`` / ``text_normalised`` (drops over the accuracy). ``image_share`` is
        |image_raw| / (|image_raw| + |text_raw|).
    """
    check_positive_int("n_permutations", n_permutations)
    check_positive_int("batch_size", batch_size, minimum=2)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    acc, d_img, d_txt = [], [], []
    passes = 0
    with no_grad():
        for probe, labels in iter_probes(adapter, dataset, batch_size=batch_size):
            ok = labels >= 0
            correct = (probe.pred == labels).astype(float)
            ci = np.zeros(probe.batch)
            ct = np.zeros(probe.batch)
            for _ in range(n_permutations):
                perm = derangement(probe.batch, rng)
                lp = probe.logp_of([probe.images[j] for j in perm], probe.questions)
                ci += lp.argmax(1) == labels
                perm = derangement(probe.batch, rng)
                lp = probe.logp_of(probe.images, [probe.questions[j] for j in perm])
                ct += lp.argmax(1) == labels
            acc.append(correct[ok])
            d_img.append((correct - ci / n_permutations)[ok])
            d_txt.append((correct - ct / n_permutations)[ok])
            passes += probe.n_passes
    a, di, dt = (np.concatenate(x) for x in (acc, d_img, d_txt))
    if a.size == 0:
        from mmpid.errors import DatasetError

        raise DatasetError("The perceptual score needs labelled samples: no answer is in the dataset's answer set.")
    accuracy = bootstrap_mean(a, n_boot=n_boot, seed=seed)
    stats = {"accuracy": accuracy, "image_raw": bootstrap_mean(di, n_boot=n_boot, seed=seed),
             "text_raw": bootstrap_mean(dt, n_boot=n_boot, seed=seed)}
    for name in ("image", "text"):
        raw = stats[f"{name}_raw"]
        den = accuracy.value if accuracy.value > 0 else float("nan")
        stats[f"{name}_normalised"] = Interval(raw.value / den, raw.ci_low / den, raw.ci_high / den)
    return MethodResult(
        method="perceptual",
        image_share=bootstrap_share(di, dt, n_boot=n_boot, seed=seed),
        stats=stats,
        per_sample={"correct": a, "image_drop": di, "text_drop": dt},
        cost={"seconds": time.perf_counter() - t0, "forward_passes": passes},
        definition="|accuracy drop, images permuted| / (|... images permuted| + |... questions permuted|)",
    )
