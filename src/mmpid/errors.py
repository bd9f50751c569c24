"""Typed exceptions. Each is also the built-in error a caller would expect."""

from __future__ import annotations


class MmpidError(Exception):
    """Base class of every error mmpid raises on purpose."""


class InputError(MmpidError, ValueError):
    """Bad input: wrong shape, NaN/inf, negative probabilities, mismatched lengths."""


class SampleSizeError(InputError):
    """Too few samples for the alphabet asked for."""


class ModelFamilyError(MmpidError, ValueError):
    """A model whose family mmpid has no adapter for, or that lacks what the adapter needs."""


class DatasetError(MmpidError, ValueError):
    """A dataset that is missing columns, files or decodable images."""


class StoreError(MmpidError, RuntimeError):
    """A feature store that is missing, corrupt or made with another configuration."""


class ConvergenceWarning(UserWarning):
    """A solver stopped before reaching its tolerance; the result carries converged=False."""


class EstimateWarning(UserWarning):
    """An estimate that should be read with care (sparse cells, atoms within the null)."""


__all__ = [
    "MmpidError",
    "InputError",
    "SampleSizeError",
    "ModelFamilyError",
    "DatasetError",
    "StoreError",
    "ConvergenceWarning",
    "EstimateWarning",
]
