"""The feature store: pooled per-layer arrays in shards plus a JSON manifest.

Layout of a store folder::

    manifest.json                 configuration, config hash, shards, sample ids, skipped samples
    shards/shard-00000.safetensors

A shard holds the rows of ``shard_size`` consecutive dataset samples (minus the
skipped ones). Input-fusion shards hold ``x_image``, ``x_text`` (N, d) and
``y.{l}`` (N, d) for every layer l; span shards hold ``x_image.{l}``,
``x_text.{l}`` (N, d) and ``y`` (N,) int. Both hold ``label`` (the ground-truth
answer's index in the answer set, -1 if absent) and ``prediction`` (the model's
answer index).

Tokens shards (the per-sample protocol's unpooled token sets) are ragged: ``x_image.tokens``
and ``x_text.tokens`` hold every example's token rows one after the other, (sum T_i, d), with
the per-example row counts in ``x_image.count`` and ``x_text.count`` (N,); ``y.{l}.tokens``
holds the hidden states of every prompt position at layer l, with ``y.count`` (N,) (each
example's last row is its answer position). A ragged array ``NAME.tokens`` must have as many
rows as its ``NAME.count`` sums to (``y.count`` for every ``y.{l}.tokens``). A shard is finished once the manifest lists it; shard files and
the manifest are written atomically (temporary file + rename), so an interrupted
run resumes from the last finished shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmpid.atomic import write_json_atomic
from mmpid.errors import InputError, StoreError

__all__ = ["FORMAT_VERSION", "FeatureStore", "config_hash", "write_shard_file"]

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SHARDS = "shards"


def _count_key(key: str) -> str:
    """The counts array of a ragged array: ``x_image.tokens`` -> ``x_image.count``,
    ``y.3.tokens`` -> ``y.count``."""
    return key.split(".", 1)[0] + ".count"


def _pool_ragged(tokens: np.ndarray, counts: np.ndarray, how: str) -> np.ndarray:
    """Pool each example's rows of a ragged array: (sum T_i, d) -> (N, d), float32."""
    ends = np.cumsum(counts)
    starts = ends - counts
    if how == "last":
        return tokens[ends - 1]
    if how == "max":
        return np.maximum.reduceat(tokens, starts, axis=0)
    sums = np.add.reduceat(tokens.astype(np.float64), starts, axis=0)
    return (sums / counts[:, None]).astype(np.float32)


def config_hash(config: dict[str, Any]) -> str:
    """A short, stable hash of a JSON-serialisable configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def write_shard_file(
    store_dir: str | os.PathLike[str],
    index: int,
    arrays: dict[str, np.ndarray],
    *,
    sample_ids: Sequence[str],
    skipped: Sequence[dict[str, str]] = (),
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write shard ``index`` of the store at ``store_dir`` atomically; return its manifest entry.

    The file is not listed in the manifest until :meth:`FeatureStore.record_shard` records the
    entry, so a shard written by a process that dies before that is computed again on resume.
    """
    from safetensors.numpy import save_file

    n = len(sample_ids)
    for k, v in arrays.items():
        if k.endswith(".tokens"):
            count = _count_key(k)
            if count not in arrays or int(arrays[count].sum()) != v.shape[0]:
                total = int(arrays[count].sum()) if count in arrays else None
                raise StoreError(
                    f"Shard {index}: ragged array {k!r} has {v.shape[0]} rows but {count!r} "
                    f"sums to {total}."
                )
        elif v.shape[0] != n:
            raise StoreError(f"Shard {index}: array {k!r} has {v.shape[0]} rows for {n} samples.")
    name = f"shard-{index:05d}.safetensors"
    if n:
        folder = Path(store_dir) / SHARDS
        tmp = folder / (name + f".{os.getpid()}.tmp")
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(tmp))
        os.replace(tmp, folder / name)
    return {
        "index": int(index),
        "file": name,
        "n": n,
        "sample_ids": list(sample_ids),
        "skipped": list(skipped),
        **(extra or {}),
    }


def _refuse_foreign(path: Path) -> None:
    """StoreError when ``path`` holds anything but a (possibly empty) ``shards`` folder."""
    if path.exists() and any(p.name != SHARDS or not p.is_dir() for p in path.iterdir()):
        raise StoreError(
            f"The folder {str(path)!r} is not empty and holds no feature store; give an empty or new folder."
        )


