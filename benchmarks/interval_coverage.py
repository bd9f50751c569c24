"""Benchmark: do mmpid's intervals cover the truth, and is the corrected value unbiased?

For every synthetic structure with a known PID (``mmpid.synthetic``), boundary cases included
(uniques truly 0 beside real redundancy: ``and``, ``and_16``, ``redundant``; zero synergy; zero
redundancy; every atom 0: ``independent``), and each N, the full ``estimate`` is repeated on
fresh samples; per atom it reports the mean bias of the corrected value, its RMSE and the
coverage of the interval, against the targets of issue 11 (nominal 95%: coverage >= 90% and
|bias| <= 0.01 bits at N = 10,000). Each correction rule is run on the same samples and
seeds, so ``bootstrap`` (the classical rule, the default before issue 11) and
``extrapolated`` (the default) are compared on equal terms.

Inputs: by default the latent symbols themselves, as integer labels (``--inputs labels``):
the discretisation is then exact, so the truth is known exactly for the estimate's own joint
(the interval is conditional on the discretisation, as documented), and a repetition costs
only the table solves. ``--inputs continuous`` embeds the sources (64 dimensions, as
``synthetic.make``) and lets ``clusters="auto"`` choose the resolution, with label targets;
it measures the discretisation too and is much slower.

Run: python benchmarks/interval_coverage.py [--reps 200] [--slow-reps 30] [--n 2000 10000]
     [--structures and xor ...] [--inputs labels|continuous]
Writes benchmarks/results/coverage.{json,md}. (Not named coverage.py: run as a script, that
name would shadow the `coverage` package, which numba imports, for every benchmark here.)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

ATOMS = ("redundancy", "unique_image", "unique_text", "synergy")
SHORT = {"redundancy": "R", "unique_image": "U_img", "unique_text": "U_txt", "synergy": "S"}
TARGET_COVERAGE = 0.90
TARGET_BIAS = 0.01
TARGET_N = 10_000
#: Structures whose tables are slow to solve (16x16x16 and 32x32x16 joints, 6-45 ms a table on
#: this machine; 401 + 200 tables an estimate): --slow-reps repetitions instead of --reps.
SLOW = ("redundant_16", "mixed_32")


def run_one(structure: str, n: int, rep: int, corrections: list[str], args) -> dict:
    from mmpid import synthetic
    from mmpid.estimate import estimate

    data = synthetic.make(structure, n, seed=10_000 * rep + n % 9973)
    if args.inputs == "labels":
        xs = (data.a, data.b, data.t)
    else:
        xs = (data.x_image, data.x_text, data.t)
    out = {}
    for corr in corrections:
        t0 = time.perf_counter()
        est = estimate(*xs, seed=rep, n_bootstrap=args.bootstrap, n_permutations=2,
                       correction=corr)
        out[corr] = {
            "seconds": time.perf_counter() - t0,
            "atoms": {a: (est[a].corrected, est[a].ci_low, est[a].ci_high) for a in ATOMS},
            "kind": est.details.get("interval_kind"),
        }
    return out


def summarise(runs: list[dict], truth: dict, corr: str) -> dict:
    res = {}
    for a in ATOMS:
        v = np.array([r[corr]["atoms"][a] for r in runs])
        err = v[:, 0] - truth[a]
        covered = (v[:, 1] <= truth[a]) & (truth[a] <= v[:, 2])
        res[a] = {
            "truth": truth[a],
            "bias": float(err.mean()),
            "bias_se": float(err.std(ddof=1) / np.sqrt(len(err))) if len(err) > 1 else float("nan"),
            "rmse": float(np.sqrt(np.mean(err**2))),
            "coverage": float(covered.mean()),
            "width": float(np.mean(v[:, 2] - v[:, 1])),
        }
    res["seconds_per_estimate"] = float(np.mean([r[corr]["seconds"] for r in runs]))
    return res


def markdown(results: dict, meta: dict) -> str:
    lines = [
        f"Coverage benchmark ({meta['machine']}; {meta['inputs']} inputs, {meta['bootstrap']} "
        f"bootstraps, nominal {meta['level']:.0%}; {meta['date']}).",
        "",
        f"Targets at N = {TARGET_N:,}: coverage >= {TARGET_COVERAGE:.0%} and |bias| <= "
        f"{TARGET_BIAS} bits for every atom. Cells: bias / RMSE / coverage (bits, bits, %); "
        "`*` marks a cell that misses a target at N = 10,000.",
        "",
        "| structure | N | reps | correction | " + " | ".join(SHORT[a] for a in ATOMS) + " | s/estimate |",
        "|---|---|---|---|" + "---|" * len(ATOMS) + "---|",
    ]
    for key, by_corr in results.items():
        structure, n, reps = by_corr["structure"], by_corr["n"], by_corr["reps"]
        for corr in meta["corrections"]:
            r = by_corr[corr]
            cells = []
            for a in ATOMS:
                c = r[a]
                miss = n == TARGET_N and (c["coverage"] < TARGET_COVERAGE or abs(c["bias"]) > TARGET_BIAS)
                cells.append(f"{c['bias']:+.4f} / {c['rmse']:.4f} / {100 * c['coverage']:.0f}" + (" *" if miss else ""))
            lines.append(f"| {structure} | {n:,} | {reps} | {corr} | " + " | ".join(cells)
                         + f" | {r['seconds_per_estimate']:.2f} |")
    return "\n".join(lines) + "\n"


def write(results: dict, meta: dict, args: argparse.Namespace, seconds: float) -> str:
    """Write coverage[_continuous].{json,md} under --out; return the markdown."""
    meta = {**meta, "seconds": seconds}
    args.out.mkdir(parents=True, exist_ok=True)
    suffix = "" if args.inputs == "labels" else "_continuous"
    (args.out / f"coverage{suffix}.json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    md = markdown(results, meta)
    (args.out / f"coverage{suffix}.md").write_text(md)
    return md


def main() -> None:
    from mmpid import synthetic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--slow-reps", type=int, default=30,
                        help=f"repetitions for the slow structures {SLOW}")
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--structures", nargs="+", default=list(synthetic.STRUCTURES))
    parser.add_argument("--corrections", nargs="+", default=["extrapolated", "bootstrap"])
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--inputs", choices=("labels", "continuous"), default="labels")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "inputs": args.inputs,
        "bootstrap": args.bootstrap,
        "level": 0.95,
        "corrections": args.corrections,
        "reps": args.reps,
    }
    results: dict = {}
    t_all = time.perf_counter()
    for structure in args.structures:
        truth = synthetic.TRUE_ATOMS[structure]
        for n in args.n:
            t0 = time.perf_counter()
            reps = args.slow_reps if structure in SLOW else args.reps
            runs = [run_one(structure, n, rep, args.corrections, args) for rep in range(reps)]
            entry = {"structure": structure, "n": n, "reps": reps,
                     "interval_kind": {c: runs[0][c]["kind"] for c in args.corrections}}
            for corr in args.corrections:
                entry[corr] = summarise(runs, truth, corr)
            results[f"{structure}@{n}"] = entry
            line = "  ".join(
                f"{corr}: " + " ".join(
                    f"{SHORT[a]} {entry[corr][a]['bias']:+.4f}/{100 * entry[corr][a]['coverage']:.0f}%"
                    for a in ATOMS)
                for corr in args.corrections)
            print(f"{structure:14s} N={n:6d} {time.perf_counter() - t0:6.1f}s  {line}", flush=True)
            write(results, meta, args, time.perf_counter() - t_all)  # what is done so far
    md = write(results, meta, args, time.perf_counter() - t_all)
    print(md)
    misses = [
        f"{e['structure']} {a}" for e in results.values() if e["n"] == TARGET_N
        for a in ATOMS
        if e[args.corrections[0]][a]["coverage"] < TARGET_COVERAGE
        or abs(e[args.corrections[0]][a]["bias"]) > TARGET_BIAS
    ]
    print(f"targets at N = {TARGET_N:,} ({args.corrections[0]}): "
          + ("all met" if not misses else "missed by " + ", ".join(misses)))


if __name__ == "__main__":
    main()
