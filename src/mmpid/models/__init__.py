"""Model adapters: one per VLM family, span finding and layer capture.

``load_adapter(path)`` picks the adapter from the model's ``config.model_type``.
Torch and transformers load when this package is imported; the top-level
``mmpid`` package does not import it eagerly.
"""

from __future__ import annotations

from mmpid.extract_options import POOLINGS
from mmpid.models.base import Activations, Adapter, Encoded
from mmpid.models.decoder import DecoderAdapter
from mmpid.models.registry import FAMILIES, adapter_class, load_adapter, supported_families

__all__ = [
    "FAMILIES",
    "POOLINGS",
    "Activations",
    "Adapter",
    "DecoderAdapter",
    "Encoded",
    "adapter_class",
    "load_adapter",
    "supported_families",
]