class FeatureStore:
    """A folder of pooled features written by :func:`mmpid.extract.extract`.

    Open an existing store with :meth:`FeatureStore.open`; read a layer with
    :meth:`load`.
    """

    def __init__(self, path: Path, manifest: dict[str, Any]) -> None:
        self.path = Path(path)
        self._manifest = manifest

    # ------------------------------------------------------------ open/create
    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> FeatureStore:
        """Open a store folder; StoreError if it is missing, unfinished or corrupt."""
        store = cls._read(Path(path))
        if not store._manifest.get("complete"):
            raise StoreError(
                f"The feature store {str(path)!r} is unfinished ({store.n_samples} samples written so far). "
                "Run the same extraction again to resume it."
            )
        return store

    @classmethod
    def _read(cls, path: Path) -> FeatureStore:
        mpath = path / MANIFEST
        if not mpath.is_file():
            raise StoreError(
                f"No feature store at {str(path)!r}: {MANIFEST} is missing. Create one with 'mmpid extract'."
            )
        try:
            manifest = json.loads(mpath.read_text())
        except json.JSONDecodeError as exc:
            raise StoreError(f"The manifest {str(mpath)!r} is not valid JSON ({exc}).") from exc
        if manifest.get("format_version") != FORMAT_VERSION:
            raise StoreError(
                f"The store {str(path)!r} has format version {manifest.get('format_version')!r}; "
                f"this mmpid reads version {FORMAT_VERSION}. Extract it again."
            )
        return cls(path, manifest)

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        config: dict[str, Any],
        *,
        info: dict[str, Any] | None = None,
        pins: dict[str, Any] | None = None,
        overwrite: bool = False,
        keep_unlisted: bool = False,
    ) -> FeatureStore:
        """Start a store for ``config``, or resume the one already there with the same config.

        ``pins`` (recorded in the manifest) are the versions that decide the numbers but not
        the configuration: mmpid's, torch's, transformers' and the model weights'. An unfinished
        store with finished shards is resumed only under the same pins, so that no store mixes
        shards computed by different code or weights. A finished store is returned as it is
        (nothing is added to it).

        Raises
        ------
        StoreError
            When ``path`` holds a store made with another configuration (pass
            ``overwrite=True`` to replace it), an unfinished store started under other pins,
            or something that is not a store.

        A folder that holds only a ``shards`` folder (the shard files of a run stopped before its
        manifest was written) is a new store's: those files are deleted, or kept with
        ``keep_unlisted=True`` (the Ray engine's workers write shards before the driver writes
        the manifest; see :meth:`make_room`).
        """
        path = Path(path)
        digest = config_hash(config)
        pins = dict(pins or {})
        if (path / MANIFEST).exists():
            old = cls._read(path)
            if old._manifest.get("config_hash") == digest and not overwrite:
                old._check_pins(pins)
                return old
            if not overwrite:
                diff = sorted(
                    k for k in set(config) | set(old._manifest.get("config", {}))
                    if config.get(k) != old._manifest.get("config", {}).get(k)
                )
                raise StoreError(
                    f"The folder {str(path)!r} holds a feature store made with another configuration "
                    f"(differs in {diff}). Use another output folder, or overwrite=True (--overwrite) to replace it."
                )
            (path / MANIFEST).unlink()
            shutil.rmtree(path / SHARDS, ignore_errors=True)
        else:
            _refuse_foreign(path)
            if not keep_unlisted:
                shutil.rmtree(path / SHARDS, ignore_errors=True)
        (path / SHARDS).mkdir(parents=True, exist_ok=True)
        manifest = {
            "format_version": FORMAT_VERSION,
            "config_hash": digest,
            "config": config,
            **(info or {}),
            "pins": pins,
            "shards": [],
            "complete": False,
        }
        store = cls(path, manifest)
        store._save()
        return store

    @staticmethod
    def make_room(path: str | os.PathLike[str], *, overwrite: bool = False) -> None:
        """Ready ``path`` for a new store whose shards are written before its manifest.

        The Ray engine starts its workers before it knows the model's description that the
        manifest records (a worker loads the model and tells it): the workers write shards
        into the folder this prepares, and the driver then writes the manifest with
        :meth:`create` (``keep_unlisted=True``). A store already there is removed with
        ``overwrite``, else refused (resume it with :meth:`create`); anything else that is not
        a store is refused, as :meth:`create` refuses it; unlisted shard files are deleted.
        """
        path = Path(path)
        if (path / MANIFEST).exists():
            if not overwrite:
                raise StoreError(f"The folder {str(path)!r} holds a feature store; resume it, or overwrite it.")
            (path / MANIFEST).unlink()
        else:
            _refuse_foreign(path)
        shutil.rmtree(path / SHARDS, ignore_errors=True)
        (path / SHARDS).mkdir(parents=True, exist_ok=True)

    def _check_pins(self, pins: dict[str, Any]) -> None:
        """Refuse to add shards to an unfinished store started under other pins."""
        if self._manifest.get("complete") or not self._manifest["shards"] or not pins:
            return
        old = self._manifest.get("pins", {})
        changed = {k: (old.get(k), pins.get(k)) for k in sorted(set(old) | set(pins)) if old.get(k) != pins.get(k)}
        if changed:
            what = "; ".join(f"{k}: {a!r} then, {b!r} now" for k, (a, b) in changed.items())
            raise StoreError(
                f"The unfinished feature store {str(self.path)!r} was started under other versions ({what}); "
                f"resuming it would mix its {len(self._manifest['shards'])} finished shard(s) with shards "
                "computed differently. Resume it with the versions it was started with, or extract into a new "
                "folder (or overwrite=True to start it again)."
            )

    def _save(self) -> None:
        write_json_atomic(self.path / MANIFEST, self._manifest)

    # ------------------------------------------------------------ writing
    def finished_shards(self) -> set[int]:
        """Indices of the shards already written (listed in the manifest, file present)."""
        done = set()
        for s in self._manifest["shards"]:
            if s["n"] == 0 or (self.path / SHARDS / s["file"]).is_file():
                done.add(int(s["index"]))
        return done

    def write_shard(
        self,
        index: int,
        arrays: dict[str, np.ndarray],
        *,
        sample_ids: Sequence[str],
        skipped: Sequence[dict[str, str]] = (),
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Write one shard's arrays (rows = ``sample_ids``) and record it (with ``extra``) in the manifest."""
        self.record_shard(write_shard_file(self.path, index, arrays, sample_ids=sample_ids, skipped=skipped, extra=extra))

    def record_shard(self, entry: dict[str, Any]) -> None:
        """List a shard whose file :func:`write_shard_file` wrote (``entry`` is what it returned).

        Only one process may record shards (the one that created or resumed the store): on Ray
        the actors write shard files and the driver records them, so the manifest has one writer.
        """
        index = int(entry["index"])
        shards = [s for s in self._manifest["shards"] if s["index"] != index] + [dict(entry)]
        self._manifest["shards"] = sorted(shards, key=lambda s: s["index"])
        self._save()

    def finalize(self, **info: Any) -> None:
        """Mark the store complete and record the summary fields."""
        shards = self._manifest["shards"]
        self._manifest["sample_ids"] = [i for s in shards for i in s["sample_ids"]]
        self._manifest["skipped"] = [k for s in shards for k in s["skipped"]]
        self._manifest["n"] = len(self._manifest["sample_ids"])
        self._manifest.update(info)
        self._manifest["complete"] = True
        self._save()

    # ------------------------------------------------------------ reading
    @property
    def manifest(self) -> dict[str, Any]:
        """The manifest (a copy)."""
        return json.loads(json.dumps(self._manifest))

    @property
    def protocol(self) -> str:
        return str(self._manifest["config"]["protocol"])

    @property
    def n_layers(self) -> int:
        return int(self._manifest["n_layers"])

    @property
    def layers(self) -> list[int]:
        """Layer indices 0..L (0 = input embeddings)."""
        return list(range(self.n_layers))

    @property
    def n_samples(self) -> int:
        return sum(int(s["n"]) for s in self._manifest["shards"])

    @property
    def sample_ids(self) -> list[str]:
        return [i for s in self._manifest["shards"] for i in s["sample_ids"]]

    @property
    def skipped(self) -> list[dict[str, str]]:
        return [k for s in self._manifest["shards"] for k in s["skipped"]]

    def _column(self, key: str) -> np.ndarray:
        """One array over every shard, reading only that tensor of each shard (not the shard)."""
        from safetensors import safe_open

        parts = []
        for s in self._manifest["shards"]:
            if s["n"] == 0:
                continue
            f = self.path / SHARDS / s["file"]
            if not f.is_file():
                raise StoreError(f"The shard {str(f)!r} listed in the manifest is missing; extract again.")
            with safe_open(str(f), framework="numpy") as shard:
                if key not in shard.keys():
                    raise StoreError(f"The shard {str(f)!r} has no array {key!r}; the store is corrupt.")
                parts.append(shard.get_tensor(key))
        if not parts:
            raise StoreError(f"The feature store {str(self.path)!r} holds no samples (all skipped?).")
        return np.concatenate(parts, axis=0)

    def load(self, layer: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The three variables of one layer's PID.

        Parameters
        ----------
        layer : int
            0..L (``store.layers``); negative values count from the end.

        Returns
        -------
        x_image : ndarray, shape (N, d), float32
        x_text : ndarray, shape (N, d), float32
        y : ndarray, shape (N, d) float32 (input-fusion, tokens) or (N,) int64 (span)

        A tokens store gives the input-fusion variables pooled from its token sets (with the
        store's pooling): the image tokens and the question's embeddings pooled, and Y(l) the
        hidden state at the answer position (each example's last prompt position).
        """
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise InputError(f"The 'layer' parameter must be an int in [0, {self.n_layers - 1}]. Got {layer!r}.")
        L = self.n_layers
        if not -L <= layer < L:
            raise InputError(f"The 'layer' parameter must be in [0, {L - 1}] (or negative from the end). Got {layer}.")
        layer = int(layer) % L
        if self.protocol == "tokens":
            pooling = str(self._manifest["config"].get("pooling", "mean"))
            x_image = _pool_ragged(*self._ragged("x_image.tokens", "x_image.count"), pooling)
            x_text = _pool_ragged(*self._ragged("x_text.tokens", "x_text.count"), pooling)
            tokens, counts = self._ragged(f"y.{layer}.tokens", "y.count")
            return x_image, x_text, tokens[np.cumsum(counts) - 1]
        if self.protocol == "span":
            return self._column(f"x_image.{layer}"), self._column(f"x_text.{layer}"), self._column("y").astype(np.int64)
        return self._column("x_image"), self._column("x_text"), self._column(f"y.{layer}")

    def _ragged(self, key: str, count_key: str) -> tuple[np.ndarray, np.ndarray]:
        tokens, counts = self._column(key), self._column(count_key).astype(np.int64)
        if int(counts.sum()) != tokens.shape[0] or (counts < 1).any():
            raise StoreError(
                f"The store {str(self.path)!r}: {key!r} has {tokens.shape[0]} rows but {count_key!r} "
                f"sums to {int(counts.sum())}; the store is corrupt."
            )
        return tokens, counts

    def load_tokens(self, layer: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
        """The token sets of one layer of a ``tokens`` store (the per-sample protocol's input).

        Parameters
        ----------
        layer : int
            0..L (``store.layers``); negative values count from the end.

        Returns
        -------
        x_image : list of N float32 arrays, shape (T_image_i, d): the image tokens as they enter
            the language model.
        x_text : list of N float32 arrays, shape (T_text_i, d): the question's input embeddings.
        y : list of N float32 arrays, shape (T_i, d): the hidden states of every prompt position
            at ``layer`` (the answer position last).

        The arrays are views into one block per variable, in the order of ``sample_ids``.
        """
        if self.protocol != "tokens":
            raise StoreError(
                f"The store {str(self.path)!r} holds pooled features (protocol {self.protocol!r}), not "
                "token sets; extract with protocol='tokens' (--protocol tokens) for the per-sample protocol."
            )
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise InputError(f"The 'layer' parameter must be an int in [0, {self.n_layers - 1}]. Got {layer!r}.")
        L = self.n_layers
        if not -L <= layer < L:
            raise InputError(f"The 'layer' parameter must be in [0, {L - 1}] (or negative from the end). Got {layer}.")
        layer = int(layer) % L
        out = []
        for key, count in (("x_image.tokens", "x_image.count"), ("x_text.tokens", "x_text.count"),
                           (f"y.{layer}.tokens", "y.count")):
            tokens, counts = self._ragged(key, count)
            out.append(np.split(tokens, np.cumsum(counts)[:-1]))
        return out[0], out[1], out[2]

    def token_counts(self, name: str) -> np.ndarray:
        """Tokens per example of one token set of a ``tokens`` store, shape (N,) int64.

        ``name`` is ``"x_image"``, ``"x_text"`` or ``"y"`` (every layer's Y has the same count).
        """
        if name not in ("x_image", "x_text", "y"):
            raise InputError(f"'name' must be one of ['x_image', 'x_text', 'y']; got {name!r}.")
        if self.protocol != "tokens":
            raise StoreError(
                f"The store {str(self.path)!r} holds pooled features (protocol {self.protocol!r}), not token sets."
            )
        return self._column(f"{name}.count").astype(np.int64)

    def bytes_per_sample(self) -> float:
        """The shards' size on disk divided by the samples stored, in bytes."""
        total = sum(
            (self.path / SHARDS / s["file"]).stat().st_size
            for s in self._manifest["shards"]
            if s["n"] and (self.path / SHARDS / s["file"]).is_file()
        )
        return total / max(1, self.n_samples)

    def labels(self) -> np.ndarray:
        """Ground-truth answer indices, shape (N,), -1 where the answer is not in the answer set."""
        return self._column("label").astype(np.int64)

    def predictions(self) -> np.ndarray:
        """The model's answer indices (argmax of the answer scores), shape (N,)."""
        return self._column("prediction").astype(np.int64)

    def __repr__(self) -> str:
        return (
            f"FeatureStore({str(self.path)!r}, protocol={self.protocol!r}, n={self.n_samples}, layers={self.n_layers})"
        )
