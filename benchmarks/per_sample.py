"""Benchmark: the paper's per-sample estimate on a zoo model's token-set store.

Extracts a ``tokens`` store of N = 1,000 easy-vqa test questions from ``zoo:normal`` (the
image tokens, the question's input embeddings and every layer's hidden states over the prompt),
reports its size per example, then times the per-sample estimate of every layer (the paper's 10
clusters, and 3 clusters), the library call ``mmpid estimate`` makes per layer. Target: under
2 minutes for all layers on 2 CPU cores. The reference, measured in the same run, is mmpid's
pooled estimate of the same layers on the same examples (200 bootstrap resamples, 100
permutations), printed as a ratio.

Run: python benchmarks/per_sample.py [--n 1000] [--model zoo:normal]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--model", default="zoo:normal")
    args = parser.parse_args()

    from mmpid.errors import EstimateWarning
    from mmpid.estimate import estimate
    from mmpid.pipeline import extract_features

    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        store = extract_features(args.model, Path(tmp) / "store", limit=args.n, device="cpu", protocol="tokens",
                                 progress=False)
        t_extract = time.perf_counter() - t0
        counts = {v: store.token_counts(v) for v in ("x_image", "x_text", "y")}
        print(f"per-sample: {args.model}, N={store.n_samples}, {len(store.layers)} layers, "
              f"{os.cpu_count()} CPUs visible; extraction {t_extract:.1f} s")
        print("token-set store: {:.1f} KiB per example ({:.1f} MiB for N={}); tokens per set: image {:.1f}, "
              "question {:.1f}, prompt {:.1f} (mean)".format(
                  store.bytes_per_sample() / 1024, store.bytes_per_sample() * store.n_samples / 2**20,
                  store.n_samples, *(float(c.mean()) for c in counts.values())))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", EstimateWarning)
            timings = {}
            for label, kw in (("per-sample, 10 clusters (the paper's)", {"protocol": "per-sample", "clusters": 10}),
                              ("per-sample, 3 clusters", {"protocol": "per-sample", "clusters": 3}),
                              ("pooled (reference)", {})):
                t0 = time.perf_counter()
                for layer in store.layers:
                    data = store.load_tokens(layer) if kw else store.load(layer)
                    estimate(*data, seed=0, **kw)
                timings[label] = time.perf_counter() - t0
        ref = timings["pooled (reference)"]
        print("| estimate, every layer | seconds | vs pooled |")
        print("|---|---|---|")
        for label, sec in timings.items():
            print(f"| {label} | {sec:.1f} | {sec / ref:.2f}x |")
        slowest = max(v for k, v in timings.items() if k.startswith("per-sample"))
        verdict = "PASS" if slowest < 120 else "SLOW"
        print(f"per-sample, every layer: {slowest:.1f} s at most (target < 120 s: {verdict})")


if __name__ == "__main__":
    main()
