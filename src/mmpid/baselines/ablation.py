"""Ablation: blank the image, swap it with another sample's, or mask the question.

Per sample and condition: Δ log p(ŷ) (bits; the drop from the unperturbed input, positive when
the perturbation hurts), the KL divergence (bits) from the unperturbed answer distribution to the
perturbed one, whether ŷ flips, and whether the answer is still correct.

In PID terms, with v(S) = I(X_S; Y): the drop when the image is removed is v(IT) - v(T) = U_I + S,
so redundancy is invisible to it.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from mmpid.baselines._core import (
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

__all__ = ["CONDITIONS", "ablation"]

#: The perturbations, in the order they are reported.
CONDITIONS = ("blank_image", "swap_image", "mask_question")


def _kl(p_log2: np.ndarray, q_log2: np.ndarray) -> np.ndarray:
    p = np.exp2(p_log2)
    return np.sum(p * (p_log2 - q_log2), axis=1)


def ablation(
    adapter: Adapter, dataset: VQADataset, *, batch_size: int = 64, seed: int = 0, n_boot: int = 1000
) -> MethodResult:
    """Leave-one-modality-out on every sample of ``dataset``.

    Parameters
    ----------
    adapter : a decoder adapter (:func:`mmpid.models.load_adapter`).
    dataset : :class:`mmpid.data.VQADataset` with single-token answers.
    batch_size : samples per forward pass; images are swapped within a batch (a derangement).
    seed : seeds the swaps and the bootstrap.

    Returns
    -------
    MethodResult
        ``stats`` holds ``{condition}_dlogp`` (bits), ``_kl`` (bits), ``_flip`` and ``_dacc``
        (fractions) for each of :data:`CONDITIONS`, and ``accuracy``. ``image_share`` is
        |Δ_blank image| / (|Δ_blank image| + |Δ_masked question|) of the mean drops.
    """
    check_positive_int("batch_size", batch_size, minimum=2)
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    cols: dict[str, list[np.ndarray]] = {}
    passes = 0

    def add(name: str, v: np.ndarray) -> None:
        cols.setdefault(name, []).append(np.asarray(v, dtype=float))

    with no_grad():
        for probe, labels in iter_probes(adapter, dataset, batch_size=batch_size):
            b = np.arange(probe.batch)
            base = probe.logp
            ok = labels >= 0
            correct = (probe.pred == labels).astype(float)
            add("accuracy", np.where(ok, correct, np.nan))
            perm = derangement(probe.batch, rng)
            conds = {
                "blank_image": probe.full_logp(probe.masked(image=True, text=False)),
                "swap_image": probe.logp_of([probe.images[j] for j in perm], probe.questions),
                "mask_question": probe.full_logp(probe.masked(image=False, text=True)),
            }
            for name, lp in conds.items():
                add(f"{name}_dlogp", base[b, probe.pred] - lp[b, probe.pred])
                add(f"{name}_kl", _kl(base, lp))
                add(f"{name}_flip", (lp.argmax(1) != probe.pred).astype(float))
                add(f"{name}_dacc", np.where(ok, correct - (lp.argmax(1) == labels), np.nan))
            passes += probe.n_passes
    per = {k: np.concatenate(v) for k, v in cols.items()}
    stats = {}
    for k, v in per.items():
        vv = v[~np.isnan(v)]
        stats[k] = bootstrap_mean(vv, n_boot=n_boot, seed=seed) if vv.size else bootstrap_mean(np.zeros(1))
    share = bootstrap_share(per["blank_image_dlogp"], per["mask_question_dlogp"], n_boot=n_boot, seed=seed)
    return MethodResult(
        method="ablation",
        image_share=share,
        stats=stats,
        per_sample=per,
        cost={"seconds": time.perf_counter() - t0, "forward_passes": passes},
        definition="|Δlog p(ŷ), image blanked| / (|... image blanked| + |... question masked|), mean drops",
    )
