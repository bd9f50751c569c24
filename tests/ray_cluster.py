"""One private Ray cluster per test module: local, 2 CPUs, quiet, its own temporary folder,
always shut down (a test must never leave a cluster running)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def local_cluster(*, env: dict[str, str] | None = None) -> Iterator[Any]:
    """``ray`` initialised on a fresh local cluster; ``env`` is set for the cluster's workers."""
    import ray

    saved = {k: os.environ.get(k) for k in ["RAY_AUTH_MODE", *(env or {})]}
    os.environ["RAY_AUTH_MODE"] = "disabled"  # since 2.59 ray.init writes ~/.ray/auth_token otherwise
    os.environ.update(env or {})
    tmp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    try:
        ray.init(
            address="local",  # never join a stale cluster on the machine
            num_cpus=2,
            object_store_memory=128 * 2**20,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            _temp_dir=tmp,
        )
        from mmpid.engine import _quiet_data

        _quiet_data(ray)
        yield ray
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(tmp, ignore_errors=True)
