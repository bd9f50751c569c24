"""The extraction loop: dataset -> adapter -> pooled per-layer features in a store.

Protocols
---------
``input-fusion`` (default)
    X_image = the image features as they enter the language model (after the
    vision encoder and connector), pooled over every image token of the example
    (all tiles, all images); X_text = the input embeddings of the question's
    tokens, pooled; Y(l) = the hidden state at the answer position (the last
    prompt token) at layer l = 0..L.
``span``
    X_image(l), X_text(l) = the pooled image-token and question-token hidden
    states at layer l; Y = the model's predicted answer (``target="prediction"``)
    or the ground truth (``target="label"``), as an index into the dataset's
    answer set.
``tokens``
    The token sets of the per-sample protocol (the published method, arXiv 2511.19470),
    unpooled: X_image = the image tokens as they enter the language model, X_text = the
    question's input embeddings, Y(l) = the hidden states of every prompt position at layer l
    (the answer position last), exactly as ``output_hidden_states`` gives them. Stored ragged
    (see :mod:`mmpid.store`); :meth:`~mmpid.store.FeatureStore.load_tokens` gives the sets and
    :meth:`~mmpid.store.FeatureStore.load` the input-fusion variables pooled from them, so one
    store feeds both the per-sample and the pooled estimate on the same examples.

Answer scoring
--------------
The model's prediction is the answer of the dataset's answer set with the
highest log-probability after the prompt. When every answer is one token (and
the tokens are distinct) that is read from the next-token logits of the same
forward pass (``scoring="first-token"``, free). Otherwise each candidate is
appended to the prompt and its tokens' log-probabilities are summed, one batched
pass per candidate (``scoring="sequence"``, |answers| extra passes per batch);
this is only done when the protocol needs the prediction as its target, and for at
most ``MAX_SEQUENCE_CANDIDATES`` answers. With multi-token answers the
input-fusion store records ``prediction = -1`` (not computed).

Skipped samples
---------------
An image that does not decode, a missing image, an empty question, or a prompt
longer than the model's context: the sample is skipped and recorded, with its
reason, in the manifest (``skipped``); nothing is dropped silently. A mismatch
between the image tokens found in the ids and the tokens the processor says it
inserted is an error (ModelFamilyError): it would make every number wrong. Where
that cross-check cannot run (the processor cannot count its image tokens), the
manifest says so under ``image_token_check`` and a CheckSkippedWarning is raised.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmpid.errors import CheckSkippedWarning, DatasetError, InputError, ModelFamilyError
from mmpid.extract_options import PROTOCOLS, TARGETS, ExtractOptions
from mmpid.store import FeatureStore
from mmpid.versions import PINNED, folder_fingerprint, installed_versions

if TYPE_CHECKING:  # pragma: no cover
    from mmpid.data import Sample, VQADataset
    from mmpid.models.base import Adapter

__all__ = ["PROTOCOLS", "TARGETS", "extract"]

#: Most candidate answers scored one forward pass each (multi-token answers, span + prediction).
MAX_SEQUENCE_CANDIDATES = 64


def extract(
    adapter: Adapter,
    dataset: VQADataset,
    out_dir: str | os.PathLike[str],
    *,
    protocol: str = "input-fusion",
    pooling: str = "mean",
    target: str = "prediction",
    batch_size: int = 16,
    shard_size: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> FeatureStore:
    """Run ``adapter`` over ``dataset`` and write pooled features to a store (resumable).

    Parameters
    ----------
    adapter : Adapter
        From :func:`mmpid.models.load_adapter`.
    dataset : VQADataset
        From :func:`mmpid.data.load_dataset`.
    out_dir : path
        The store folder. If it holds an unfinished store of the same
        configuration, finished shards are kept and the rest is computed.
    protocol : {"input-fusion", "span", "tokens"}
    pooling : {"mean", "last", "max"}
        How token positions are pooled into one vector per example (for ``tokens``: how
        :meth:`~mmpid.store.FeatureStore.load` pools the stored sets).
    target : {"prediction", "label"}
        Y of the span protocol. Input-fusion stores both, so ``"label"`` with it is an error.
    batch_size : int
        Examples per forward pass.
    shard_size : int, optional
        Examples per shard (default: ``batch_size * max(1, 256 // batch_size)``);
        rounded up to a multiple of ``batch_size``.
    overwrite : bool
        Replace a store made with another configuration instead of raising StoreError.
    progress : bool
        Show a progress bar.

    Returns
    -------
    FeatureStore
        ``store.load(layer)`` gives ``(x_image, x_text, y)``: (N, d), (N, d) and
        (N, d) float32 for input-fusion and tokens or (N,) int64 for span;
        ``store.load_tokens(layer)`` the token sets of a tokens store.

    Examples
    --------
    >>> from mmpid.data import load_dataset
    >>> from mmpid.models import load_adapter
    >>> adapter = load_adapter("path/to/llava-folder", device="cpu")  # doctest: +SKIP
    >>> store = extract(adapter, load_dataset("easy-vqa", limit=300), "out/store")  # doctest: +SKIP
    >>> x_image, x_text, y = store.load(store.layers[-1])  # doctest: +SKIP
    >>> x_image.shape, y.shape  # doctest: +SKIP
    ((300, 4096), (300, 4096))
    """
    opts = ExtractOptions(
        protocol=protocol, pooling=pooling, target=target, batch_size=batch_size, shard_size=shard_size
    )
    if len(dataset) == 0:
        raise DatasetError("The dataset holds no samples; nothing to extract.")
    return _extract(
        adapter,
        dataset,
        Path(out_dir),
        protocol=opts.protocol,
        pooling=opts.pooling,
        target=opts.target,
        batch_size=opts.batch_size,
        shard_size=opts.shard_rows(),
        overwrite=overwrite,
        progress=progress,
    )


def _extract(
    adapter: Adapter,
    dataset: VQADataset,
    out: Path,
    *,
    protocol: str,
    pooling: str,
    target: str,
    batch_size: int,
    shard_size: int,
    overwrite: bool,
    progress: bool,
) -> FeatureStore:
    from tqdm.auto import tqdm

    store, todo = open_store(
        adapter.describe(), dataset, out, protocol=protocol, pooling=pooling, target=target,
        batch_size=batch_size, shard_size=shard_size, overwrite=overwrite,
    )
    n = len(dataset)
    bar = tqdm(
        total=n, initial=n - sum(stop - start for _, start, stop in todo), desc="extract", unit="sample",
        disable=not progress,
    )
    try:
        for k, start, stop in todo:
            arrays, ids, skipped, extra = compute_shard(
                adapter, dataset, start, stop, protocol=protocol, pooling=pooling, target=target,
                batch_size=batch_size, on_batch=bar.update,
            )
            store.write_shard(k, arrays, sample_ids=ids, skipped=skipped, extra=extra)
    finally:
        bar.close()
    finish_store(store)
    return store


def open_store(
    model: dict[str, Any],
    dataset: VQADataset,
    out: Path,
    *,
    protocol: str,
    pooling: str,
    target: str,
    batch_size: int,
    shard_size: int,
    overwrite: bool,
    keep_unlisted: bool = False,
) -> tuple[FeatureStore, list[tuple[int, int, int]]]:
    """Create (or resume) the store of this configuration; the shards left, as (index, start, stop).

    ``model`` is the adapter's ``describe()`` (which also gives ``n_layers`` and ``hidden_size``),
    so a driver that never loads the model (the Ray engine) writes the same manifest.
    ``keep_unlisted``: see :meth:`FeatureStore.create`.
    """
    ds_info = dataset.describe()
    n = len(dataset)
    config = {
        "model": model["id"],
        "model_revision": model["revision"],
        "model_class": model["class"],
        "dtype": model["dtype"],
        "device": model["device"].split(":")[0],
        "dataset": ds_info["name"],
        "split": ds_info["split"],
        "limit": ds_info.get("limit"),
        "seed": ds_info.get("seed"),
        "n_dataset": n,
        "dataset_fingerprint": ds_info.get("fingerprint"),
        "answers": list(dataset.answers),
        "protocol": protocol,
        "pooling": pooling,
        "target": target if protocol == "span" else None,
        "batch_size": batch_size,
        "shard_size": shard_size,
    }
    versions = installed_versions()
    info = {
        "model": model["id"],
        "model_revision": model["revision"],
        "model_info": model,
        "dataset": ds_info["name"],
        "dataset_info": ds_info,
        "split": ds_info["split"],
        "protocol": protocol,
        "pooling": pooling,
        "target": config["target"],
        "answers": list(dataset.answers),
        "n_layers": int(model["n_layers"]),
        "hidden_size": int(model["hidden_size"]),
        "layers": list(range(int(model["n_layers"]))),
        "versions": versions,
    }
    pins = {k: versions[k] for k in PINNED}
    pins["model"] = model["revision"] or folder_fingerprint(model["id"])
    store = FeatureStore.create(out, config, info=info, pins=pins, overwrite=overwrite, keep_unlisted=keep_unlisted)
    done = store.finished_shards()
    return store, [shard for shard in shard_ranges(n, shard_size) if shard[0] not in done]


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int, int]]:
    """Every shard of ``n`` examples: ``(index, start, stop)``, ``shard_size`` examples each."""
    return [(k, start, min(start + shard_size, n)) for k, start in enumerate(range(0, n, shard_size))]


def compute_shard(
    adapter: Adapter,
    dataset: VQADataset,
    start: int,
    stop: int,
    *,
    protocol: str,
    pooling: str,
    target: str,
    batch_size: int,
    on_batch: Any = None,
) -> tuple[dict[str, np.ndarray], list[str], list[dict[str, str]], dict[str, Any]]:
    """The arrays, kept ids, skipped samples and manifest extras of the samples ``start:stop``.

    The batches are ``batch_size`` consecutive samples from ``start``, whichever engine runs
    the shard, so that every engine computes the same numbers."""
    arrays: dict[str, list[np.ndarray]] = {}
    ids: list[str] = []
    skipped: list[dict[str, str]] = []
    scoring: set[str] = set()
    unchecked: set[str] = set()
    for b0 in range(start, stop, batch_size):
        batch = [dataset[i] for i in range(b0, min(b0 + batch_size, stop))]
        part, kept, skip, how = _process_batch(adapter, dataset, batch, protocol, pooling, target, unchecked)
        skipped += skip
        ids += kept
        if how:
            scoring.add(how)
        for key, v in part.items():
            arrays.setdefault(key, []).append(v)
        if on_batch is not None:
            on_batch(len(batch))
    merged = {key: np.concatenate(v, axis=0) for key, v in arrays.items()}
    return merged, ids, skipped, {"scoring": sorted(scoring), "image_token_check": _check_record(unchecked)}


def finish_store(store: FeatureStore) -> None:
    """Mark a store whose shards are all written complete; DatasetError if every sample was skipped."""
    if store.n_samples == 0:
        reasons = sorted({s["reason"] for s in store.skipped})[:3]
        raise DatasetError(f"Every sample was skipped (e.g. {reasons}); the store would be empty.")
    shards = store.manifest["shards"]
    reasons = sorted({r for s in shards for r in s.get("image_token_check", {}).get("skipped", [])})
    store.finalize(
        scoring=sorted({h for s in shards for h in s.get("scoring", [])}),
        image_token_check={"checked": not reasons, "skipped": reasons},
    )
    if reasons:
        warnings.warn(
            "The image-token cross-check (image tokens found in the ids against those the processor "
            f"says it inserted) could not run: {'; '.join(reasons)}. The store's manifest records this "
            "under 'image_token_check'; check the image spans by hand before trusting X_image.",
            CheckSkippedWarning,
            stacklevel=4,
        )


def _check_record(unchecked: set[str]) -> dict[str, Any]:
    return {"checked": not unchecked, "skipped": sorted(unchecked)}


def _process_batch(
    adapter: Adapter,
    dataset: VQADataset,
    batch: Sequence[Sample],
    protocol: str,
    pooling: str,
    target: str,
    unchecked: set[str],
) -> tuple[dict[str, np.ndarray], list[str], list[dict[str, str]], str | None]:
    """Pooled arrays for the usable samples of one batch, their ids, the skipped ones, the scoring used.

    Why the image-token cross-check could not run, if it could not, is added to ``unchecked``."""
    skipped: list[dict[str, str]] = []
    good: list[tuple[Sample, Any]] = []
    for s in batch:
        if not str(s.question).strip():
            skipped.append({"id": s.id, "reason": "empty question"})
            continue
        if s.image_source is None:
            skipped.append({"id": s.id, "reason": "no image"})
            continue
        try:
            good.append((s, s.image))
        except DatasetError as exc:
            skipped.append({"id": s.id, "reason": f"image does not decode: {exc}"})
    labels = [dataset.label(s.answer) for s, _ in good]
    if protocol == "span" and target == "label":
        keep = [i for i, lab in enumerate(labels) if lab >= 0]
        for i in sorted(set(range(len(good))) - set(keep)):
            skipped.append({"id": good[i][0].id, "reason": f"answer {good[i][0].answer!r} not in the answer set"})
        good = [good[i] for i in keep]
        labels = [labels[i] for i in keep]
    if not good:
        return {}, [], skipped, None

    try:
        enc = adapter.encode([im for _, im in good], [s.question for s, _ in good])
    except InputError:
        # find the samples the adapter cannot encode (e.g. a question with no tokens), skip them
        ok = []
        for i, (s, im) in enumerate(good):
            try:
                adapter.encode([im], [s.question])
                ok.append(i)
            except InputError as exc:
                skipped.append({"id": s.id, "reason": f"cannot encode: {exc}"})
        good = [good[i] for i in ok]
        labels = [labels[i] for i in ok]
        if not good:
            return {}, [], skipped, None
        enc = adapter.encode([im for _, im in good], [s.question for s, _ in good])
    limit = adapter.max_length
    if limit is not None and max(enc.lengths) > limit:
        over = [i for i, length in enumerate(enc.lengths) if length > limit]
        for i in over:
            skipped.append(
                {"id": good[i][0].id, "reason": f"prompt of {enc.lengths[i]} tokens exceeds the context of {limit}"}
            )
        good = [g for i, g in enumerate(good) if i not in set(over)]
        labels = [lab for i, lab in enumerate(labels) if i not in set(over)]
        if not good:
            return {}, [], skipped, None
        enc = adapter.encode([im for _, im in good], [s.question for s, _ in good])
    skipped_check = _check_image_tokens(adapter, enc, [s.id for s, _ in good])

    if protocol == "tokens":
        act = adapter.run_tokens(enc)
    else:
        act = adapter.run(enc, pooling=pooling)
    need_sequence = protocol == "span" and target == "prediction"
    pairs = [(im, s.question) for s, im in good]
    scores, how = _score_answers(adapter, enc, act, pairs, dataset.answers, need_sequence)
    prediction = (
        np.argmax(scores, axis=1).astype(np.int64) if scores is not None else np.full(len(good), -1, dtype=np.int64)
    )
    out: dict[str, np.ndarray] = {
        "label": np.asarray(labels, dtype=np.int64),
        "prediction": prediction,
    }
    if protocol == "tokens":
        out.update(_token_arrays(act))
    elif protocol == "input-fusion":
        out["x_image"] = act.image[0]
        out["x_text"] = act.text[0]
        for layer in range(act.answer.shape[0]):
            out[f"y.{layer}"] = act.answer[layer]
    else:
        for layer in range(act.image.shape[0]):
            out[f"x_image.{layer}"] = act.image[layer]
            out[f"x_text.{layer}"] = act.text[layer]
        out["y"] = prediction if target == "prediction" else out["label"]
    if skipped_check:
        unchecked.add(skipped_check)
    return out, [s.id for s, _ in good], skipped, how


def _token_arrays(act: Any) -> dict[str, np.ndarray]:
    """A batch's token sets as the store's ragged arrays: each set's rows, concatenated over
    the examples, plus their per-example counts (see :mod:`mmpid.store`)."""
    out = {
        "x_image.tokens": np.concatenate(act.image, axis=0),
        "x_image.count": np.array([len(t) for t in act.image], dtype=np.int64),
        "x_text.tokens": np.concatenate(act.text, axis=0),
        "x_text.count": np.array([len(t) for t in act.text], dtype=np.int64),
        "y.count": np.array([h.shape[1] for h in act.hidden], dtype=np.int64),
    }
    for layer in range(act.hidden[0].shape[0]):
        out[f"y.{layer}.tokens"] = np.concatenate([h[layer] for h in act.hidden], axis=0)
    return out


def _check_image_tokens(adapter: Adapter, enc: Any, ids: Sequence[str]) -> str | None:
    """Raise if the image tokens found differ from those the processor inserted; return why the
    comparison could not be made (None when it was)."""
    found = list(enc.n_image_tokens)
    for sid, f in zip(ids, found):
        if f == 0:
            raise ModelFamilyError(
                f"Sample {sid!r}: no image tokens (id {getattr(adapter, 'image_token_id', lambda: '?')()}) in the "
                "processor's output; the prompt template lost the image placeholder."
            )
    expected = enc.expected_image_tokens
    if expected is not None and list(expected) != found:
        bad = [(sid, f, e) for sid, f, e in zip(ids, found, expected) if f != e][:3]
        raise ModelFamilyError(
            f"Image tokens found in the ids differ from what the processor inserted "
            f"(sample, found, expected): {bad}. The processor and model config disagree."
        )
    if expected is None:
        return getattr(enc, "image_check_skipped", None) or "the adapter cannot count the expected image tokens"
    return None


def _score_answers(
    adapter: Adapter,
    enc: Any,
    act: Any,
    pairs: Sequence[tuple[Any, str]],
    answers: Sequence[str],
    need_sequence: bool,
) -> tuple[np.ndarray | None, str | None]:
    """Log-probabilities of each answer after each prompt, shape (B, |answers|), and the method."""
    if not answers:
        return None, None
    firsts = adapter.first_token_answers(enc.prompts[0], pairs[0][1], answers)
    if act.logits is not None and firsts is not None:
        logits = act.logits.astype(np.float64)
        m = logits.max(axis=1, keepdims=True)
        log_total = np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        return (logits[:, firsts] - m - log_total) / np.log(2.0), "first-token"  # the answers' columns only
    if not need_sequence:
        return None, None
    if len(answers) > MAX_SEQUENCE_CANDIDATES:
        raise InputError(
            f"target='prediction' needs every answer scored by its own forward pass when answers span several "
            f"tokens, and this dataset has {len(answers)} answers (at most {MAX_SEQUENCE_CANDIDATES} allowed). "
            "Use target='label', or a dataset with a small answer set."
        )
    score = getattr(adapter, "score_answers", None)
    if score is None:
        raise ModelFamilyError(
            f"{type(adapter).__name__} cannot score multi-token answers; use target='label' "
            "or an answer set of single-token answers."
        )
    return np.asarray(score([p[0] for p in pairs], [p[1] for p in pairs], answers), dtype=np.float64), "sequence"
