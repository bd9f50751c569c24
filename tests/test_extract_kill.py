"""A killed extraction (SIGKILL, no cleanup) resumes to byte-identical shards."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tiny_models import build_llava

from mmpid.data import load_dataset
from mmpid.extract import extract
from mmpid.models import load_adapter

torch.set_num_threads(1)

CHILD = """
import sys, time, torch
torch.set_num_threads(1)
from mmpid.data import load_dataset
from mmpid.extract import extract
from mmpid.models import load_adapter
adapter = load_adapter(sys.argv[1], device="cpu")
run = type(adapter).run
def slow(self, enc, **kw):  # slow enough to be killed mid-run
    time.sleep(0.25)
    return run(self, enc, **kw)
type(adapter).run = slow
extract(adapter, load_dataset("easy-vqa", limit=24, seed=1), sys.argv[2], batch_size=4, shard_size=4,
        progress=False)
"""


def _shards(path: Path) -> list[int]:
    try:
        return [s["index"] for s in json.loads((path / "manifest.json").read_text())["shards"]]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_run_resumes_to_identical_shards(tmp_path: Path) -> None:
    model = build_llava(tmp_path / "model")
    part = tmp_path / "part"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(model), str(part)], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(_shards(part)) < 2:
            assert child.poll() is None, "the extraction ended before it could be killed"
            assert time.monotonic() < deadline, "no shard written in time"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    manifest = json.loads((part / "manifest.json").read_text())
    assert not manifest["complete"] and 2 <= len(manifest["shards"]) < 6

    adapter = load_adapter(str(model), device="cpu")
    data = load_dataset("easy-vqa", limit=24, seed=1)
    resumed = extract(adapter, data, part, batch_size=4, shard_size=4, progress=False)
    full = extract(adapter, data, tmp_path / "full", batch_size=4, shard_size=4, progress=False)
    files = sorted(p.name for p in (tmp_path / "full" / "shards").iterdir())
    assert len(files) == 6
    assert sorted(p.name for p in (part / "shards").iterdir() if not p.name.endswith(".tmp")) == files
    for name in files:
        assert (part / "shards" / name).read_bytes() == (tmp_path / "full" / "shards" / name).read_bytes(), name
    assert resumed.manifest["sample_ids"] == full.manifest["sample_ids"]
