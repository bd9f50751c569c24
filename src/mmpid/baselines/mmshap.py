"""MM-SHAP (Parcalabescu & Frank, ACL 2023): token-level Shapley values with shap's permutation
explainer, as its authors used, and the textual degree T-SHAP.

The players of one sample are its image tokens (one per image patch / feature position) and its
question tokens. A player that is off has its input embedding replaced: an image token by the
blank image's feature at that position, a question token by the pad embedding (the masking of
:mod:`mmpid.baselines.ablation`). The value is log p(ŷ) in bits. Then

    T-SHAP = Σ|φ_text| / (Σ|φ_text| + Σ|φ_image|),   I-SHAP = 1 - T-SHAP,

per sample, averaged over samples. The permutation explainer's budget (``max_evals``, model
rows per sample) sets the cost; it is recorded.
"""

from __future__ import annotations

import time
import warnings
from typing import TYPE_CHECKING

import numpy as np

from mmpid.baselines._core import MethodResult, bootstrap_mean, check_positive_int, iter_probes, no_grad
from mmpid.errors import MmpidError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    from mmpid.data import VQADataset
    from mmpid.models.base import Adapter

__all__ = ["mm_shap"]


def _shap():
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # shap's optional-dependency notices at import
            import shap
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise MmpidError("MM-SHAP needs shap: pip install 'mmpid[baselines]' (or pip install shap).") from exc
    return shap


def mm_shap(
    adapter: Adapter,
    dataset: VQADataset,
    *,
    max_evals: int = 200,
    batch_size: int = 64,
    seed: int = 0,
    n_boot: int = 1000,
) -> MethodResult:
    """MM-SHAP's T-SHAP and I-SHAP on every sample of ``dataset``.

    Parameters
    ----------
    max_evals : model evaluations per sample given to shap's permutation explainer; it must
        be at least 2·(players) + 1 (one permutation forward and back).

    Returns
    -------
    MethodResult
        ``stats``: ``t_shap``, ``i_shap`` (fractions), ``sum_phi`` and ``delta``
        (v(all on) - v(all off), which the φ sum to), ``players``. ``image_share`` is I-SHAP.
    """
    import torch

    check_positive_int("max_evals", max_evals, minimum=3)
    check_positive_int("batch_size", batch_size, minimum=2)
    shap = _shap()
    t0 = time.perf_counter()
    cols: dict[str, list[float]] = {k: [] for k in ("t_shap", "i_shap", "sum_phi", "delta", "players")}
    passes = 0
    with no_grad():
        for probe, _ in iter_probes(adapter, dataset, batch_size=batch_size):
            for i in range(probe.batch):
                img_pos = torch.nonzero(probe.image_mask[i]).flatten()
                txt_pos = torch.nonzero(probe.text_mask[i]).flatten()
                positions = torch.cat([img_pos, txt_pos])
                n_img, n = len(img_pos), len(positions)
                if max_evals < 2 * n + 1:
                    raise OptionError(
                        "max_evals", max_evals, f"at least 2 * players + 1 = {2 * n + 1} for sample {i}",
                        hint="shap's permutation explainer needs one full permutation per sample.",
                    )
                x = probe.embeds[i]
                off = torch.where(probe.image_mask[i][:, None], probe.blank_embeds[i], probe.pad_embed.expand_as(x))

                def f(z: np.ndarray, i=i, x=x, off=off, positions=positions) -> np.ndarray:
                    keep = torch.ones(len(z), x.shape[0], dtype=torch.bool)
                    keep[:, positions] = torch.as_tensor(np.asarray(z) > 0.5)
                    e = torch.where(keep[..., None].to(x.device), x, off)
                    return probe.value(e, np.full(len(z), i)).cpu().numpy().astype(float)

                masker = shap.maskers.Independent(np.zeros((1, n)), max_samples=1)
                explainer = shap.explainers.Permutation(f, masker, seed=seed)
                expl = explainer(np.ones((1, n)), max_evals=max_evals, silent=True)
                phi = np.asarray(expl.values[0], dtype=float)
                a_img, a_txt = np.abs(phi[:n_img]).sum(), np.abs(phi[n_img:]).sum()
                tot = a_img + a_txt
                cols["t_shap"].append(a_txt / tot if tot > 0 else np.nan)
                cols["i_shap"].append(a_img / tot if tot > 0 else np.nan)
                cols["sum_phi"].append(float(phi.sum()))
                cols["delta"].append(float(f(np.ones((1, n)))[0] - f(np.zeros((1, n)))[0]))
                cols["players"].append(float(n))
            passes += probe.n_passes
    per = {k: np.asarray(v, dtype=float) for k, v in cols.items()}
    stats = {k: bootstrap_mean(v[~np.isnan(v)] if np.any(~np.isnan(v)) else np.zeros(1), n_boot=n_boot, seed=seed)
             for k, v in per.items()}
    return MethodResult(
        method="mmshap",
        image_share=stats["i_shap"],
        stats=stats,
        per_sample=per,
        cost={"seconds": time.perf_counter() - t0, "forward_passes": passes, "max_evals": max_evals},
        definition="I-SHAP = Σ|φ_image tokens| / Σ|φ all tokens| per sample, averaged (MM-SHAP)",
    )
