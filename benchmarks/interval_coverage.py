"""Benchmark: do mmpid's intervals cover the truth, and is the corrected value unbiased?

For every synthetic structure with a known PID (``mmpid.synthetic``), boundary cases included
(uniques truly 0 beside real redundancy: ``and``, ``and_16``, ``redundant``; zero synergy; zero
redundancy; every atom 0: ``independent``), and each N, the full ``estimate`` is repeated on
fresh samples; per atom it reports the mean bias of the corrected value, its RMSE and the
coverage of the interval, against the targets of issue 11 (nominal 95%: coverage >= 90% and
|bias| <= 0.01 bits at N = 10,000). Each correction rule is run on the same samples and
seeds, so ``bootstrap`` (the default) and ``extrapolated`` are compared on equal terms; they
share one discretisation and one batched solve per repetition
(:func:`mmpid.estimate.core.estimate_each_correction`, the same numbers as separate calls).

Inputs: by default the latent symbols themselves, as integer labels (``--inputs labels``):
the discretisation is then exact, so the truth is known exactly for the estimate's own joint
(the interval is conditional on the discretisation, as documented), and a repetition costs
only the table solves. ``--inputs continuous`` embeds the sources (64 dimensions, as
``synthetic.make``) and lets ``clusters="auto"`` choose the resolution, with label targets;
it measures the discretisation too and is much slower.

Run: python benchmarks/interval_coverage.py [--reps 200] [--slow-reps 30] [--n 2000 10000]
     [--structures and xor ...] [--inputs labels|continuous] [--workers 2] [--minutes 75]
Each repetition is appended to benchmarks/results/coverage[_continuous]_reps.jsonl as it
finishes; a run that is stopped and started again skips what that file holds (same inputs and
bootstrap count), so a killed run continues. Repetitions run in rounds of ``--block`` of every
cell, so a run cut short by ``--minutes`` leaves the cells even. Writes
benchmarks/results/coverage[_continuous].{json,md} from the file (``--summarise-only`` just
that). (Not named coverage.py: run as a script, that
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


def run_one(structure: str, n: int, rep: int, corrections: list[str], inputs: str,
            bootstrap: int) -> dict:
    """One repetition: every correction on the same sample and seed, from one shared
    discretisation and one solve (``estimate_each_correction``: the same numbers as separate
    ``estimate`` calls, the k-means ladder and the tables' solves done once)."""
    from mmpid import synthetic
    from mmpid.estimate.core import estimate_each_correction

    data = synthetic.make(structure, n, seed=10_000 * rep + n % 9973)
    if inputs == "labels":
        xs = (data.a, data.b, data.t)
    else:
        xs = (data.x_image, data.x_text, data.t)
    t0 = time.perf_counter()
    ests = estimate_each_correction(*xs, seed=rep, n_bootstrap=bootstrap, n_permutations=2,
                                    corrections=tuple(corrections))
    seconds = time.perf_counter() - t0
    out: dict = {"structure": structure, "n": n, "rep": rep, "inputs": inputs,
                 "n_bootstrap": bootstrap, "seconds": seconds,
                 "clusters": ests[corrections[0]].clusters}
    for corr, est in ests.items():
        out[corr] = {
            # the shared run's time, charged to every correction it served
            "seconds": seconds,
            # bits, to 1e-8 (the solver's certified accuracy is 1e-7)
            "atoms": {a: [round(float(v), 8) for v in (est[a].corrected, est[a].ci_low, est[a].ci_high)]
                      for a in ATOMS},
        }
    return out


def _worker_init() -> None:
    """One BLAS/OpenMP thread per worker process (the pool supplies the parallelism)."""
    global _LIMITS
    from threadpoolctl import threadpool_limits

    _LIMITS = threadpool_limits(limits=1)


def _run_task(task: tuple) -> dict:
    return run_one(*task)


def load_runs(path: Path, inputs: str, bootstrap: int) -> dict[tuple[str, int], dict[int, dict]]:
    """The repetitions already appended to ``path``: (structure, N) -> rep -> record."""
    runs: dict[tuple[str, int], dict[int, dict]] = {}
    if not path.exists():
        return runs
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by a kill
            continue
        if r.get("inputs") == inputs and r.get("n_bootstrap") == bootstrap:
            runs.setdefault((r["structure"], r["n"]), {})[r["rep"]] = r
    return runs


def tasks_in_rounds(structures: list[str], ns: list[int], reps: dict[str, int], block: int,
                    done: dict[tuple[str, int], dict[int, dict]]) -> list[tuple[str, int, int]]:
    """(structure, N, rep) still to run, in rounds of ``block`` repetitions of every cell:
    a run cut short leaves every cell with about the same number of repetitions."""
    out = []
    top = max(reps.values())
    for lo in range(0, top, block):
        for structure in structures:
            for n in ns:
                for rep in range(lo, min(lo + block, reps[structure])):
                    if rep not in done.get((structure, n), {}):
                        out.append((structure, n, rep))
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
        "`*` marks a cell that misses a target at N = 10,000. s/rep: seconds of one repetition "
        "(every correction, from one shared discretisation and solve) in one worker process "
        f"({meta.get('workers', 1)} at a time).",
        "",
        "| structure | N | reps | correction | " + " | ".join(SHORT[a] for a in ATOMS) + " | s/rep |",
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
    short = meta.get("short_cells")
    if short:
        lines += ["", "Cells with fewer repetitions than asked (done of asked): " + "; ".join(short) + "."]
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
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from mmpid import synthetic

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--slow-reps", type=int, default=30,
                        help=f"repetitions for the slow structures {SLOW}")
    parser.add_argument("--n", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument("--structures", nargs="+", default=list(synthetic.STRUCTURES))
    parser.add_argument("--corrections", nargs="+", default=["bootstrap", "extrapolated"],
                        help="the first is the one whose misses are listed (the default's)")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--inputs", choices=("labels", "continuous"), default="labels")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes, each running whole repetitions on one thread")
    parser.add_argument("--block", type=int, default=25,
                        help="repetitions of every cell per round (a cut-short run stays even)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="start no repetition after this many minutes; what is done is kept")
    parser.add_argument("--summarise-only", action="store_true",
                        help="write the tables from the repetitions file, run nothing")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()

    suffix = "" if args.inputs == "labels" else "_continuous"
    args.out.mkdir(parents=True, exist_ok=True)
    reps_path = args.out / f"coverage{suffix}_reps.jsonl"
    meta = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f} at start",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "inputs": args.inputs,
        "bootstrap": args.bootstrap,
        "level": 0.95,
        "corrections": args.corrections,
        "reps": args.reps,
        "workers": args.workers,
        "repetitions_file": reps_path.name,
    }
    previous = args.out / f"coverage{suffix}.json"
    if args.summarise_only and previous.exists():  # the run's own machine, date and workers
        old_meta = json.loads(previous.read_text()).get("meta", {})
        meta.update({k: old_meta[k] for k in ("machine", "date", "workers") if k in old_meta})
        meta["summarised"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    reps = {s: (args.slow_reps if s in SLOW else args.reps) for s in args.structures}
    done = load_runs(reps_path, args.inputs, args.bootstrap)
    todo = [] if args.summarise_only else tasks_in_rounds(
        args.structures, args.n, reps, args.block, done)
    print(f"{sum(len(v) for v in done.values())} repetitions already in {reps_path}; "
          f"{len(todo)} to run", flush=True)

    t_all = time.perf_counter()
    deadline = None if args.minutes is None else t_all + 60 * args.minutes
    last_write = t_all
    with reps_path.open("a") as sink:
        def keep(record: dict) -> None:
            sink.write(json.dumps(record) + "\n")
            sink.flush()
            os.fsync(sink.fileno())
            done.setdefault((record["structure"], record["n"]), {})[record["rep"]] = record
            print(f"{record['structure']:14s} N={record['n']:6d} rep {record['rep']:3d} "
                  f"{record['seconds']:6.2f}s", flush=True)

        queue = iter(todo)
        if args.workers <= 1:
            for task in queue:
                if deadline is not None and time.perf_counter() > deadline:
                    break
                keep(run_one(*task, args.corrections, args.inputs, args.bootstrap))
        else:
            with ProcessPoolExecutor(args.workers, initializer=_worker_init) as pool:
                running = set()
                while True:
                    while len(running) < 2 * args.workers and (
                            deadline is None or time.perf_counter() < deadline):
                        task = next(queue, None)
                        if task is None:
                            break
                        running.add(pool.submit(
                            _run_task, (*task, args.corrections, args.inputs, args.bootstrap)))
                    if not running:
                        break
                    finished, running = wait(running, return_when=FIRST_COMPLETED)
                    for f in finished:
                        keep(f.result())
                    if time.perf_counter() - last_write > 300:
                        write(summarise_all(done, args), meta, args, time.perf_counter() - t_all)
                        last_write = time.perf_counter()
    results = summarise_all(done, args)
    meta["short_cells"] = [
        f"{s} N={n}: {len(done.get((s, n), {}))} of {reps[s]}"
        for s in args.structures for n in args.n if len(done.get((s, n), {})) < reps[s]
    ]
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


def summarise_all(done: dict[tuple[str, int], dict[int, dict]], args: argparse.Namespace) -> dict:
    """Per (structure, N) with at least one repetition: every correction's summary."""
    from mmpid import synthetic
    from mmpid.estimate.summary import interval_kind

    results: dict = {}
    for structure in args.structures:
        for n in args.n:
            runs = [r for _, r in sorted(done.get((structure, n), {}).items())
                    if all(c in r for c in args.corrections)]
            if not runs:
                continue
            entry = {"structure": structure, "n": n, "reps": len(runs),
                     "interval_kind": {c: interval_kind(c, 0.95) for c in args.corrections}}
            for corr in args.corrections:
                entry[corr] = summarise(runs, synthetic.TRUE_ATOMS[structure], corr)
            results[f"{structure}@{n}"] = entry
    return results


if __name__ == "__main__":
    main()
