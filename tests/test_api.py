"""The public API: everything in __all__ resolves, and importing mmpid stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mmpid


@pytest.mark.parametrize("name", mmpid.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(mmpid, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        mmpid.nope  # noqa: B018


def test_import_does_not_load_heavy_dependencies() -> None:
    code = (
        "import sys, mmpid; heavy = [m for m in ('torch', 'transformers', 'matplotlib', 'sklearn') "
        "if m in sys.modules]; print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_errors_are_builtin_subclasses() -> None:
    assert issubclass(mmpid.InputError, ValueError)
    assert issubclass(mmpid.SampleSizeError, mmpid.InputError)
    assert issubclass(mmpid.ModelFamilyError, ValueError)
    assert issubclass(mmpid.StoreError, RuntimeError)
    assert all(issubclass(e, mmpid.MmpidError) for e in (mmpid.InputError, mmpid.DatasetError))
