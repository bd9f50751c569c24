"""The options of one estimate, validated once when built.

:class:`EstimateOptions` holds every keyword of :func:`mmpid.estimate.estimate` except the
data. It is built (and so validated) before any work: by ``estimate`` itself, by
:func:`mmpid.pipeline.estimate_store` before the first layer is read, and by the command
line before a model is loaded. An option that does not apply to the chosen protocol or
estimator is rejected rather than silently ignored (``correction="null"`` with
``protocol="per-sample"``, ``length`` with ``protocol="pooled"``, ...): what a result's
``config`` records is what was used.

>>> EstimateOptions(level=0.9).level
0.9
>>> EstimateOptions(level=95)
Traceback (most recent call last):
...
mmpid.errors.OptionError: 'level' must be a number in (0, 1), e.g. 0.95; got 95.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmpid.errors import OptionError

__all__ = [
    "CLUSTER_KEYS",
    "CLUSTER_RULES",
    "CORRECTIONS",
    "ESTIMATORS",
    "EstimateOptions",
    "ESTIMATION_PROTOCOLS",
]

#: ``protocol=`` of :func:`mmpid.estimate.estimate` (how samples form a joint); not to be
#: confused with the extraction protocols of :mod:`mmpid.extract_options`.
ESTIMATION_PROTOCOLS = ("pooled", "per-sample")
CORRECTIONS = ("bootstrap", "extrapolated", "null")
#: "both" runs the discrete and the Gaussian estimator on the same inputs
#: (:func:`mmpid.estimate.compare.estimate_both`, ``estimate_store(..., estimator="both")``).
ESTIMATORS = ("discrete", "gaussian", "both")
#: The named rules ``clusters=`` accepts besides an int or a per-variable dict: "auto" (the
#: resolution the data support, :mod:`mmpid.estimate.resolution`) and "conservative" (one
#: common k from N alone, the plug-in bias bound under independence).
CLUSTER_RULES = ("auto", "conservative")
CLUSTER_KEYS = ("image", "text", "target")
_METHODS = ("exact", "ipfp")
_BACKENDS = ("numpy", "torch")

# Options of one protocol only, with their defaults: any other value under the other
# protocol is an error, since it would be ignored.
_POOLED_ONLY = {
    "n_permutations": 100,
    "correction": "bootstrap",
    "n_init": 4,
    "max_bias": 0.05,
    "max_clusters": 128,
}
_PER_SAMPLE_ONLY = {"length": None, "n_shuffles": 1}
#: Options of the discrete estimator, with their defaults: estimator="gaussian" refuses any
#: other value.
DISCRETE_ONLY: dict[str, Any] = {
    "clusters": "auto",
    "protocol": "pooled",
    "n_init": 4,
    "max_bias": 0.05,
    "max_clusters": 128,
    "method": "exact",
    "backend": "numpy",
    "length": None,
    "n_shuffles": 1,
}


def is_int(value: Any) -> bool:
    """An int (numpy ints included), not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


