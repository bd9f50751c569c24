"""Extraction and estimation on a Ray cluster (``engine="ray"``); Ray loads on use.

Extraction
----------
The driver loads the dataset (for its length, fingerprint and answer set, as the local
engine does), creates or resumes the store, and lists the shards left as a Ray Dataset,
one row per shard: its index and its example range ``start:stop``. (Rows are example ranges
rather than examples so that every shard is computed in the local engine's batches, which
decide the padding and so the last bits of the numbers, and so that the examples' images
are read where they are used instead of travelling through the object store.) ``map_batches`` runs
them on a pool of actors (:class:`ray.data.ActorPoolStrategy`), each of which loads the
model and the dataset once, in ``__init__``, through the same adapter path as the local
engine, computes a shard with :func:`mmpid.extract.compute_shard` (the same batches of
``batch_size`` consecutive examples, so the same numbers), writes the shard file and
returns its manifest entry (kept ids, skipped samples with their reasons). The driver is
the only writer of the manifest: it records each entry as it arrives. A run killed at
any point (driver or worker) resumes from the shards the manifest lists, and the store is
byte-identical to the local engine's. Every node needs the package, the model (folder or
hub cache), the dataset, and the store folder (a shared file system). Workers run in the
driver's working folder where it exists, so relative paths mean the same on this node; on
other nodes give absolute paths.

The driver never loads the model itself. The model's description that the manifest records
comes from the workers: for a new store (or ``overwrite``) each actor describes the model it
loaded and sends the description with every shard; the driver writes the manifest when the
first shard arrives (the actors write their shards into the folder
:meth:`~mmpid.store.FeatureStore.make_room` prepared). A run stopped before that leaves only
unlisted shard files, which the next run deletes. To resume a store, whose manifest must be
checked before any shard is written, one small Ray task loads the model and describes it first.

Estimation
----------
Each layer is one Ray task (:func:`_estimate_layer_task`), holding ``cpus_per_worker``
CPUs, with torch, BLAS/OpenMP and numba threads pinned to that share, so that tasks do not
oversubscribe the cores. A layer whose stack of tables (the data's, the bootstrap's, the
permutation null's) holds at least two chunks of ``tables_per_task`` tables has its solves
cut into chunks, each a Ray task of its own (:func:`_solve_chunk_task`); while the layer's
task waits for them, Ray lends its CPU to them. Each table is solved on its own, so the
chunks put back together give the atoms of one solve. The driver writes each layer's cache
file and the results, as the local engine does. A layer's estimate does not depend on where
it ran: Ray gives the same numbers as the local engine, to the last bit.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmpid.engine import EngineError, EngineOptions, ray_session
from mmpid.errors import DatasetError, MmpidError
from mmpid.extract_options import ExtractOptions

__all__ = ["estimate_layers_on_ray", "extract_on_ray"]


def _enter(cwd: str) -> None:
    """Work in the driver's folder, so that relative paths (model, dataset, store) mean the same."""
    if os.path.isdir(cwd):
        os.chdir(cwd)


@contextlib.contextmanager
def pinned_threads(n: int) -> Iterator[None]:
    """Limit torch, BLAS/OpenMP (threadpoolctl) and numba to ``n`` threads inside the block."""
    from threadpoolctl import threadpool_limits

    n = max(1, int(n))
    restore: list[Any] = []
    try:
        import numba

        numba.get_num_threads()  # start numba's threading layer now: its start resets OpenMP's pool
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    try:
        import torch

        restore.append((torch.set_num_threads, torch.get_num_threads()))
        torch.set_num_threads(n)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import numba

        restore.append((numba.set_num_threads, numba.get_num_threads()))
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:  # pragma: no cover - numba is a dependency
        pass
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        # numba's OpenMP layer can share torch's pool: restore numba first, torch last
        for setter, value in reversed(restore):
            setter(value)


