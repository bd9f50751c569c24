"""The versions mmpid records: its own, and those of the packages that decide its numbers."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
from pathlib import Path

__all__ = ["PINNED", "folder_fingerprint", "installed_versions", "mmpid_version"]

#: Packages whose version can change extracted features; a store resumed under other versions
#: of these would mix shards computed differently.
PINNED = ("mmpid", "torch", "transformers")


def mmpid_version() -> str:
    """The running mmpid's version (``mmpid.__version__``)."""
    from mmpid import __version__

    return __version__


def folder_fingerprint(path: str | os.PathLike[str], *, edge: int = 1 << 20) -> str | None:
    """A cheap fingerprint of a model folder's weights (None if ``path`` is not a folder).

    Hashes ``config.json`` and, for every weight file, its name, its size and its first and
    last ``edge`` bytes: retrained or re-converted weights change it, and a 15 GB checkpoint
    costs a few MiB of reads, not a full pass.
    """
    folder = Path(path)
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.name == "config.json":
            digest.update(f.read_bytes())
        elif f.is_file() and f.suffix in (".safetensors", ".bin", ".pt", ".gguf"):
            size = f.stat().st_size
            digest.update(f"{f.name}:{size}".encode())
            with f.open("rb") as fh:
                digest.update(fh.read(edge))
                fh.seek(max(0, size - edge))
                digest.update(fh.read(edge))
    return digest.hexdigest()[:16]


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
