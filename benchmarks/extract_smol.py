"""Extraction speed of zoo:smol (SmolLM2-135M inside Idefics3, 30 layers) on CPU.

Runs ``mmpid.extract.extract`` (the input-fusion protocol: every layer's answer-position
state, the image and question features, the next-token logits) on ``--n`` easy-vqa test
questions into a fresh store, and reports wall and CPU time and samples per second. The
assembly of zoo:smol (once per cache) and the model load are timed apart and not counted.
The bar (issue 14): 2,000 questions in under 10 minutes on 2 CPU cores. Usage::

    python benchmarks/extract_smol.py [--n 2000] [--batch-size 32] [--threads 2]

Writes benchmarks/results/extract_smol.json and benchmarks/results/extract_smol.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAR_SECONDS = 600.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--protocol", default="input-fusion")
    ap.add_argument("--store", type=Path, default=None,
                    help="keep the store here (a new folder; `mmpid analyze --out` its parent resumes from it)")
    args = ap.parse_args()
    if args.store is not None and args.store.exists():
        raise SystemExit(f"--store {args.store} exists; give a new folder (the benchmark times a fresh extraction)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from mmpid import zoo
    from mmpid.data import load_dataset
    from mmpid.extract import extract
    from mmpid.models import load_adapter

    load0 = os.getloadavg()[0]
    t = time.perf_counter()
    folder = zoo.resolve("zoo:smol")
    assemble_s = time.perf_counter() - t
    t = time.perf_counter()
    adapter = load_adapter(str(folder), device="cpu")
    load_s = time.perf_counter() - t
    dataset = load_dataset("easy-vqa", split="test", limit=args.n, seed=0)
    out = Path(tempfile.mkdtemp(prefix="extract-smol-"))
    store = args.store if args.store is not None else out / "store"
    try:
        c0, t0 = time.process_time(), time.perf_counter()
        extract(adapter, dataset, store, protocol=args.protocol, batch_size=args.batch_size, progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    load1 = os.getloadavg()[0]
    result = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n": len(dataset), "batch_size": args.batch_size, "threads": args.threads, "protocol": args.protocol,
        "wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "samples_per_s": round(len(dataset) / wall, 2),
        "assemble_or_cache_s": round(assemble_s, 1), "model_load_s": round(load_s, 1),
        "bar_s": BAR_SECONDS, "met": wall < BAR_SECONDS,
        "load_average": [round(load0, 1), round(load1, 1)], "cpus": os.cpu_count(),
        "machine": platform.machine(), "torch": torch.__version__,
    }
    res = ROOT / "benchmarks" / "results"
    res.mkdir(parents=True, exist_ok=True)
    (res / "extract_smol.json").write_text(json.dumps(result, indent=2) + "\n")
    md = (
        f"Extraction benchmark: zoo:smol (SmolLM2-135M-Instruct, 30 layers, d = 576, 4 image tokens), "
        f"{result['n']:,} easy-vqa test questions, protocol {args.protocol}, batch {args.batch_size}, "
        f"{args.threads} torch threads on {result['cpus']} CPUs, load average {load0:.1f} at start and {load1:.1f} "
        f"at end; {result['date']}.\n\n"
        "| measure | value |\n|---|---|\n"
        f"| wall time | {wall:.1f} s |\n| CPU time | {cpu:.1f} s |\n"
        f"| samples/s (wall) | {result['samples_per_s']:.2f} |\n"
        f"| bar: {result['n']:,} questions under {BAR_SECONDS / 60:.0f} min | {'met' if result['met'] else 'missed'} |\n"
        f"| resolve zoo:smol (assembly, or the cached folder) | {assemble_s:.1f} s |\n"
        f"| load the assembled checkpoint | {load_s:.1f} s |\n"
    )
    (res / "extract_smol.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
