"""All baselines and PID on N questions of zoo:normal, against a plain pass over the same data.

Reference (measured in the same run): one pass of :func:`mmpid.baselines._core.iter_probes`
over the data (encode, the model on the real and on the blank images: what every method starts
from). Each method's wall-clock and CPU time, and its ratio to the reference; the total against
the target of 10 minutes for N = 1,000 on 2 CPU cores. One torch thread by default: on a
shared, oversubscribed machine two threads ran 7-20x slower (spinning OpenMP barriers). MM-SHAP runs with a reduced budget
(``--max-evals``, default 100 model rows per sample, about 4 permutations of ~23 players).

    python benchmarks/compare.py [--n 1000] [--threads 1] [--max-evals 100] [--ig-steps 64]

Writes benchmarks/results/compare.json and benchmarks/results/compare.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-evals", type=int, default=100)
    ap.add_argument("--ig-steps", type=int, default=64)
    args = ap.parse_args()

    import torch

    from mmpid.baselines import compare
    from mmpid.baselines._core import iter_probes
    from mmpid.data import load_dataset
    from mmpid.models import load_adapter

    torch.set_num_threads(args.threads)
    adapter = load_adapter("zoo:normal", device="cpu")
    data = load_dataset("easy-vqa", split="test", limit=args.n, seed=0)

    def clocks():
        return time.perf_counter(), time.process_time()

    w0, c0 = clocks()
    with torch.no_grad():
        for _ in iter_probes(adapter, data, batch_size=64):
            pass
    w1, c1 = clocks()
    ref_wall, ref_cpu = w1 - w0, c1 - c0
    rows = []
    total_wall = 0.0
    for method in ("ablation", "perceptual", "shapley", "attention", "ig", "mmshap", "pid"):
        w0, c0 = clocks()
        if method == "pid":
            res = compare(adapter, data, methods=["ablation"], pid=True, max_evals=args.max_evals)
            seconds = res.pid["seconds"]
            w0 = time.perf_counter() - seconds  # PID's own time, without the ablation run
            c_used = float("nan")
            extra = {}
        else:
            res = compare(adapter, data, methods=[method], pid=False, max_evals=args.max_evals, ig_steps=args.ig_steps)
            w1, c1 = clocks()
            c_used = c1 - c0
            r = res.methods[method]
            extra = {"forward_rows": r.cost.get("forward_passes")}
            if method == "ig":
                extra["completeness_error_bits"] = r.stats["completeness_error"].value
                extra["delta_bits"] = r.stats["delta"].value
        wall = time.perf_counter() - w0
        total_wall += wall
        rows.append({"method": method, "wall_s": wall, "cpu_s": c_used, "ratio_to_reference": wall / ref_wall, **extra})
        print(f"{method:10s} {wall:8.1f} s  {wall / ref_wall:7.1f}x reference  {extra}", flush=True)
    out = {
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at end",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "n": args.n, "threads": args.threads, "max_evals": args.max_evals, "ig_steps": args.ig_steps,
        "reference": {"what": "one pass of encode + model on real and blank images", "wall_s": ref_wall,
                      "cpu_s": ref_cpu},
        "methods": rows, "total_wall_s": total_wall, "target_s": 600, "met": total_wall < 600,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "compare.json").write_text(json.dumps(out, indent=2))
    lines = [
        f"Baselines benchmark ({out['machine']}; {out['date']}): zoo:normal, {args.n} easy-vqa test questions, "
        f"{args.threads} torch threads, MM-SHAP max_evals={args.max_evals}, IG {args.ig_steps} steps.",
        "",
        f"Reference: one plain pass (encode, model on real and blank images) = {ref_wall:.1f} s.",
        "",
        "| method | wall (s) | x reference |",
        "|---|---|---|",
        *[f"| {r['method']} | {r['wall_s']:.1f} | {r['ratio_to_reference']:.1f} |" for r in rows],
        f"| **total** | {total_wall:.1f} | {total_wall / ref_wall:.1f} |",
        "",
        f"Target: all methods under 600 s: {'met' if out['met'] else 'NOT met'}.",
    ]
    (RESULTS / "compare.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
