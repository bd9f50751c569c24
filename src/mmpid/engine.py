"""Where the work runs: this process (``engine="local"``) or a Ray cluster (``engine="ray"``).

:class:`EngineOptions` is validated when built, before any model, dataset or cluster is
touched, like :class:`mmpid.extract_options.ExtractOptions`; this module imports nothing
heavy (Ray loads on use, with a message saying how to install it when it is missing).

>>> EngineOptions().engine
'local'
>>> EngineOptions(workers=2)
Traceback (most recent call last):
...
mmpid.errors.OptionError: 'workers' must be left out with engine='local'; got 2. It sizes the Ray engine's pool; add engine='ray' (--engine ray).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from mmpid.errors import MmpidError, OptionError

__all__ = ["ENGINES", "EngineError", "EngineOptions", "import_ray", "ray_session"]

ENGINES = ("local", "ray")
#: What to install for engine="ray".
RAY_INSTALL = 'pip install "mmpid[ray]"'


class EngineError(MmpidError, RuntimeError):
    """The Ray engine cannot run: Ray missing, or a cluster that cannot be joined."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class EngineOptions:
    """The engine and, for Ray, the cluster and the size of the worker pool.

    Parameters
    ----------
    engine : {"local", "ray"}
    address : str, optional
        The Ray cluster to join (``"auto"``: the one started on this node with ``ray start``;
        ``"ray://host:10001"``; ...). Left out: a private local cluster is started, quietly
        (no dashboard, logs under a temporary folder), and shut down at the end.
    workers : int, optional
        Extraction: model replicas (Ray actors), each loading the model once. Estimation:
        layers estimated at the same time. Default: what the cluster's CPUs (or GPUs, with
        ``gpus_per_worker``) allow, keeping one CPU free for the tasks that feed the actors.
    gpus_per_worker : float
        GPUs each extraction actor holds (0: CPU only; 1: one model per GPU; 0.5: two per GPU).
    cpus_per_worker : float
        CPUs each worker holds; its torch, BLAS and numba threads are pinned to this many.
    tables_per_task : int
        Estimation: a layer's stack of tables (the data's, the bootstrap's, the permutation
        null's) is solved in Ray tasks of this many tables (the last may hold up to twice as many)
        when it holds at least two such chunks, so that a few layers with many resamples still
        use the whole cluster; 0 solves each layer's stack in its own task. About 1 ms of
        overhead per task: keep chunks at 100 tables or more. The atoms do not depend on it.

    Raises
    ------
    OptionError
        Naming the option, the value received and what is allowed; an option that only the
        Ray engine uses is refused with ``engine="local"`` rather than ignored.
    """

    engine: str = "local"
    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    tables_per_task: int = 100

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise OptionError("engine", self.engine, f"one of {list(ENGINES)}")
        if self.address is not None and (not isinstance(self.address, str) or not self.address.strip()):
            raise OptionError("address", self.address, "None or a Ray address such as 'auto' or 'ray://host:10001'")
        if self.workers is not None and (not _is_int(self.workers) or self.workers < 1):
            raise OptionError("workers", self.workers, "None (what the cluster allows) or an int >= 1")
        for name in ("gpus_per_worker", "cpus_per_worker"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
                raise OptionError(name, value, "a number >= 0, e.g. 1")
            object.__setattr__(self, name, float(value))
        if self.cpus_per_worker <= 0:
            raise OptionError("cpus_per_worker", self.cpus_per_worker, "a number > 0, e.g. 1")
        if not _is_int(self.tables_per_task) or self.tables_per_task < 0:
            raise OptionError("tables_per_task", self.tables_per_task, "an int >= 0 (0: one task per layer), e.g. 100")
        if self.engine == "local":
            defaults = {
                "address": None, "workers": None, "gpus_per_worker": 0.0, "cpus_per_worker": 1.0,
                "tables_per_task": 100,
            }
            for name, default in defaults.items():
                if getattr(self, name) != default:
                    raise OptionError(
                        name, getattr(self, name), "left out with engine='local'",
                        hint="It sizes the Ray engine's pool; add engine='ray' (--engine ray)."
                        if name != "address" else "It names a Ray cluster; add engine='ray' (--engine ray).",
                    )
        elif importlib.util.find_spec("ray") is None:
            raise OptionError(
                "engine", self.engine, "'local' here: Ray is not installed",
                hint=f"Install it with: {RAY_INSTALL}",
            )

    @property
    def is_ray(self) -> bool:
        return self.engine == "ray"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def import_ray() -> Any:
    """``ray``, or EngineError saying how to install it."""
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - EngineOptions checks first
        raise EngineError(f"engine='ray' needs Ray: {RAY_INSTALL} ({exc}).") from exc
    return ray


@contextlib.contextmanager
def ray_session(options: EngineOptions) -> Iterator[Any]:
    """Yield ``ray``, joined to ``options.address`` or to a private, quiet local cluster.

    A cluster that is already initialised in this process (a test's, a notebook's) is used as
    it is and left running. A private cluster (no ``address``) has no dashboard, writes its
    logs under a temporary folder, and is shut down when the block ends, even on an error;
    it declares at least one CPU more than the pool of ``workers`` holds, so that the pool
    leaves one for the tasks that feed it (Ray issue 44687: a pool holding every CPU can hang without an error).
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # since 2.59: no token file in ~/.ray
    kwargs: dict[str, Any] = {"log_to_driver": False, "logging_level": "ERROR"}
    if options.address is None:
        cpus = max(os.cpu_count() or 1, math.ceil((options.workers or 1) * options.cpus_per_worker) + 1)
        tmp = tempfile.mkdtemp(prefix="mmpid-ray-")
        kwargs.update(
            address="local", num_cpus=cpus, include_dashboard=False, _temp_dir=tmp,
            object_store_memory=256 * 2**20,
        )
    else:
        kwargs.update(address=options.address)
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = options.address or "a local cluster"
        raise EngineError(
            f"Could not start or join the Ray cluster at {where!r} ({exc}). With --address auto, run "
            "'ray start --head' on this node first."
        ) from exc
    try:
        _quiet_data(ray)
        yield ray
    except BaseException:
        ray.shutdown()  # a private cluster's logs stay in its folder, for the error's sake
        raise
    ray.shutdown()
    if options.address is None:
        shutil.rmtree(kwargs["_temp_dir"], ignore_errors=True)


def _quiet_data(ray: Any) -> None:
    """No Ray Data progress bars or per-operator lines on the terminal (they stay in its log file)."""
    import logging

    with contextlib.suppress(ImportError, AttributeError):
        from ray.data import DataContext

        for handler in logging.getLogger("ray.data").handlers:
            if not isinstance(handler, logging.FileHandler) and "File" not in type(handler).__name__:
                handler.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            # Ray's own defaults trip its deprecation of use_push_based_shuffle (Ray 2.60): not ours to fix
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
