"""Estimating PID atoms from samples: discretisation, permutation null, bias correction,
bootstrap intervals and the modality-contribution metric.

>>> from mmpid.estimate import estimate, ATOMS
>>> ATOMS
('redundancy', 'unique_image', 'unique_text', 'synergy', 'contribution_image', 'contribution_text')
"""

from __future__ import annotations

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
