"""Benchmark: the Gaussian estimator at the size of a real layer, against the discrete one.

N = 10,000 samples, d = 576 (SmolVLM's hidden size) for x_image, x_text and y, 10 PCA
components each, 200 bootstrap resamples and 100 permutations. Target: under 60 s on 2 CPU
cores. The reference, measured in the same run on the same data, is the discrete estimator
(clusters="auto", same resamples). The data are linear-Gaussian: a shared latent seen by both
sources, one latent private to each, all three read by the target, embedded in 576 dimensions
with isotropic noise (signal-to-noise 1 per latent direction).

Run: python benchmarks/gaussian.py [--n 10000] [--dim 576] [--no-reference]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np


def make_data(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shared, own1, own2 = (rng.normal(size=(n, 4)) for _ in range(3))

    def embed(latent: np.ndarray) -> np.ndarray:
        # unit-norm rows: each latent has signal-to-noise 1 along its direction
        mixing = rng.normal(size=(latent.shape[1], dim))
        mixing /= np.linalg.norm(mixing, axis=1, keepdims=True)
        return latent @ mixing + rng.normal(size=(n, dim))

    x_image = embed(np.hstack([shared, own1]))
    x_text = embed(np.hstack([shared, own2]))
    y = embed(np.hstack([shared, own1, own2]))
    return x_image, x_text, y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=576)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=100)
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the discrete estimator's reference run")
    args = parser.parse_args()

    from mmpid.estimate import estimate

    x_image, x_text, y = make_data(args.n, args.dim)
    print(f"gaussian estimate: N={args.n}, d={args.dim} (x_image, x_text, y), 10 components, "
          f"{args.bootstrap} bootstrap, {args.permutations} permutations, "
          f"{os.cpu_count()} CPUs visible")
    kw = {"seed": 0, "n_bootstrap": args.bootstrap, "n_permutations": args.permutations}
    estimate(x_image[:500], x_text[:500], y[:500], estimator="gaussian", n_bootstrap=2,
             n_permutations=2)  # warm-up (imports, sklearn)
    t0 = time.perf_counter()
    gauss = estimate(x_image, x_text, y, estimator="gaussian", **kw)
    total = time.perf_counter() - t0
    other = total - sum(gauss.timing.values())
    for stage, seconds in gauss.timing.items():
        print(f"  {stage:12s} {seconds:7.2f} s")
    print(f"  {'other':12s} {other:7.2f} s")
    verdict = "PASS" if total < 60 else "SLOW"
    print(f"total        {total:7.2f} s   (target < 60 s: {verdict})")
    solver = gauss.details["solver"]
    print(f"solver: {solver['covariances']} covariances, {solver['not_converged']} not converged, "
          f"largest certified gap {solver['max_gap_bits']:.1e} bits")

    disc = None
    if not args.no_reference:
        estimate(x_image[:500], x_text[:500], y[:500], n_bootstrap=2, n_permutations=2)
        t0 = time.perf_counter()
        disc = estimate(x_image, x_text, y, **kw)
        ref = time.perf_counter() - t0
        k = disc.clusters
        print(f"reference: discrete estimator on the same data, clusters "
              f"{k['image']}x{k['text']}x{k['target']}: {ref:.2f} s "
              f"(gaussian / discrete = {total / ref:.2f})")

    print("atoms (bits): corrected [interval]")
    for atom in ("redundancy", "unique_image", "unique_text", "synergy"):
        g = gauss[atom]
        line = f"  {atom:13s} gaussian {g.corrected:+.4f} [{g.ci_low:+.4f}, {g.ci_high:+.4f}]"
        if disc is not None:
            d = disc[atom]
            line += f"   discrete {d.corrected:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}]"
        print(line)


if __name__ == "__main__":
    main()
