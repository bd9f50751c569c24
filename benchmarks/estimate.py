"""Benchmark: one full estimate at the size of a real layer, and where its time goes.

N = 10,000 samples, d = 576 (SmolVLM's hidden size) for x_image, x_text and y, 200 bootstrap
resamples and 100 permutations, clusters="auto" (the resolution chosen from the data), on the
AND structure (2 latent classes per variable) and on mixed_32 (32 latent classes per source,
16 for the target: the rule resolves a 32x32x16 joint). Target: under 30 s on 2 CPU cores.
The reference, measured in the same run, is the same tables solved one at a time with
`mmpid.decompose` (what a loop over resamples would cost), printed as a ratio.

Run: python benchmarks/estimate.py [--n 10000] [--dim 576] [--structure and mixed_32]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--structure", nargs="+", default=["and", "mixed_32"])
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--reference-tables", type=int, default=30,
                        help="tables solved one at a time for the reference rate")
    args = parser.parse_args()

    from mmpid import synthetic
    from mmpid.estimate import estimate

    print(f"estimate: N={args.n}, d={args.dim} (x_image, x_text, y), {args.bootstrap} bootstrap, "
          f"{args.permutations} permutations, {os.cpu_count()} CPUs visible")
    warm = synthetic.make("and", 500, dim_target=8, seed=0)
    estimate(warm.x_image, warm.x_text, warm.y, n_bootstrap=2, n_permutations=2)  # warm-up
    for structure in args.structure:
        data = synthetic.make(structure, args.n, dim_image=args.dim, dim_text=args.dim,
                              dim_target=args.dim, seed=0)
        print(f"\n== {structure}")
        for rule in ("auto", "conservative"):
            t0 = time.perf_counter()
            est = estimate(data.x_image, data.x_text, data.y, seed=0, n_bootstrap=args.bootstrap,
                           n_permutations=args.permutations, clusters=rule)
            total = time.perf_counter() - t0
            _report(est, data, rule, total, args)


def _report(est, data, rule: str, total: float, args: argparse.Namespace) -> None:  # type: ignore[no-untyped-def]
    from mmpid.estimate.discretise import kmeans_labels, reduce
    from mmpid.estimate.tables import bootstrap_tables
    from mmpid.pid import decompose

    tables = 1 + args.bootstrap + args.permutations
    k = est.clusters
    print(f"clusters={rule!r}: {k['image']}x{k['text']}x{k['target']}, {tables} tables")
    other = total - sum(est.timing.values())
    for stage in ("pca", "kmeans", "tables", "solve"):
        label = "k-means + choice" if stage == "kmeans" and rule == "auto" else stage
        print(f"  {label:17s} {est.timing[stage]:7.2f} s")
    print(f"  {'other':17s} {other:7.2f} s")
    verdict = "PASS" if total < 30 else "SLOW"
    print(f"  total             {total:7.2f} s   (target < 30 s: {verdict})")

    # reference: the same kind of tables, one decompose() call each
    labels = []
    for name, x in zip(("image", "text", "target"), (data.x_image, data.x_text, data.y)):
        z, _, _ = reduce(x, n_components=10, seed=0)
        labels.append(kmeans_labels(z, k[name], seed=0))
    shape = (k["image"], k["text"], k["target"])
    ref = bootstrap_tables(*labels, shape, args.reference_tables, np.random.default_rng(0))
    t0 = time.perf_counter()
    for table in ref:
        decompose(table)
    per_table_loop = (time.perf_counter() - t0) / len(ref)
    per_table_batch = est.timing["solve"] / tables
    print(f"  solve per table: batched {1e3 * per_table_batch:.1f} ms, one at a time "
          f"{1e3 * per_table_loop:.1f} ms")
    print("  atoms (bits): corrected [interval] vs truth")
    for atom in ("redundancy", "unique_image", "unique_text", "synergy"):
        e, truth = est[atom], data.truth[atom]
        inside = "inside" if e.contains(truth) else "OUTSIDE"
        print(f"    {atom:13s} {e.corrected:+.4f} [{e.ci_low:+.4f}, {e.ci_high:+.4f}]  "
              f"truth {truth:.4f} ({inside}, error {e.corrected - truth:+.4f})")


if __name__ == "__main__":
    main()
