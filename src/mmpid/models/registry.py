"""Family lookup: a config's ``model_type`` -> the adapter class that handles it.

Adding a family is one line in :data:`FAMILIES` (``model_type -> "module:Class"``);
the module is imported only when a model of that family is loaded.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

from mmpid.errors import InputError, ModelFamilyError, ModelNotFoundError, OptionError

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

__all__ = ["FAMILIES", "adapter_class", "load_adapter", "resolve_model", "supported_families"]

ZOO_PREFIX = "zoo:"


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


def resolve_model(model: str) -> str:
    """Where a model is: ``zoo:NAME`` becomes the shipped model's folder; a path that does not
    exist is an error here (not a confusing hub-id error later); a hub id passes through.

    Raises
    ------
    OptionError : ``zoo:NAME`` with a name the package does not ship.
    ModelNotFoundError : a path (absolute, relative with ``./``/``../``, ``~``, or ending in a
        separator) that does not exist.
    """
    if model.startswith(ZOO_PREFIX):
        from mmpid import zoo

        shipped = [ZOO_PREFIX + n for n in zoo.list_models()]
        if model not in shipped:
            raise OptionError("model", model, f"a hub id, a model folder, or one of {shipped}")
        return str(zoo.resolve(model))
    expanded = os.path.expanduser(model)
    looks_like_path = (
        os.path.isabs(expanded)
        or model.startswith(("./", "../", "~", ".\\", "..\\"))
        or model.endswith(("/", os.sep))
    )
    if looks_like_path and not os.path.exists(expanded):
        raise ModelNotFoundError(
            f"No such model folder: {model!r}. Give a folder written with model.save_pretrained() "
            "and processor.save_pretrained(), a hub id in the local cache, or zoo:NAME "
            "(see 'mmpid zoo list')."
        )
    if looks_like_path and not os.path.isdir(expanded):
        raise ModelNotFoundError(f"The model path {model!r} is a file; give the folder that holds config.json.")
    return expanded if looks_like_path else model


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
        A local folder written with ``save_pretrained`` (model and processor), a
        hub id already in the cache, or ``zoo:NAME`` (a shipped zoo model).
    device : {"auto", "cpu", "cuda", "cuda:N"}
    dtype : {"float32", "bfloat16", "float16", "auto"} or torch.dtype or None
        None: float32 on CPU, bfloat16 on CUDA.

    Returns
    -------
    Adapter
    """
    if not isinstance(model_id_or_path, str) and not hasattr(model_id_or_path, "__fspath__"):
        raise InputError(f"The 'model' parameter must be a hub id or a folder path. Got {model_id_or_path!r}.")
    path = resolve_model(str(model_id_or_path))
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise ModelFamilyError(
            f"Could not read a model config from {path!r} ({exc}). Give a folder written with "
            "model.save_pretrained() and processor.save_pretrained(), or a hub id in the local cache."
        ) from exc
    cls = adapter_class(getattr(config, "model_type", None) or "<none>")
    return cls.load(path, device=device, dtype=dtype)
