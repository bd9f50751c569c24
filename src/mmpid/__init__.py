"""mmpid: Partial Information Decomposition of what a vision-language model uses.

The public API is importable from the top level. Heavy dependencies (torch,
transformers, matplotlib, scikit-learn) load only when the part that needs them is used.
"""

from __future__ import annotations

import importlib
from typing import Any

from mmpid.errors import (
    CheckSkippedWarning,
    ConvergenceWarning,
    DatasetError,
    EstimateWarning,
    InputError,
    MmpidError,
    ModelFamilyError,
    ModelNotFoundError,
    OptionError,
    SampleSizeError,
    StoreError,
)

__version__ = "0.2.0"

# name -> module that defines it; resolved on first access (PEP 562).
_LAZY = {
    "decompose": "mmpid.pid",
    "decompose_many": "mmpid.pid",
    "PID": "mmpid.pid",
    "PIDBatch": "mmpid.pid",
    "gaussian_pid": "mmpid.pid",
    "GaussianPID": "mmpid.pid",
    "estimate": "mmpid.estimate",
    "Estimate": "mmpid.estimate",
    "EstimateOptions": "mmpid.estimate.options",
    "estimate_both": "mmpid.estimate.compare",
    "EstimatorComparison": "mmpid.estimate.compare",
    "ExtractOptions": "mmpid.extract_options",
    "AtomEstimate": "mmpid.estimate",
    "synthetic": "mmpid.synthetic",
    "load_adapter": "mmpid.models.registry",
    "load_dataset": "mmpid.data",
    "FeatureStore": "mmpid.store",
    "analyze": "mmpid.pipeline",
    "LayerResults": "mmpid.report.results",
    "render_report": "mmpid.report",
    "zoo": "mmpid.zoo",
    "compare": "mmpid.baselines",
    "baselines": "mmpid.baselines",
}

__all__ = [
    "__version__",
    "CheckSkippedWarning",
    "ConvergenceWarning",
    "DatasetError",
    "EstimateWarning",
    "InputError",
    "MmpidError",
    "ModelFamilyError",
    "ModelNotFoundError",
    "OptionError",
    "SampleSizeError",
    "StoreError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mmpid' has no attribute {name!r}")
    mod = importlib.import_module(module)
    value = mod if module.endswith("." + name) else getattr(mod, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
