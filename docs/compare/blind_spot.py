"""The blind spot on trained models: each method and PID on easy-vqa subsets of known structure.

Subsets of the test split (questions whose image's shape and colour are known):
``what-color`` and ``what-shape`` (once the question type is fixed, the answer is unique to the
image) and ``yes/no`` ("is there a red shape?": neither the question nor the image alone
determines the answer: synergy). For each zoo model and subset: every method's image share, the
two-player interaction, PID of the pooled input embeddings -> ŷ (mmpid.compare), and the oracle
PID of the latents (image shape x colour, question meaning) -> ŷ.

    python docs/compare/blind_spot.py [--n 300] [--models normal,blind] [--threads 2]

Writes docs/compare/blind_spot.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
SUBSETS = ("what-color", "what-shape", "yes/no")
ATOMS = ("redundancy", "unique_image", "unique_text", "synergy")
SHORT = {"redundancy": "R", "unique_image": "U_I", "unique_text": "U_T", "synergy": "S"}


def subset(name: str, n: int, seed: int):
    import numpy as np

    from mmpid.data import VQADataset, load_dataset
    from mmpid.zoo.latents import latents

    full = load_dataset("easy-vqa", split="test")
    lat = latents("test")
    names = np.array(lat.meaning_names)[lat.meaning]
    match = np.char.startswith(names.astype(str), "yes/no") if name == "yes/no" else names == name
    idx = np.flatnonzero(match & lat.known)
    idx = np.sort(np.random.default_rng(seed).choice(idx, size=min(n, idx.size), replace=False))
    ds = VQADataset([full[int(i)] for i in idx], name=f"easy-vqa {name}", split="test", answers=full.answers)
    return ds, lat.image[idx], lat.meaning[idx]


def predictions(adapter, ds):
    import numpy as np
    import torch

    from mmpid.baselines._core import iter_probes

    with torch.no_grad():
        return np.concatenate([p.pred for p, _ in iter_probes(adapter, ds, batch_size=64)])


def oracle(image, meaning, pred, seed):
    import numpy as np

    import mmpid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant meaning within a question type is expected
        est = mmpid.estimate(image.astype(np.int64), meaning.astype(np.int64), pred.astype(np.int64), seed=seed,
                             n_bootstrap=200, n_permutations=50)
    return {a: {"value": float(getattr(est, a).corrected), "ci_low": float(getattr(est, a).ci_low),
                "ci_high": float(getattr(est, a).ci_high)} for a in ATOMS}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--models", default="normal,blind")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--max-evals", type=int, default=60)
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pid-n", type=int, default=3000, help="questions for the PID-only rows (0: none)")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md and .png from the .json")
    args = ap.parse_args()
    if args.render:
        data = json.loads((HERE / "blind_spot.json").read_text())
        write_md(data["rows"], argparse.Namespace(**data["settings"]), data.get("pid_rows", []))
        figure(data["rows"])
        return

    import torch

    from mmpid.baselines import compare
    from mmpid.models import load_adapter

    torch.set_num_threads(args.threads)
    rows = []
    for model in args.models.split(","):
        adapter = load_adapter(f"zoo:{model}", device="cpu")
        for name in SUBSETS:
            t0 = time.perf_counter()
            ds, image, meaning = subset(name, args.n, args.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = compare(adapter, ds, max_evals=args.max_evals, ig_steps=args.ig_steps, seed=args.seed)
            pred = predictions(adapter, ds)
            row = {
                "model": model, "subset": name, "n": len(ds),
                "shares": {k: r.image_share.to_dict() for k, r in c.methods.items()},
                "interaction": c.methods["shapley"].stats["interaction"].to_dict(),
                "phi_image": c.methods["shapley"].stats["phi_image"].to_dict(),
                "phi_text": c.methods["shapley"].stats["phi_text"].to_dict(),
                "blank_dlogp": c.methods["ablation"].stats["blank_image_dlogp"].to_dict(),
                "accuracy": c.methods["ablation"].stats["accuracy"].value,
                "pid": c.pid, "oracle": oracle(image, meaning, pred, args.seed),
                "errors": c.errors, "seconds": time.perf_counter() - t0,
            }
            rows.append(row)
            print(json.dumps({k: row[k] for k in ("model", "subset", "n", "seconds")}), flush=True)
    pid_rows = []
    if args.pid_n:
        from mmpid.baselines.comparison import pid_of_predictions

        for model in args.models.split(","):
            adapter = load_adapter(f"zoo:{model}", device="cpu")
            for name in SUBSETS:
                ds, image, meaning = subset(name, args.pid_n, args.seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pid = pid_of_predictions(adapter, ds, seed=args.seed)
                pred = predictions(adapter, ds)
                pid_rows.append({"model": model, "subset": name, "n": len(ds), "pid": pid,
                                 "oracle": oracle(image, meaning, pred, args.seed)})
                print(json.dumps({"model": model, "subset": name, "n": len(ds)}), flush=True)
    (HERE / "blind_spot.json").write_text(json.dumps({"settings": vars(args), "rows": rows, "pid_rows": pid_rows}, indent=2))
    write_md(rows, args, pid_rows)
    figure(rows)


def _f(x):
    return f"{x['value']:.2f}"


def _ci(x):
    return f"{x['value']:.2f} [{x['ci_low']:.2f}, {x['ci_high']:.2f}]"


def dominant(atoms):
    """The largest atom whose interval clears 0; "none" when no atom does."""
    clear = [a for a in ATOMS if atoms[a]["ci_low"] > 0]
    return SHORT[max(clear, key=lambda a: atoms[a]["value"])] if clear else "none"


def order(atoms):
    """The atoms whose interval clears 0, largest first."""
    clear = sorted((a for a in ATOMS if atoms[a]["ci_low"] > 0), key=lambda a: -atoms[a]["value"])
    return " > ".join(SHORT[a] for a in clear) or "none"


def write_md(rows, args, pid_rows=()):
    methods = ("ablation", "perceptual", "shapley", "mmshap", "ig", "attention")
    lines = [
        f"zoo models on easy-vqa test subsets ({args.n} questions each, latents known; MM-SHAP max_evals="
        f"{args.max_evals}, IG {args.ig_steps} steps). Image share per method; PID = pooled input embeddings -> ŷ "
        "(corrected bits, 95% interval); oracle = latents (image shape x colour, question meaning) -> ŷ.",
        "",
        "| model | subset | acc | " + " | ".join(methods) + " | Shapley interaction (bits) | PID C_image |",
        "|---|---|---|" + "---|" * len(methods) + "---|---|",
    ]
    for r in rows:
        shares = " | ".join(_f(r["shares"][m]) if m in r["shares"] else "n/a" for m in methods)
        c = r["pid"].get("contribution_image")
        lines.append(f"| {r['model']} | {r['subset']} | {r['accuracy']:.2f} | {shares} | {_ci(r['interaction'])} | "
                     f"{_f(c) if c else 'n/a'} |")
    for title, table in (("same questions", rows), ("PID and oracle only, more questions", pid_rows)):
        if not table:
            continue
        lines += ["", f"PID beside the oracle ({title}; atoms whose interval clears 0, largest first):", "",
                  "| model | subset | N | PID R | PID U_I | PID U_T | PID S | PID order | oracle R | oracle U_I | "
                  "oracle U_T | oracle S | oracle order |", "|---|---|---|" + "---|" * 10]
        for r in table:
            p, o = r["pid"], r["oracle"]
            lines.append(f"| {r['model']} | {r['subset']} | {r['n']} | " + " | ".join(_ci(p[a]) for a in ATOMS)
                         + f" | {order(p)} | " + " | ".join(_ci(o[a]) for a in ATOMS) + f" | {order(o)} |")
    (HERE / "blind_spot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def figure(rows):
    import numpy as np
    from matplotlib.figure import Figure

    methods = ("ablation", "perceptual", "shapley", "mmshap", "ig", "attention")
    fig = Figure(figsize=(12, 3.2 * 2), layout="constrained")
    axes = fig.subplots(2, len(rows) // 2 if len(rows) > 1 else 1, squeeze=False)
    for ax, r in zip(axes.flat, rows):
        names = [m for m in methods if m in r["shares"]] + ["PID C_image"]
        vals = [r["shares"][m]["value"] for m in names[:-1]] + [r["pid"]["contribution_image"]["value"]]
        ax.barh(np.arange(len(names)), vals, color=["#56B4E9"] * (len(names) - 1) + ["#0072B2"])
        ax.set_yticks(np.arange(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        atoms = " ".join(f"{SHORT[a]}={r['oracle'][a]['value']:.2f}" for a in ATOMS)
        pid = " ".join(f"{SHORT[a]}={r['pid'][a]['value']:.2f}" for a in ATOMS)
        ax.set_title(f"{r['model']}, {r['subset']}\noracle {atoms}\nPID {pid}", fontsize=8)
        ax.set_xlabel("image share", fontsize=8)
    fig.savefig(HERE / "blind_spot.png", dpi=110)


if __name__ == "__main__":
    main()
