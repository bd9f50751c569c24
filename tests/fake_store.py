"""A small finished feature store written without a model (for pipeline and CLI tests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmpid.store import FeatureStore


def write_fake_store(path: Path, *, n: int = 40, layers: int = 3, seed: int = 0) -> Path:
    """An input-fusion store of ``n`` random samples, ``layers`` layers, d = 4, one shard."""
    rng = np.random.default_rng(seed)
    store = FeatureStore.create(path, {"protocol": "input-fusion", "seed": seed}, info={"n_layers": layers})
    arrays = {"x_image": rng.normal(size=(n, 4)), "x_text": rng.normal(size=(n, 4))}
    arrays.update({f"y.{k}": rng.normal(size=(n, 4)) for k in range(layers)})
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    arrays.update(label=np.zeros(n, np.int64), prediction=np.zeros(n, np.int64))
    store.write_shard(0, arrays, sample_ids=[str(i) for i in range(n)])
    store.finalize()
    return path
