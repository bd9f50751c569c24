"""Typed exceptions. Each is also the built-in error a caller would expect."""

from __future__ import annotations


class MmpidError(Exception):
    """Base class of every error mmpid raises on purpose."""


class InputError(MmpidError, ValueError):
    """Bad input: wrong shape, NaN/inf, negative probabilities, mismatched lengths."""


class OptionError(InputError):
    """An option with a value it cannot take, or one that does not apply to the others chosen.

    ``name`` is the keyword as the library spells it, ``got`` the value received and
    ``allowed`` what would be accepted (a phrase); the command line rewrites ``name`` as the
    flag the user typed (:meth:`for_flag`).
    """

    def __init__(self, name: str, got: object, allowed: str, *, hint: str = "") -> None:
        self.name, self.got, self.allowed, self.hint = name, got, allowed, hint
        super().__init__(self._text(repr(name)))

    def _text(self, label: str) -> str:
        return f"{label} must be {self.allowed}; got {self.got!r}." + (f" {self.hint}" if self.hint else "")

    def for_flag(self, flag: str) -> str:
        """The message with the option named as the flag ``flag`` (e.g. ``--level``)."""
        return self._text(flag)


class ModelNotFoundError(MmpidError, FileNotFoundError):
    """A model folder that does not exist (and is not a hub id in the local cache)."""


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


class CheckSkippedWarning(UserWarning):
    """A safety check that could not run; what was skipped and why is also recorded."""


class EstimateWarning(UserWarning):
    """An estimate that should be read with care (sparse cells, atoms within the null)."""


__all__ = [
    "MmpidError",
    "InputError",
    "OptionError",
    "ModelNotFoundError",
    "SampleSizeError",
    "ModelFamilyError",
    "DatasetError",
    "StoreError",
    "ConvergenceWarning",
    "EstimateWarning",
    "CheckSkippedWarning",
]
