"""The versions mmpid records: its own, and those of the packages that decide its numbers."""

from __future__ import annotations

import functools
import platform

__all__ = ["PINNED", "installed_versions", "mmpid_version"]

#: Packages whose version can change extracted features; a store resumed under other versions
#: of these would mix shards computed differently.
PINNED = ("mmpid", "torch", "transformers")


def mmpid_version() -> str:
    """The running mmpid's version (``mmpid.__version__``)."""
    from mmpid import __version__

    return __version__


def installed_versions() -> dict[str, str]:
    """Python's and the key packages' versions (read from their metadata once per process)."""
    return dict(_installed())


@functools.lru_cache(maxsize=1)
def _installed() -> tuple[tuple[str, str], ...]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("mmpid", "torch", "transformers", "numpy", "safetensors", "datasets"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:  # pragma: no cover
            out[pkg] = "absent"
    out["mmpid"] = mmpid_version()  # the running source, also when not installed as a package
    return tuple(out.items())
