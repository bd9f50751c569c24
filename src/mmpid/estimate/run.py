"""What every estimator's run shares: its notes (warnings kept with the result) and its
random streams (one per stage, so each estimator reduces the same data the same way)."""

from __future__ import annotations

import warnings

import numpy as np

from mmpid.errors import EstimateWarning

__all__ = ["STREAMS", "Notes", "seed_int", "seed_streams"]

#: The independent random streams of one estimate, spawned in this order from its seed: the
#: PCA and k-means of each variable, the bootstrap, the permutation null, the N/4 resamples.
STREAMS = ("image", "text", "target", "bootstrap", "null", "subsample")


class Notes:
    """The messages an estimate records in ``Estimate.warnings``; some are also warned."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def __call__(self, message: str, *, emit: bool) -> None:
        self.messages.append(message)
        if emit:
            # user code -> estimate() -> the estimator's private twin -> here
            warnings.warn(message, EstimateWarning, stacklevel=4)


def seed_streams(seed: int) -> dict[str, np.random.SeedSequence]:
    """One SeedSequence per stage (:data:`STREAMS`), the same for every estimator."""
    return dict(zip(STREAMS, np.random.SeedSequence(seed).spawn(len(STREAMS))))


def seed_int(seq: np.random.SeedSequence) -> int:
    """An int seed (scikit-learn's random_state) drawn from a stream."""
    return int(seq.generate_state(1)[0])
