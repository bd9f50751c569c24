"""Reading hidden states out of a forward pass: layer hooks, and pooling a span's positions."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmpid.errors import InputError
from mmpid.extract_options import POOLINGS

if TYPE_CHECKING:  # pragma: no cover
    from mmpid.models.base import Encoded

__all__ = ["capture_layers", "pool", "pool_weights"]


@contextlib.contextmanager
def capture_layers(
    points: Sequence[tuple[nn.Module, str]],
    reduce: Callable[[int, torch.Tensor], None],
) -> Iterator[None]:
    """Call ``reduce(layer_index, hidden)`` at each capture point during a forward pass.

    Parameters
    ----------
    points : sequence of (module, "pre" | "post")
        Capture point ``i`` reads the first input (``"pre"``) or the output
        (``"post"``; first element of a tuple output) of its module.
    reduce : callable
        Receives the layer index and the hidden states, shape (B, T, d); it must
        keep only what it needs (pooled, detached copies).

    The hooks are removed on exit, also when the forward pass raises.
    """
    handles = []

    def _pre(i: int):
        def hook(module, args, kwargs):
            h = args[0] if args else kwargs.get("hidden_states")
            reduce(i, h.detach())

        return hook

    def _post(i: int):
        def hook(module, args, output):
            h = output[0] if isinstance(output, (tuple, list)) else output
            if hasattr(h, "last_hidden_state"):
                h = h.last_hidden_state
            reduce(i, h.detach())

        return hook

    try:
        for i, (module, where) in enumerate(points):
            if where == "pre":
                handles.append(module.register_forward_pre_hook(_pre(i), with_kwargs=True))
            elif where == "post":
                handles.append(module.register_forward_hook(_post(i)))
            else:  # pragma: no cover - programming error
                raise ValueError(f"capture point must be 'pre' or 'post', got {where!r}")
        yield
    finally:
        for h in handles:
            h.remove()


def pool(hidden: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Pool hidden states over the positions of a mask.

    Parameters
    ----------
    hidden : Tensor, shape (B, T, d)
    mask : Tensor of bool, shape (B, T); every row must have at least one True.
    how : {"mean", "last", "max"}
        ``last`` takes the last masked position of each row.

    Returns
    -------
    Tensor, shape (B, d), float32.
    """
    h = hidden.float()
    m = mask.to(h.device)
    if how == "mean":
        w = m.to(h.dtype).unsqueeze(-1)
        return (h * w).sum(1) / w.sum(1).clamp_min(1.0)
    if how == "max":
        neg = torch.finfo(h.dtype).min
        return h.masked_fill(~m.unsqueeze(-1), neg).amax(1)
    if how == "last":
        t = torch.arange(m.shape[1], device=m.device)
        last = torch.where(m, t, -1).amax(1).clamp_min(0)
        return h[torch.arange(h.shape[0], device=h.device), last]
    raise InputError(f"The 'pooling' parameter must be one of {list(POOLINGS)}. Got {how!r}.")


def pool_weights(encoded: Encoded, pooling: str) -> torch.Tensor | None:
    """Rows of a (B, 3, T) matrix whose product with hidden states (B, T, d) pools image, text, answer.

    Mean and last pooling are linear in the hidden states, so one batched matrix
    product per layer does all three; max pooling returns None (pooled directly).
    """
    if pooling == "max":
        return None
    b, t = encoded.image_mask.shape
    dev = encoded.image_mask.device
    pos = torch.arange(t, device=dev)
    answer = pos == encoded.answer_index.unsqueeze(-1)  # (B, T)
    masks = torch.stack((encoded.image_mask, encoded.text_mask, answer), dim=1)  # (B, 3, T)
    if pooling == "last":
        last = torch.where(masks, pos, -1).amax(-1, keepdim=True)  # (B, 3, 1)
        masks = pos == last
    w = masks.to(torch.float32)
    return w / w.sum(-1, keepdim=True).clamp_min(1.0)