@dataclass(frozen=True)
class EstimateOptions:
    """Every keyword of :func:`mmpid.estimate.estimate`, validated when built.

    Raises
    ------
    OptionError
        Naming the option, the value received and what is allowed.
    """

    clusters: int | str | Mapping[str, int | str] = "auto"
    seed: int = 0
    n_bootstrap: int = 200
    n_permutations: int = 100
    level: float = 0.95
    protocol: str = "pooled"
    correction: str = "bootstrap"
    normalize: bool = True
    n_components: int | None = 10
    n_init: int = 4
    max_bias: float = 0.05
    max_clusters: int = 128
    method: str = "exact"
    backend: str = "numpy"
    length: int | None = None
    n_shuffles: int = 1
    estimator: str = "discrete"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if self.estimator not in ESTIMATORS:
            raise OptionError("estimator", self.estimator, f"one of {list(ESTIMATORS)}")
        if self.protocol not in ESTIMATION_PROTOCOLS:
            raise OptionError("protocol", self.protocol, f"one of {list(ESTIMATION_PROTOCOLS)}")
        if not is_int(self.seed) or self.seed < 0:
            raise OptionError("seed", self.seed, "a non-negative int")
        for name in ("n_bootstrap", "n_permutations"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 2:
                raise OptionError(name, getattr(self, name), "an int >= 2")
        if not _is_number(self.level) or not 0 < self.level < 1:
            raise OptionError("level", self.level, "a number in (0, 1), e.g. 0.95")
        if self.correction not in CORRECTIONS:
            raise OptionError("correction", self.correction, f"one of {list(CORRECTIONS)}")
        if not isinstance(self.normalize, (bool, np.bool_)):
            raise OptionError("normalize", self.normalize, "True or False")
        nc = self.n_components
        if nc is not None and (not is_int(nc) or nc < 1):
            raise OptionError("n_components", nc, "None or an int >= 1")
        if not is_int(self.n_init) or self.n_init < 1:
            raise OptionError("n_init", self.n_init, "an int >= 1")
        if not _is_number(self.max_bias) or not self.max_bias > 0 or not np.isfinite(self.max_bias):
            raise OptionError("max_bias", self.max_bias, "a positive number of bits")
        if not is_int(self.max_clusters) or self.max_clusters < 2:
            raise OptionError("max_clusters", self.max_clusters, "an int >= 2")
        if self.method not in _METHODS:
            raise OptionError("method", self.method, f"one of {list(_METHODS)}")
        if self.backend not in _BACKENDS:
            raise OptionError("backend", self.backend, f"one of {list(_BACKENDS)}")
        if self.length is not None and (not is_int(self.length) or self.length < 2):
            raise OptionError("length", self.length, "None or an int >= 2")
        if not is_int(self.n_shuffles) or self.n_shuffles < 1:
            raise OptionError("n_shuffles", self.n_shuffles, "an int >= 1")
        self._check_clusters()
        self._check_applies()
        # plain Python values from here on (numpy ints and floats become int and float)
        for name in ("seed", "n_bootstrap", "n_permutations", "n_init", "max_clusters", "n_shuffles"):
            set_(self, name, int(getattr(self, name)))
        for name in ("level", "max_bias"):
            set_(self, name, float(getattr(self, name)))
        set_(self, "normalize", bool(self.normalize))
        if nc is not None:
            set_(self, "n_components", int(nc))
        if self.length is not None:
            set_(self, "length", int(self.length))

    def _check_clusters(self) -> None:
        c = self.clusters
        allowed = (
            f"one of {list(CLUSTER_RULES)}, an int >= 1, or a dict with keys {list(CLUSTER_KEYS)}"
        )
        if isinstance(c, str):
            if c not in CLUSTER_RULES:
                raise OptionError("clusters", c, allowed)
        elif is_int(c):
            if c < 1:
                raise OptionError("clusters", c, allowed)
        elif isinstance(c, Mapping):
            unknown = sorted(set(c) - set(CLUSTER_KEYS), key=str)
            if unknown:
                raise OptionError("clusters", dict(c), allowed, hint=f"Unknown keys: {unknown}.")
            for key, value in c.items():
                if not ((isinstance(value, str) and value in CLUSTER_RULES) or (is_int(value) and value >= 1)):
                    raise OptionError(
                        f"clusters[{key!r}]", value, f"an int >= 1 or one of {list(CLUSTER_RULES)}"
                    )
        else:
            raise OptionError("clusters", c, allowed)

    def _check_applies(self) -> None:
        """Reject options that the chosen protocol or estimator would ignore."""
        if self.estimator == "gaussian":
            for name, default in DISCRETE_ONLY.items():
                if getattr(self, name) != default:
                    raise OptionError(
                        name,
                        getattr(self, name),
                        f"left at its default ({default!r}) with estimator='gaussian'",
                        hint="It belongs to the discrete estimator and would be ignored.",
                    )
            return
        if self.estimator == "both":
            # the discrete options apply (to the discrete estimator); the Gaussian one is pooled
            if self.protocol != "pooled":
                raise OptionError(
                    "protocol", self.protocol, "'pooled' with estimator='both'",
                    hint="The Gaussian estimator has no per-sample protocol.",
                )
        if self.protocol == "per-sample":
            for name, default in _POOLED_ONLY.items():
                if getattr(self, name) != default:
                    raise OptionError(
                        name,
                        getattr(self, name),
                        f"left at its default ({default!r}) with protocol='per-sample'",
                        hint="It belongs to protocol='pooled' and would be ignored.",
                    )
            if not (is_int(self.clusters) or self.clusters == "auto"):
                raise OptionError(
                    "clusters",
                    self.clusters,
                    "an int >= 1 or 'auto' (10, as the paper) with protocol='per-sample'",
                )
        else:
            for name, default in _PER_SAMPLE_ONLY.items():
                if getattr(self, name) != default:
                    raise OptionError(
                        name,
                        getattr(self, name),
                        f"left at its default ({default!r}) with protocol='pooled'",
                        hint="It belongs to protocol='per-sample' and would be ignored.",
                    )

    def clusters_json(self) -> Any:
        """``clusters`` as JSON values (numpy ints become ints)."""
        c = self.clusters
        if isinstance(c, str):
            return c
        if is_int(c):
            return int(c)
        return {k: v if isinstance(v, str) else int(v) for k, v in dict(c).items()}

    def to_dict(self) -> dict[str, Any]:
        """Every option as plain JSON values (what a cache key or a manifest records)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["clusters"] = self.clusters_json()
        return out
