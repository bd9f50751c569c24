"""Output folders, checked before anything is written into them."""

from __future__ import annotations

import os
from pathlib import Path

from mmpid.errors import OptionError

__all__ = ["check_out_dir"]


def check_out_dir(path: str | os.PathLike[str], name: str) -> Path:
    """``path`` as a folder that can be created: OptionError naming ``name`` if it, or a folder
    above it, is an existing file. Creates nothing."""
    out = Path(path)
    for p in (out, *out.parents):
        if p.exists():
            if not p.is_dir():
                where = "is a file" if p == out else f"lies below the file {str(p)!r}"
                raise OptionError(name, str(out), "a folder path", hint=f"{str(out)!r} {where}.")
            break
    return out