@contextlib.contextmanager
def _worker_errors(what: str) -> Iterator[None]:
    """Turn a worker's failure into mmpid's error: the worker's own MmpidError when Ray carries
    it, else EngineError with the last line of Ray's report (not a page of remote traceback)."""
    try:
        yield
    except Exception as exc:
        if not type(exc).__module__.startswith("ray"):
            raise
        cause = getattr(exc, "cause", None)
        if isinstance(cause, MmpidError):
            raise cause from exc
        lines = [line.strip() for line in str(exc).splitlines() if ": " in line]
        reason = lines[-1] if lines else type(exc).__name__
        raise EngineError(
            f"{what} failed on a Ray worker: {reason} (its log is in the cluster's session folder, "
            "logs/worker-*.err). Finished work is kept; run the same command again to resume."
        ) from exc


# ---------------------------------------------------------------- extraction


def _dataset_kwargs(options: ExtractOptions) -> dict[str, Any]:
    return {
        "name_or_path": options.dataset,
        "split": options.split,
        "limit": options.limit,
        "seed": options.data_seed,
        "columns": None if options.columns is None else dict(options.columns),
    }


def _load_dataset(kwargs: dict[str, Any]) -> Any:
    from mmpid.data import load_dataset

    kwargs = dict(kwargs)
    return load_dataset(kwargs.pop("name_or_path"), **kwargs)


def _describe_model(model: str, device: str, dtype: str | None, threads: int, cwd: str) -> dict[str, Any]:
    """The adapter's description, from a model loaded on a worker (a Ray task)."""
    from mmpid.models.registry import load_adapter

    _enter(cwd)
    with pinned_threads(threads):
        return load_adapter(model, device=device, dtype=dtype).describe()


class _ShardWorker:
    """One Ray actor: loads the model and the dataset once, then computes and writes shards.

    Built from plain values (the model path or id, the device, the dtype), not a loaded
    model or processor, which may not unpickle on another node.
    """

    def __init__(
        self,
        *,
        model: str,
        device: str,
        dtype: str | None,
        dataset: dict[str, Any],
        fingerprint: str | None,
        store_dir: str,
        extract: dict[str, Any],
        threads: int,
        cwd: str,
    ) -> None:
        import torch

        from mmpid.models.registry import load_adapter

        _enter(cwd)
        # Ray sets OMP_NUM_THREADS to the actor's CPUs; torch's pool is set explicitly.
        self.threads = max(1, int(threads))
        torch.set_num_threads(self.threads)
        self.data = _load_dataset(dataset)
        got = self.data.describe().get("fingerprint")
        if got != fingerprint:
            raise DatasetError(
                f"The dataset on this worker differs from the driver's (fingerprint {got!r}, driver "
                f"{fingerprint!r}); every node needs the same dataset files."
            )
        self.adapter = load_adapter(model, device=device, dtype=dtype)
        self.description = json.dumps(self.adapter.describe())
        self.store_dir = store_dir
        self.extract = extract

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from mmpid.extract import compute_shard
        from mmpid.store import write_shard_file

        entries = []
        with pinned_threads(self.threads):
            for index, start, stop in zip(batch["index"], batch["start"], batch["stop"]):
                arrays, ids, skipped, extra = compute_shard(
                    self.adapter, self.data, int(start), int(stop), **self.extract
                )
                entry = write_shard_file(
                    self.store_dir, int(index), arrays, sample_ids=ids, skipped=skipped, extra=extra
                )
                entries.append(json.dumps(entry))
        return {
            "entry": np.asarray(entries, dtype=object),
            "rows": np.asarray(batch["stop"]) - batch["start"],
            "model": np.asarray([self.description] * len(entries), dtype=object),
        }


