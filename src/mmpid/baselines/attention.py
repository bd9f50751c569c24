"""Attention from the answer position: mass on the image and question tokens, and rollout.

Per layer, the attention weights of the answer position (the last prompt token), averaged over
heads, summed over the image positions and over the question positions (the mass), and divided
by each span's token count (the density: image tokens usually outnumber question tokens).
Attention rollout (Abnar & Zuidema 2020): the product over layers of 0.5·A + 0.5·I (A averaged
over heads, rows renormalised), read at the answer position's row. Needs the attention weights:
the model is switched to ``attn_implementation="eager"`` for the pass and switched back after.
Attention is routing, not attribution: a model that ignores the image may still attend to it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from mmpid.baselines._core import MethodResult, bootstrap_mean, bootstrap_share, check_positive_int, iter_probes, no_grad
from mmpid.errors import ModelFamilyError

if TYPE_CHECKING:  # pragma: no cover
    from mmpid.data import VQADataset
    from mmpid.models.base import Adapter

__all__ = ["attention", "eager_attention"]


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Switch ``model`` to eager attention (which returns weights) and back afterwards."""
    config = getattr(model, "config", None)
    before = getattr(config, "_attn_implementation", None)
    setter = getattr(model, "set_attn_implementation", None)
    if before == "eager" or setter is None:
        yield
        return
    try:
        setter("eager")
    except (ValueError, TypeError, AttributeError) as exc:
        raise ModelFamilyError(
            f"{type(model).__name__} cannot switch to attn_implementation='eager' ({exc}); "
            "attention weights are not available for it."
        ) from exc
    try:
        yield
    finally:
        setter(before)


def attention(
    adapter: Adapter, dataset: VQADataset, *, batch_size: int = 64, seed: int = 0, n_boot: int = 1000
) -> MethodResult:
    """Attention mass and density on each modality from the answer position, and rollout.

    Returns
    -------
    MethodResult
        ``stats``: ``image_mass``, ``text_mass`` (averaged over layers), ``image_density``,
        ``text_density``, ``rollout_image``, ``rollout_text``, and ``image_mass_layer{l}`` per
        layer. ``image_share`` is image_mass / (image_mass + text_mass).
    """
    import torch

    check_positive_int("batch_size", batch_size, minimum=2)
    t0 = time.perf_counter()
    cols: dict[str, list[np.ndarray]] = {}
    passes = 0
    with eager_attention(adapter.model), no_grad():
        for probe, _ in iter_probes(adapter, dataset, batch_size=batch_size):
            out = probe.replay(probe.embeds, output_attentions=True)
            atts = getattr(out, "attentions", None)
            if not atts or any(a is None for a in atts):
                impl = getattr(adapter.model.config, "_attn_implementation", None)
                raise ModelFamilyError(
                    f"{type(adapter.model).__name__} returned no attention weights under "
                    f"attn_implementation={impl!r}; the attention baseline needs 'eager'."
                )
            b = probe.batch
            rows = torch.arange(b)
            ai = probe.answer_index.cpu()
            im, tx = probe.image_mask.cpu().float(), probe.text_mask.cpu().float()
            mean_heads = [a.detach().float().mean(1).cpu() for a in atts]  # each (B, T, T)
            row_sums = torch.stack([a[rows, ai].sum(-1) for a in mean_heads], 1)  # (B, L)
            cols.setdefault("row_sum", []).append(row_sums.numpy())
            img_mass = torch.stack([(a[rows, ai] * im).sum(-1) for a in mean_heads], 1)  # (B, L)
            txt_mass = torch.stack([(a[rows, ai] * tx).sum(-1) for a in mean_heads], 1)
            cols.setdefault("image_mass_layers", []).append(img_mass.numpy())
            cols.setdefault("image_mass", []).append(img_mass.mean(1).numpy())
            cols.setdefault("text_mass", []).append(txt_mass.mean(1).numpy())
            cols.setdefault("image_density", []).append((img_mass.mean(1) / im.sum(1)).numpy())
            cols.setdefault("text_density", []).append((txt_mass.mean(1) / tx.sum(1).clamp(min=1)).numpy())
            t = mean_heads[0].shape[-1]
            eye = torch.eye(t)
            roll = eye.expand(b, t, t).clone()
            for a in mean_heads:
                m = 0.5 * a + 0.5 * eye
                m = m / m.sum(-1, keepdim=True)
                roll = m @ roll
            r = roll[rows, ai]
            cols.setdefault("rollout_image", []).append((r * im).sum(-1).numpy())
            cols.setdefault("rollout_text", []).append((r * tx).sum(-1).numpy())
            passes += probe.n_passes
    per = {k: np.concatenate(v).astype(float) for k, v in cols.items()}
    layers = per.pop("image_mass_layers")
    row_sum = per.pop("row_sum")
    stats = {k: bootstrap_mean(v, n_boot=n_boot, seed=seed) for k, v in per.items()}
    for layer in range(layers.shape[1]):
        stats[f"image_mass_layer{layer + 1}"] = bootstrap_mean(layers[:, layer], n_boot=n_boot, seed=seed)
    stats["max_row_sum_error"] = bootstrap_mean(np.abs(row_sum - 1).max(1), n_boot=n_boot, seed=seed)
    return MethodResult(
        method="attention",
        image_share=bootstrap_share(per["image_mass"], per["text_mass"], n_boot=n_boot, seed=seed),
        stats=stats,
        per_sample=per,
        cost={"seconds": time.perf_counter() - t0, "forward_passes": passes},
        definition="attention mass from the answer position on image / (image + question) tokens, layer mean",
    )
