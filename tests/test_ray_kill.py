"""The Ray engine killed mid-run: a killed worker (actor) and a killed driver both end in the
store the local engine writes, byte for byte. The cluster's workers are slowed (0.3 s a batch)
by a sitecustomize module on their PYTHONPATH, so that there is a moment to kill them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray", reason="the Ray engine needs the 'ray' extra: pip install -e '.[test,ray]'")

from ray_cluster import local_cluster
from test_ray import assert_same_tree

from mmpid.pipeline import extract_features

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")]

SRC = Path(__file__).resolve().parents[1] / "src"
EXTRACT = {"limit": 48, "batch_size": 4, "shard_size": 4, "device": "cpu", "progress": False}
SLOW = """
import os
if os.environ.get("MMPID_TEST_SLOW_SHARDS"):
    import time
    import mmpid.extract as _extract

    _process_batch = _extract._process_batch

    def _slow(*args, **kwargs):
        open(os.path.join(os.environ["MMPID_TEST_SLOW_SHARDS"], str(os.getpid())), "w").close()
        time.sleep(0.3)
        return _process_batch(*args, **kwargs)

    _extract._process_batch = _slow
"""


@pytest.fixture(scope="module")
def pids(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("pids")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, pids: Path) -> Iterator[Any]:
    hook = tmp_path_factory.mktemp("hook")
    (hook / "sitecustomize.py").write_text(SLOW)
    path = os.pathsep.join(p for p in (str(hook), str(SRC), os.environ.get("PYTHONPATH", "")) if p)
    with local_cluster(env={"PYTHONPATH": path, "MMPID_TEST_SLOW_SHARDS": str(pids)}) as ray:
        yield ray


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("local") / "store"
    extract_features("zoo:normal", out, **EXTRACT)  # this process is not slowed
    return out


def _listed(store: Path) -> list[int]:
    try:
        return [s["index"] for s in json.loads((store / "manifest.json").read_text())["shards"]]
    except (FileNotFoundError, json.JSONDecodeError):
        return []


def _wait(condition: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_a_killed_worker_is_replaced_and_the_store_is_identical(
    cluster: Any, reference: Path, pids: Path, tmp_path: Path
) -> None:
    out = tmp_path / "store"
    killed: list[int] = []

    def kill_the_worker() -> None:
        _wait(lambda: len(_listed(out)) >= 2 and any(pids.iterdir()), "two shards")
        pid = int(max(pids.iterdir(), key=lambda p: p.stat().st_mtime).name)
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    for p in pids.iterdir():
        p.unlink()
    killer = threading.Thread(target=kill_the_worker, daemon=True)
    killer.start()
    extract_features("zoo:normal", out, engine="ray", workers=1, **EXTRACT)
    killer.join(timeout=5)
    assert len(killed) == 1
    assert {int(p.name) for p in pids.iterdir()} - set(killed), "no replacement worker ran"
    assert_same_tree(reference, out)


def test_a_killed_driver_resumes_to_the_same_store(cluster: Any, reference: Path, tmp_path: Path) -> None:
    out = tmp_path / "store"
    address = cluster.get_runtime_context().gcs_address
    child = subprocess.Popen(
        [
            sys.executable, "-c",
            (
                "import sys; from mmpid.pipeline import extract_features; "
                f"extract_features('zoo:normal', sys.argv[1], engine='ray', address=sys.argv[2], workers=1, "
                f"**{EXTRACT!r})"
            ),
            str(out), address,
        ],
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    try:
        _wait(lambda: len(_listed(out)) >= 2 or child.poll() is not None, "two shards")
        assert child.poll() is None, "the extraction ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    listed = _listed(out)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and 2 <= len(listed) < 12
    kept = {i: (out / "shards" / f"shard-{i:05d}.safetensors").stat().st_mtime_ns for i in listed}
    extract_features("zoo:normal", out, engine="ray", workers=1, **EXTRACT)
    assert {i: (out / "shards" / f"shard-{i:05d}.safetensors").stat().st_mtime_ns for i in listed} == kept
    assert_same_tree(reference, out)
