"""Extraction overhead over a bare forward pass, and peak memory, on a tiny LLaVA on CPU.

Two ratios, measured in the same run over the same easy-vqa batches:

adapter vs bare forward (batches encoded beforehand, no processor in the loop)
    forward   ``model(**inputs, output_hidden_states=True)``, keeping each layer's
              answer-position state (the bare forward pass)
    run       ``adapter.run(encoded)``: hooks on the decoder layers, image, question
              and answer positions pooled per layer, next-token logits

whole extraction loop vs a hand loop (images decoded in the loop)
    hand      decode images + prompt + processor + ``model(..., output_hidden_states=True)``
              (what one would write by hand to get every layer's hidden states)
    extract   ``mmpid.extract.extract`` into a fresh store folder: the same work plus
              span finding, pooling, answer scoring and the shard and manifest writes
              (the folder is made and removed outside the timed region)

Timing: one process, ``--rounds`` rounds after one warm-up round. In each round
forward and run alternate batch by batch (their per-batch times summed), then hand
and extract run back to back (which goes first alternates), so that a slow spell
caused by other processes hits both sides of a ratio. Per variant the median over
rounds; each ratio is the median of the per-round ratios, with its quartiles. Both clocks: the process's
CPU time (the steadier one on a shared machine) and wall-clock. Memory: each
variant once more in its own fresh process: peak RSS, its growth over the RSS
after loading (and the CUDA peak on a GPU). Usage::

    python benchmarks/extract.py [--n 256] [--batch-size 16] [--layers 4] [--rounds 31] [--device cpu]

Writes benchmarks/results/extract.json and benchmarks/results/extract.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

VARIANTS = ("forward", "run", "hand", "extract")
RATIOS = (("run", "forward"), ("extract", "hand"))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(args: argparse.Namespace, *, encode: bool) -> tuple[dict, dict, object, float]:
    """The variants (callables over the same batches), their helpers, the adapter, the RSS after setup.

    ``prep`` holds the untimed preparation of a variant (``extract``: remove the
    previous store), ``cleanup`` and ``per_batch``: the encoded batches and the
    one-batch forward and run callables.
    """
    import torch

    from mmpid.data import load_dataset
    from mmpid.extract import extract
    from mmpid.models import load_adapter

    torch.manual_seed(0)
    adapter = load_adapter(args.model, device=args.device)
    data = load_dataset("easy-vqa", limit=args.n, seed=0)
    batches = [data[i : i + args.batch_size] for i in range(0, len(data), args.batch_size)]
    sync = torch.cuda.synchronize if adapter.device.type == "cuda" else (lambda: None)
    dev, dt = adapter.device, adapter.dtype
    encoded = [adapter.encode([s.image for s in b], [s.question for s in b]) for b in batches] if encode else []
    root = Path(tempfile.mkdtemp(prefix="mmpid-bench-"))
    store = root / "store"
    if adapter.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_rss = _peak_rss_mib()

    def forward_one(enc) -> None:
        with torch.inference_mode():
            out = adapter.model(**enc.inputs, output_hidden_states=True, use_cache=False)
            _ = [h[:, -1].float().cpu() for h in out.hidden_states]
        sync()

    def run_one(enc) -> None:
        adapter.run(enc)
        sync()

    def forward() -> None:
        for enc in encoded:
            forward_one(enc)

    def run() -> None:
        for enc in encoded:
            run_one(enc)

    def hand() -> None:
        with torch.inference_mode():
            for batch in batches:
                images = [[s.image] for s in batch]
                prompts = [adapter.build_prompt(s.question) for s in batch]
                inputs = adapter._call_processor(images, prompts)
                inputs = {k: (v.to(dev, dt) if torch.is_floating_point(v) else v.to(dev)) for k, v in inputs.items()}
                out = adapter.model(**inputs, output_hidden_states=True, use_cache=False)
                _ = [h[:, -1].float().cpu() for h in out.hidden_states]
        sync()

    def full() -> None:
        extract(adapter, data, store, batch_size=args.batch_size, progress=False)
        sync()

    def fresh_store() -> None:
        shutil.rmtree(store, ignore_errors=True)

    fns = {"forward": forward, "run": run, "hand": hand, "extract": full}
    prep = {
        "extract": fresh_store,
        "cleanup": lambda: shutil.rmtree(root, ignore_errors=True),
        "per_batch": (encoded, forward_one, run_one),
    }
    return fns, prep, adapter, base_rss


def _memory(args: argparse.Namespace) -> dict[str, float]:
    """Run one variant once in this (fresh) process; its peak memory."""
    import torch

    fns, prep, adapter, base_rss = _setup(args, encode=args.variant in ("forward", "run"))
    prep.get(args.variant, lambda: None)()
    fns[args.variant]()
    prep["cleanup"]()
    out = {"peak_rss_mib": _peak_rss_mib(), "growth_mib": _peak_rss_mib() - base_rss}
    if adapter.device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _timing(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    """Seconds per round of each variant, ``rounds`` rounds after a warm-up round.

    Each pair is timed close together so that a slow spell caused by other
    processes hits both sides: forward and run alternate batch by batch (the
    first of each batch alternating too) and their per-batch times are summed;
    hand and extract run back to back, the first alternating round by round.
    """
    fns, prep, _, _ = _setup(args, encode=True)
    encoded, forward_one, run_one = prep["per_batch"]
    for k in VARIANTS:  # warm-up
        prep.get(k, lambda: None)()
        fns[k]()
    wall: dict[str, list[float]] = {k: [] for k in VARIANTS}
    cpu: dict[str, list[float]] = {k: [] for k in VARIANTS}
    one = {"forward": forward_one, "run": run_one}
    for r in range(args.rounds):
        w = {"forward": 0.0, "run": 0.0}
        c = {"forward": 0.0, "run": 0.0}
        for i, enc in enumerate(encoded):
            for k in ("forward", "run") if (r + i) % 2 == 0 else ("run", "forward"):
                t0, c0 = time.perf_counter(), time.process_time()
                one[k](enc)
                w[k] += time.perf_counter() - t0
                c[k] += time.process_time() - c0
        for k in ("forward", "run"):
            wall[k].append(w[k])
            cpu[k].append(c[k])
        for k in ("hand", "extract") if r % 2 == 0 else ("extract", "hand"):
            prep.get(k, lambda: None)()
            t0, c0 = time.perf_counter(), time.process_time()
            fns[k]()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    prep["cleanup"]()
    return {"wall": wall, "cpu": cpu}


def _quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def _summarise(times: dict[str, dict[str, list[float]]]) -> tuple[dict, dict]:
    per_variant = {
        k: {clock: statistics.median(times[clock][k]) for clock in ("cpu", "wall")} for k in VARIANTS
    }
    ratios = {}
    for a, b in RATIOS:
        entry = {}
        for clock in ("cpu", "wall"):
            paired = [x / y for x, y in zip(times[clock][a], times[clock][b])]
            q1, med, q3 = _quartiles(paired)
            entry[clock] = {"median": med, "q1": q1, "q3": q3}
        ratios[f"{a}/{b}"] = entry
    return per_variant, ratios


def _markdown(meta: dict, per_variant: dict, ratios: dict, memory: dict) -> str:
    n = meta["n"]
    lines = [
        f"Extraction benchmark: tiny LLaVA ({meta['layers']} decoder layers, d=32), {n} easy-vqa samples, "
        f"batch {meta['batch_size']}, device {meta['device']}, {meta['threads']} torch thread(s); "
        f"{meta['rounds']} interleaved rounds, medians; {meta['machine']}, {meta['cpus']} CPUs, load average "
        f"{meta['load_start']:.1f} at start and {meta['load_end']:.1f} at end; {meta['date']}.",
        "",
        "| variant | what it does | CPU s | wall s | CPU ms/sample | peak RSS MiB | RSS growth MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    what = {
        "forward": "bare forward, output_hidden_states=True (pre-encoded)",
        "run": "adapter.run: hooks + pooling (pre-encoded)",
        "hand": "images + processor + bare forward",
        "extract": "mmpid.extract.extract to a store",
    }
    for k in VARIANTS:
        v, m = per_variant[k], memory[k]
        extra = f" (CUDA peak {m['peak_cuda_mib']:.1f} MiB)" if "peak_cuda_mib" in m else ""
        lines.append(
            f"| {k} | {what[k]} | {v['cpu']:.3f} | {v['wall']:.3f} | {1000 * v['cpu'] / n:.3f} | "
            f"{m['peak_rss_mib']:.1f} | {m['growth_mib']:.1f}{extra} |"
        )
    lines += ["", "| ratio | CPU: median [q1, q3] | overhead | wall: median [q1, q3] | overhead |", "|---|---|---|---|---|"]
    for name, r in ratios.items():
        c, w = r["cpu"], r["wall"]
        lines.append(
            f"| {name} | {c['median']:.3f} [{c['q1']:.3f}, {c['q3']:.3f}] | {100 * (c['median'] - 1):+.1f}% | "
            f"{w['median']:.3f} [{w['q1']:.3f}, {w['q3']:.3f}] | {100 * (w['median'] - 1):+.1f}% |"
        )
    lines += [
        "",
        "Ratios are medians of per-round ratios (forward and run alternate batch by batch; hand and extract "
        "run back to back). "
        "CPU time is the process's own; on a shared machine wall-clock also counts time spent waiting for a core.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--rounds", type=int, default=31)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(_timing(args) if args.variant == "timing" else _memory(args)))
        return

    import transformers

    from tiny_models import build_llava

    load_start = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as d:
        model = str(build_llava(Path(d) / "llava", layers=args.layers))
        common = ["--model", model, "--n", str(args.n), "--batch-size", str(args.batch_size)]
        common += ["--rounds", str(args.rounds), "--device", args.device, "--threads", str(args.threads)]

        def child(variant: str) -> dict:
            cmd = [sys.executable, __file__, "--variant", variant, *common]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            return json.loads(proc.stdout.strip().splitlines()[-1])

        times = child("timing")
        memory = {v: child(v) for v in VARIANTS}
    per_variant, ratios = _summarise(times)
    meta = {
        "model": "tiny LLaVA (tests/tiny_models.build_llava)",
        "layers": args.layers,
        "n": args.n,
        "batch_size": args.batch_size,
        "device": args.device,
        "threads": args.threads,
        "rounds": args.rounds,
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    md = _markdown(meta, per_variant, ratios, memory)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {"meta": meta, "median_seconds": per_variant, "ratios": ratios, "memory": memory, "rounds": times}
    (args.out / "extract.json").write_text(json.dumps(payload, indent=1))
    (args.out / "extract.md").write_text(md)


if __name__ == "__main__":
    main()
