"""Extraction overhead over a bare forward pass, and peak memory, on a tiny LLaVA on CPU.

The variants run over the same easy-vqa batches:

reference   load images + processor + ``model(**inputs, output_hidden_states=True)``
            (what one would write by hand to get every layer's hidden states)
extract     ``mmpid.extract.extract`` end to end: the same work plus span finding,
            hook capture and pooling, answer scoring and the store's shard writes
forward     the bare forward pass alone, on batches encoded beforehand
run         ``adapter.run`` alone (hooks + pooling, no full-sequence LM head), same batches

Timing: one process, the variants interleaved round by round, best of
``--repeats`` rounds each, as wall-clock and as CPU time of the process (on a
shared machine the CPU time is the steadier of the two). Memory: each variant once
more in its own fresh process, reporting its peak RSS and the growth of the peak
over the RSS after loading (and the CUDA peak on a GPU). Ratios are against the reference measured in the same run. Usage::

    python benchmarks/extract.py [--n 256] [--batch-size 16] [--layers 4] [--repeats 3] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup(args: argparse.Namespace) -> tuple[dict, object]:
    import torch

    from mmpid.data import load_dataset
    from mmpid.extract import extract
    from mmpid.models import load_adapter

    torch.manual_seed(0)
    adapter = load_adapter(args.model, device=args.device)
    data = load_dataset("easy-vqa", limit=args.n, seed=0)
    batches = [data[i : i + args.batch_size] for i in range(0, len(data), args.batch_size)]
    sync = torch.cuda.synchronize if adapter.device.type == "cuda" else (lambda: None)
    if adapter.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    base_rss = _peak_rss_mib()

    def reference() -> None:
        with torch.inference_mode():
            for batch in batches:
                images = [[s.image] for s in batch]
                prompts = [adapter.build_prompt(s.question) for s in batch]
                inputs = adapter._call_processor(images, prompts)
                inputs = {
                    k: (v.to(adapter.device, adapter.dtype) if torch.is_floating_point(v) else v.to(adapter.device))
                    for k, v in inputs.items()
                }
                out = adapter.model(**inputs, output_hidden_states=True, use_cache=False)
                _ = [h[:, -1].float().cpu() for h in out.hidden_states]
            sync()

    encoded = None
    if args.variant in ("forward", "run", "timing"):
        encoded = [adapter.encode([s.image for s in b], [s.question for s in b]) for b in batches]

    def forward() -> None:
        with torch.inference_mode():
            for enc in encoded:
                out = adapter.model(**enc.inputs, output_hidden_states=True, use_cache=False)
                _ = [h[:, -1].float().cpu() for h in out.hidden_states]
            sync()

    def run() -> None:
        for enc in encoded:
            adapter.run(enc)
        sync()

    def full() -> None:
        with tempfile.TemporaryDirectory() as d:
            extract(adapter, data, Path(d) / "store", batch_size=args.batch_size, progress=False)
        sync()

    fns = {"reference": reference, "extract": full, "forward": forward, "run": run}
    return fns, (adapter, base_rss)


VARIANTS = ("reference", "extract", "forward", "run")


def _memory(args: argparse.Namespace) -> dict[str, float]:
    """Run one variant once in this (fresh) process; its peak memory."""
    import torch

    fns, (adapter, base_rss) = _setup(args)
    fns[args.variant]()
    out = {"peak_rss_mib": _peak_rss_mib(), "growth_mib": _peak_rss_mib() - base_rss}
    if adapter.device.type == "cuda":
        out["peak_cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def _timing(args: argparse.Namespace) -> dict[str, float]:
    """All variants interleaved, best of ``repeats`` rounds."""
    args.variant = "forward"  # encode batches for forward/run
    fns, _ = _setup(args)
    for fn in fns.values():
        fn()  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in VARIANTS}
    cpu: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for _ in range(args.repeats):
        for k in VARIANTS:
            t0, c0 = time.perf_counter(), time.process_time()
            fns[k]()
            wall[k].append(time.perf_counter() - t0)
            cpu[k].append(time.process_time() - c0)
    return {**{k: min(v) for k, v in wall.items()}, **{f"{k}_cpu": min(v) for k, v in cpu.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--variant", help=argparse.SUPPRESS)
    p.add_argument("--model", help=argparse.SUPPRESS)
    args = p.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    if args.variant:
        print(json.dumps(_timing(args) if args.variant == "timing" else _memory(args)))
        return

    from tiny_models import build_llava

    with tempfile.TemporaryDirectory() as d:
        model = str(build_llava(Path(d) / "llava", layers=args.layers))
        common = ["--model", model, "--n", str(args.n), "--batch-size", str(args.batch_size)]
        common += ["--repeats", str(args.repeats), "--device", args.device, "--threads", str(args.threads)]

        def child(variant: str) -> dict[str, float]:
            cmd = [sys.executable, __file__, "--variant", variant, *common]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
            return json.loads(proc.stdout.strip().splitlines()[-1])

        seconds = child("timing")
        memory = {v: child(v) for v in VARIANTS}
    print(f"tiny LLaVA ({args.layers} decoder layers, d=32), {args.n} easy-vqa samples, batch {args.batch_size}, "
          f"device {args.device}, {args.threads} thread(s), best of {args.repeats} interleaved rounds")
    print(f"{'variant':<10} {'wall s':>9} {'CPU s':>9} {'ms/sample':>10} {'peak RSS MiB':>13} {'growth MiB':>11}")
    for k in VARIANTS:
        m = memory[k]
        line = (
            f"{k:<10} {seconds[k]:9.3f} {seconds[k + '_cpu']:9.3f} {1000 * seconds[k] / args.n:10.3f} "
            f"{m['peak_rss_mib']:13.1f} {m['growth_mib']:11.1f}"
        )
        if "peak_cuda_mib" in m:
            line += f"  cuda peak {m['peak_cuda_mib']:.1f} MiB"
        print(line)
    for clock, suffix in (("wall", ""), ("CPU", "_cpu")):
        ratio = seconds["extract" + suffix] / seconds["reference" + suffix]
        ratio_fw = seconds["run" + suffix] / seconds["forward" + suffix]
        print(
            f"{clock:>4}: extract / reference = {ratio:.3f} ({100 * (ratio - 1):+.1f}%);  "
            f"adapter.run / bare forward = {ratio_fw:.3f} ({100 * (ratio_fw - 1):+.1f}%)"
        )


if __name__ == "__main__":
    main()