def _pool_size(ray: Any, engine: EngineOptions, n_shards: int) -> int:
    """Actors to start: ``workers``, else what the cluster's GPUs or CPUs allow (one CPU kept free)."""
    if engine.workers is not None:
        size = engine.workers
    else:
        total = ray.cluster_resources()
        if engine.gpus_per_worker > 0:
            size = int(total.get("GPU", 0) // engine.gpus_per_worker)
        else:
            size = int((total.get("CPU", 1) - 1) // engine.cpus_per_worker)
    return max(1, min(size, n_shards))


def extract_on_ray(
    model: str,
    store_dir: Path,
    options: ExtractOptions,
    engine: EngineOptions,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Any:
    """:func:`mmpid.extract.extract` on a pool of Ray actors (options validated by the caller).

    ``model`` is a hub id or a folder every node can read (``zoo:NAME`` resolved already).
    Returns the :class:`mmpid.store.FeatureStore`, byte-identical to the local engine's.
    """
    from tqdm.auto import tqdm

    from mmpid.extract import finish_store, open_store, shard_ranges
    from mmpid.store import MANIFEST, FeatureStore

    data = _load_dataset(_dataset_kwargs(options))
    if len(data) == 0:
        raise DatasetError("The dataset holds no samples; nothing to extract.")
    threads = max(1, math.floor(engine.cpus_per_worker))
    layout = {
        "protocol": options.protocol, "pooling": options.pooling, "target": options.target,
        "batch_size": options.batch_size, "shard_size": options.shard_rows(),
    }

    def create(info: dict[str, Any], *, keep_unlisted: bool = False) -> tuple[Any, list[tuple[int, int, int]]]:
        return open_store(info, data, store_dir, **layout, overwrite=False, keep_unlisted=keep_unlisted)

    with ray_session(engine) as ray:
        resources = {"num_cpus": engine.cpus_per_worker}
        if engine.gpus_per_worker > 0:
            resources["num_gpus"] = engine.gpus_per_worker
        store: Any = None
        if overwrite or not (Path(store_dir) / MANIFEST).exists():
            # a new store: its manifest is written when the first shard (and the model's description) arrives
            FeatureStore.make_room(store_dir, overwrite=overwrite)
            todo = shard_ranges(len(data), layout["shard_size"])
        else:  # a store to resume: its manifest is checked before any shard is written
            describe = ray.remote(_describe_model).options(**resources, max_retries=2)
            with _worker_errors("Loading the model"):
                info = ray.get(describe.remote(model, options.device, options.dtype, threads, os.getcwd()))
            store, todo = create(info)
        n = len(data)
        bar = tqdm(
            total=n, initial=n - sum(b - a for _, a, b in todo), desc="extract (ray)", unit="sample",
            disable=not progress,
        )
        try:
            if todo:
                store = _run_pool(
                    ray, str(store_dir), store, lambda info: create(info, keep_unlisted=True)[0], todo, model, options,
                    engine, data, resources, threads, bar,
                )
        finally:
            bar.close()
    finish_store(store)
    return store


def _run_pool(
    ray: Any, store_dir: str, store: Any, create: Any, todo: list[tuple[int, int, int]], model: str, options: ExtractOptions,
    engine: EngineOptions, data: Any, resources: dict[str, float], threads: int, bar: Any,
) -> Any:
    """Map the shards left over the actor pool; record each finished shard in the manifest.

    ``store`` is None for a new store: ``create(description)`` makes it when the first shard
    arrives. Returns the store.
    """
    from ray.data import ActorPoolStrategy

    rows = [{"index": k, "start": a, "stop": b} for k, a, b in todo]
    shards = ray.data.from_items(rows, override_num_blocks=len(rows))
    done = shards.map_batches(
        _ShardWorker,
        fn_constructor_kwargs={
            "model": model,
            "device": options.device,
            "dtype": options.dtype,
            "dataset": _dataset_kwargs(options),
            "fingerprint": data.describe().get("fingerprint"),
            "store_dir": store_dir,
            "extract": {
                "protocol": options.protocol,
                "pooling": options.pooling,
                "target": options.target,
                "batch_size": options.batch_size,
            },
            "threads": threads,
            "cwd": os.getcwd(),
        },
        batch_size=1,
        batch_format="numpy",
        compute=ActorPoolStrategy(size=_pool_size(ray, engine, len(rows))),
        **resources,  # Ray Data restarts a killed actor and retries its shard
    )
    with _worker_errors("Extraction"):
        for row in done.iter_rows():
            if store is None:
                store = create(json.loads(row["model"]))
            store.record_shard(json.loads(row["entry"]))
            bar.update(int(row["rows"]))
    return store


# ---------------------------------------------------------------- estimation


def chunk_bounds(n_tables: int, per_task: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of the chunks a stack of ``n_tables`` is cut into: ``per_task`` tables
    each, the remainder joined to the last chunk; one chunk when fewer than two would be full
    (or ``per_task`` is 0)."""
    if per_task <= 0 or n_tables < 2 * per_task:
        return [(0, n_tables)]
    starts = list(range(0, n_tables - per_task + 1, per_task))
    return [(a, b) for a, b in zip(starts, [*starts[1:], n_tables])]


def _solve_chunk_task(tables: Any, method: str, backend: str, threads: int) -> Any:
    """The atoms of one chunk of tables (a Ray task), threads pinned to its CPU share."""
    from mmpid.estimate.solve import solve_tables

    with pinned_threads(threads):
        return solve_tables(tables, method=method, backend=backend)


def _chunked_solver(ray: Any, per_task: int, cpus: float, threads: int) -> Any:
    """A splitter for :func:`mmpid.estimate.solve.splitting_solves`: one Ray task per chunk."""
    from mmpid.estimate.solve import AtomColumns, solve_tables

    task = ray.remote(_solve_chunk_task).options(num_cpus=cpus, max_retries=3)

    def solve(tables: Any, method: str, backend: str) -> Any:
        bounds = chunk_bounds(len(tables), per_task)
        if len(bounds) == 1:
            return solve_tables(tables, method=method, backend=backend)
        refs = [task.remote(tables[a:b], method, backend, threads) for a, b in bounds]
        with _worker_errors("Solving a chunk of tables"):
            return AtomColumns.concatenate(ray.get(refs))

    return solve


def _estimate_layer_task(
    store_dir: str, layer: int, options: Any, threads: int, cwd: str, per_task: int = 0, cpus: float = 1.0
) -> Any:
    """One layer's estimate, on a worker, with its threads pinned to its CPU share; its table
    solves cut into Ray tasks of ``per_task`` tables (0: solved here)."""
    import ray

    from mmpid.estimate.solve import splitting_solves
    from mmpid.pipeline import _estimate_layer
    from mmpid.store import FeatureStore

    _enter(cwd)
    split = splitting_solves(_chunked_solver(ray, per_task, cpus, threads)) if per_task else contextlib.nullcontext()
    with pinned_threads(threads), split:
        return _estimate_layer(FeatureStore.open(store_dir), layer, options)


def estimate_layers_on_ray(
    store_dir: str, layers: list[int], options: Any, engine: EngineOptions
) -> Iterator[tuple[int, Any]]:
    """Yield ``(layer, estimate)`` as each layer's Ray task finishes (options validated by the caller)."""
    threads = max(1, math.floor(engine.cpus_per_worker))
    with ray_session(engine) as ray:
        task = ray.remote(_estimate_layer_task).options(num_cpus=engine.cpus_per_worker, max_retries=3)
        limit = engine.workers or len(layers)  # at most this many layers at once
        pending: dict[Any, int] = {}
        queue = list(layers)
        while queue or pending:
            while queue and len(pending) < limit:
                layer = queue.pop(0)
                pending[task.remote(
                    store_dir, layer, options, threads, os.getcwd(), engine.tables_per_task, engine.cpus_per_worker
                )] = layer
            ready, _ = ray.wait(list(pending), num_returns=1)
            for ref in ready:
                layer = pending.pop(ref)
                with _worker_errors(f"Estimating layer {layer}"):
                    est = ray.get(ref)
                yield layer, est
