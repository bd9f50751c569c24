"""Family lookup: a config's ``model_type`` -> the adapter class that handles it.

Adding a family is one line in :data:`FAMILIES` (``model_type -> "module:Class"``);
the module is imported only when a model of that family is loaded.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from mmpid.errors import InputError, ModelFamilyError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from mmpid.models.base import Adapter

#: config.model_type -> "module:AdapterClass"
FAMILIES: dict[str, str] = {
    "llava": "mmpid.models.llava:LlavaAdapter",
    "llava_next": "mmpid.models.llava:LlavaNextAdapter",
    "idefics3": "mmpid.models.idefics3:Idefics3Adapter",
    "smolvlm": "mmpid.models.idefics3:SmolVLMAdapter",
    "qwen2_vl": "mmpid.models.qwen2_vl:Qwen2VLAdapter",
    "qwen2_5_vl": "mmpid.models.qwen2_vl:Qwen2_5_VLAdapter",
    "paligemma": "mmpid.models.paligemma:PaliGemmaAdapter",
    "blip": "mmpid.models.blip:BlipVQAAdapter",
}

__all__ = ["FAMILIES", "adapter_class", "load_adapter", "supported_families"]


def supported_families() -> list[str]:
    """The ``model_type`` values mmpid has an adapter for, sorted."""
    return sorted(FAMILIES)


def adapter_class(model_type: str) -> type[Adapter]:
    """The adapter class for a ``config.model_type``; ModelFamilyError if none."""
    target = FAMILIES.get(model_type)
    if target is None:
        raise ModelFamilyError(
            f"No adapter for model family {model_type!r}. Supported families (config.model_type): "
            f"{', '.join(supported_families())}."
        )
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def load_adapter(
    model_id_or_path: str,
    *,
    device: str = "auto",
    dtype: str | torch.dtype | None = None,
) -> Adapter:
    """Load a VLM and its processor by hub id (from the local cache) or folder.

    Parameters
    ----------
    model_id_or_path : str
        A local folder written with ``save_pretrained`` (model and processor) or a
        hub id already in the cache.
    device : {"auto", "cpu", "cuda", "cuda:N"}
    dtype : {"float32", "bfloat16", "float16", "auto"} or torch.dtype or None
        None: float32 on CPU, bfloat16 on CUDA.

    Returns
    -------
    Adapter
    """
    from transformers import AutoConfig

    if not isinstance(model_id_or_path, str) and not hasattr(model_id_or_path, "__fspath__"):
        raise InputError(f"The 'model' parameter must be a hub id or a folder path. Got {model_id_or_path!r}.")
    path = str(model_id_or_path)
    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelFamilyError(
            f"Could not read a model config from {path!r} ({exc}). Give a folder written with "
            "model.save_pretrained() and processor.save_pretrained(), or a hub id in the local cache."
        ) from exc
    cls = adapter_class(getattr(config, "model_type", None) or "<none>")
    return cls.load(path, device=device, dtype=dtype)
