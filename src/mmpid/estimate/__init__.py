"""Estimating PID atoms from samples: discretisation, permutation null, bias correction,
bootstrap intervals and the modality-contribution metric.

>>> from mmpid.estimate import estimate, ATOMS
>>> ATOMS
('redundancy', 'unique_image', 'unique_text', 'synergy', 'contribution_image', 'contribution_text')
"""

from __future__ import annotations

import sys
import types
from typing import Any

from mmpid.estimate.contribution import contribution_image
from mmpid.estimate.core import estimate
from mmpid.estimate.discretise import auto_clusters, plugin_bias_bits
from mmpid.estimate.result import ATOMS, BIT_ATOMS, CONTRIBUTIONS, AtomEstimate, Estimate

__all__ = [
    "ATOMS",
    "BIT_ATOMS",
    "CONTRIBUTIONS",
    "AtomEstimate",
    "Estimate",
    "auto_clusters",
    "contribution_image",
    "estimate",
    "plugin_bias_bits",
]


class _CallableModule(types.ModuleType):
    """Lets ``mmpid.estimate(...)`` call :func:`estimate`.

    Importing this subpackage binds ``mmpid.estimate`` to the module (Python's import system
    does that), which would shadow the function of the same name at the top level.
    """

    def __call__(self, *args: Any, **kwargs: Any) -> Estimate:
        return estimate(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
