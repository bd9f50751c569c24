"""The blind spot on trained models: each method and PID on easy-vqa subsets of known structure.

Subsets of the ``easy-vqa-hinted`` test split (questions whose image's shape and colour are known;
:func:`mmpid.zoo.latents.subset_indices`):

- ``what-color`` and ``what-shape`` without a hint: once the question type is fixed, the answer is
  unique to the image;
- ``yes/no`` ("is there a red shape?"): neither the question nor the image alone determines the
  answer: synergy;
- ``hinted what-color`` and ``hinted what-shape`` ("the shape is red. what color is the shape?"):
  image and text each determine the answer: redundancy.

For each zoo model and subset: every method's image share, the two-player interaction, PID of the
pooled input embeddings -> ŷ (mmpid.compare), and the oracle PID of the latents (image shape x
colour; question meaning, times the stated answer on hinted questions) -> ŷ. Then PID and the
oracle alone on every known question of each subset (up to --pid-n), and the issue's targets
checked on those.

    python docs/compare/blind_spot.py [--n 200] [--models normal,blind,hinted] [--threads 1]
    python docs/compare/blind_spot.py --render        # rewrite .md and .png from the .json

Rows already in docs/compare/blind_spot.json with the same settings are kept (the run resumes);
--fresh recomputes them. Writes docs/compare/blind_spot.{json,md,png}.
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
JSON = HERE / "blind_spot.json"
SUBSETS = ("what-color", "what-shape", "yes/no", "hinted what-color", "hinted what-shape")
STRUCTURE = {"what-color": "unique (image)", "what-shape": "unique (image)", "yes/no": "synergy",
             "hinted what-color": "redundancy", "hinted what-shape": "redundancy"}
ATOMS = ("redundancy", "unique_image", "unique_text", "synergy")
SHORT = {"redundancy": "R", "unique_image": "U_I", "unique_text": "U_T", "synergy": "S"}
METHODS = ("ablation", "perceptual", "shapley", "mmshap", "ig", "attention")


def subset(name: str, n: int, seed: int):
    """The dataset of up to ``n`` known questions of subset ``name``, their image and text latents."""
    import numpy as np

    from mmpid.data import VQADataset, load_dataset
    from mmpid.data.hints import DEFAULT_HINTS
    from mmpid.zoo.latents import latents, subset_indices, text_latent

    full = load_dataset("easy-vqa-hinted", split="test")
    idx = subset_indices(name, "test", hints=DEFAULT_HINTS)
    if idx.size > n:
        idx = np.sort(np.random.default_rng(seed).choice(idx, size=n, replace=False))
    ds = VQADataset([full[int(i)] for i in idx], name=f"easy-vqa-hinted {name}", split="test", answers=full.answers)
    return ds, latents("test").image[idx], text_latent("test", DEFAULT_HINTS).label[idx]


def predictions(adapter, ds):
    import numpy as np
    import torch

    from mmpid.baselines._core import iter_probes

    with torch.no_grad():
        return np.concatenate([p.pred for p, _ in iter_probes(adapter, ds, batch_size=64)])


def oracle(image, text, pred, seed):
    """The oracle PID (corrected bits, 95% interval) of the latents -> ŷ on one subset."""
    import numpy as np

    import mmpid

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant text latent within a question type is expected
        est = mmpid.estimate(image.astype(np.int64), text.astype(np.int64), pred.astype(np.int64), seed=seed,
                             n_bootstrap=200, n_permutations=50)
    return {a: {"value": float(getattr(est, a).corrected), "ci_low": float(getattr(est, a).ci_low),
                "ci_high": float(getattr(est, a).ci_high)} for a in ATOMS}


def _settings_key(args) -> dict:
    return {k: getattr(args, k) for k in ("n", "max_evals", "ig_steps", "seed", "pid_n")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--models", default="normal,blind,hinted")
    ap.add_argument("--subsets", default=",".join(SUBSETS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--max-evals", type=int, default=64)
    ap.add_argument("--ig-steps", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pid-n", type=int, default=3000, help="questions for the PID-only rows (0: none)")
    ap.add_argument("--render", action="store_true", help="only rewrite the .md and .png from the .json")
    ap.add_argument("--fresh", action="store_true", help="recompute rows already in the .json")
    args = ap.parse_args()
    old = json.loads(JSON.read_text()) if JSON.is_file() else {}
    if args.render:
        write_md(old["rows"], old["settings"], old.get("pid_rows", []))
        figure(old["rows"], old.get("pid_rows", []))
        return
    same = not args.fresh and old.get("settings", {}).get("key") == _settings_key(args)
    rows = {(r["model"], r["subset"]): r for r in old.get("rows", [])} if same else {}
    pid_rows = {(r["model"], r["subset"]): r for r in old.get("pid_rows", [])} if same else {}

    import torch

    from mmpid.baselines import compare
    from mmpid.baselines.comparison import pid_of_predictions
    from mmpid.models import load_adapter

    torch.set_num_threads(args.threads)
    settings = {**vars(args), "key": _settings_key(args)}
    models, subsets = args.models.split(","), args.subsets.split(",")

    def save() -> None:
        order = {(m, s): i for i, (m, s) in enumerate((m, s) for m in ("normal", "blind", "hinted") for s in SUBSETS)}
        data = {"settings": settings,
                "rows": sorted(rows.values(), key=lambda r: order.get((r["model"], r["subset"]), 99)),
                "pid_rows": sorted(pid_rows.values(), key=lambda r: order.get((r["model"], r["subset"]), 99))}
        JSON.write_text(json.dumps(data, indent=2))

    for model in models:
        adapter = load_adapter(f"zoo:{model}", device="cpu")
        for name in subsets:
            if (model, name) in rows:
                continue
            t0 = time.perf_counter()
            ds, image, text = subset(name, args.n, args.seed)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                c = compare(adapter, ds, max_evals=args.max_evals, ig_steps=args.ig_steps, seed=args.seed)
            pred = predictions(adapter, ds)
            rows[model, name] = {
                "model": model, "subset": name, "n": len(ds),
                "shares": {k: r.image_share.to_dict() for k, r in c.methods.items()},
                "interaction": c.methods["shapley"].stats["interaction"].to_dict(),
                "phi_image": c.methods["shapley"].stats["phi_image"].to_dict(),
                "phi_text": c.methods["shapley"].stats["phi_text"].to_dict(),
                "blank_dlogp": c.methods["ablation"].stats["blank_image_dlogp"].to_dict(),
                "accuracy": c.methods["ablation"].stats["accuracy"].value,
                "pid": c.pid, "oracle": oracle(image, text, pred, args.seed),
                "errors": c.errors, "seconds": time.perf_counter() - t0,
            }
            save()
            print(json.dumps({"model": model, "subset": name, "n": len(ds), "s": round(time.perf_counter() - t0)}),
                  flush=True)
    if args.pid_n:
        for model in models:
            adapter = load_adapter(f"zoo:{model}", device="cpu")
            for name in subsets:
                if (model, name) in pid_rows:
                    continue
                t0 = time.perf_counter()
                ds, image, text = subset(name, args.pid_n, args.seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    pid = pid_of_predictions(adapter, ds, seed=args.seed)
                pred = predictions(adapter, ds)
                pid_rows[model, name] = {"model": model, "subset": name, "n": len(ds), "pid": pid,
                                         "oracle": oracle(image, text, pred, args.seed),
                                         "accuracy": float((pred == [ds.label(s.answer) for s in ds]).mean())}
                save()
                print(json.dumps({"model": model, "subset": name, "n": len(ds),
                                  "s": round(time.perf_counter() - t0)}), flush=True)
    data = json.loads(JSON.read_text())
    write_md(data["rows"], data["settings"], data["pid_rows"])
    figure(data["rows"], data["pid_rows"])


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


def _disjoint(a, b) -> bool:
    return a["ci_high"] < b["ci_low"] or b["ci_high"] < a["ci_low"]


def targets(table):
    """The issue's bars on one table of rows: per model, redundant vs synergistic subsets separated;
    per row, PID's ordering of the atoms that clear 0 equal to the oracle's."""
    by = {(r["model"], r["subset"]): r for r in table}
    out = []
    for model in dict.fromkeys(r["model"] for r in table):
        syn = by.get((model, "yes/no"))
        for red_name in ("hinted what-color", "hinted what-shape"):
            red = by.get((model, red_name))
            if not (syn and red):
                continue
            p_red, p_syn = red["pid"], syn["pid"]
            d_red, d_syn = dominant(p_red), dominant(p_syn)
            o_red, o_syn = dominant(red["oracle"]), dominant(syn["oracle"])
            inv = {v: k for k, v in SHORT.items()}
            disjoint = (d_red != "none" and d_syn != "none" and d_red != d_syn
                        and _disjoint(p_red[inv[d_red]], p_syn[inv[d_red]])
                        and _disjoint(p_red[inv[d_syn]], p_syn[inv[d_syn]]))
            applies = o_red != "none" and o_syn != "none" and o_red != o_syn
            # separated, and as the oracle separates them (its dominant atoms on both subsets)
            met = disjoint and (d_red, d_syn) == (o_red, o_syn)
            out.append({"model": model, "what": f"separate {red_name} from yes/no",
                        "measured": f"PID dominant {d_red} ({_ci(p_red[inv[d_red]]) if d_red != 'none' else '-'}) vs "
                                    f"{d_syn} ({_ci(p_syn[inv[d_syn]]) if d_syn != 'none' else '-'}), intervals "
                                    f"{'' if disjoint else 'not '}disjoint; oracle dominant {o_red} vs {o_syn}",
                        "met": met if applies else None})
        for r in table:
            if r["model"] == model:
                p, o = order(r["pid"]), order(r["oracle"])
                lead = p == o or (o != "none" and p.startswith(o + " > "))
                note = "" if p == o else ("; the oracle's atoms lead PID's, in its order" if lead else "")
                out.append({"model": model, "what": f"order on {r['subset']} (N = {r['n']})",
                            "measured": f"PID {p}; oracle {o}{note}", "met": p == o})
    return out


def write_md(rows, settings, pid_rows=()):
    lines = [
        f"zoo models on easy-vqa-hinted test subsets ({settings['n']} questions each, latents known; MM-SHAP "
        f"max_evals={settings['max_evals']}, IG {settings['ig_steps']} steps, {settings['threads']} torch thread). "
        "Image share per method; PID = pooled input embeddings -> ŷ (corrected bits, 95% interval); oracle = latents "
        "(image shape x colour; question meaning, times the stated answer on hinted questions) -> ŷ.",
        "",
        "| model | subset | structure | acc | " + " | ".join(METHODS) + " | Shapley interaction (bits) | PID C_image |",
        "|---|---|---|---|" + "---|" * len(METHODS) + "---|---|",
    ]
    for r in rows:
        shares = " | ".join(_f(r["shares"][m]) if m in r["shares"] else "n/a" for m in METHODS)
        c = r["pid"].get("contribution_image")
        lines.append(f"| {r['model']} | {r['subset']} | {STRUCTURE[r['subset']]} | {r['accuracy']:.2f} | {shares} | "
                     f"{_ci(r['interaction'])} | {_f(c) if c else 'n/a'} |")
    for title, table in (("same questions", rows), ("PID and oracle only, every known question of the subset "
                                                    f"up to {settings['pid_n']}", pid_rows)):
        if not table:
            continue
        lines += ["", f"PID beside the oracle ({title}; order: the atoms whose interval clears 0, largest first):", "",
                  "| model | subset | N | PID R | PID U_I | PID U_T | PID S | PID order | oracle R | oracle U_I | "
                  "oracle U_T | oracle S | oracle order |", "|---|---|---|" + "---|" * 10]
        for r in table:
            p, o = r["pid"], r["oracle"]
            lines.append(f"| {r['model']} | {r['subset']} | {r['n']} | " + " | ".join(_ci(p[a]) for a in ATOMS)
                         + f" | {order(p)} | " + " | ".join(_ci(o[a]) for a in ATOMS) + f" | {order(o)} |")
    for title, table in (("same questions", rows), ("more questions", pid_rows)):
        checks = targets(table)
        if not checks:
            continue
        lines += ["", f"The targets, checked on the PID rows ({title}):", "", "| model | target | measured | met |",
                  "|---|---|---|---|"]
        verdict = {True: "yes", False: "**no**", None: "n/a (the oracle does not separate them either)"}
        lines += [f"| {c['model']} | {c['what']} | {c['measured']} | {verdict[c['met']]} |" for c in checks]
    (HERE / "blind_spot.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def figure(rows, pid_rows=()):
    """One column per subset, one pair of rows per model: method image shares; PID vs oracle atoms."""
    import numpy as np
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(r["model"] for r in rows))
    subsets = [s for s in SUBSETS if any(r["subset"] == s for r in rows)]
    by = {(r["model"], r["subset"]): r for r in rows}
    big = {(r["model"], r["subset"]): r for r in pid_rows}
    fig = Figure(figsize=(3.1 * len(subsets), 4.6 * len(models)), layout="constrained")
    grid = fig.subplots(2 * len(models), len(subsets), squeeze=False,
                        gridspec_kw={"height_ratios": [1.25, 1] * len(models)})
    colors = {"oracle": "#999999", "PID": "#0072B2"}
    for i, model in enumerate(models):
        for j, name in enumerate(subsets):
            ax, ax2 = grid[2 * i, j], grid[2 * i + 1, j]
            r = by.get((model, name))
            if r is None:
                ax.set_visible(False)
                ax2.set_visible(False)
                continue
            names = [m for m in METHODS if m in r["shares"]] + ["PID C_image"]
            c = r["pid"].get("contribution_image", {"value": np.nan})
            vals = [r["shares"][m]["value"] for m in names[:-1]] + [c["value"]]
            ax.barh(np.arange(len(names)), np.nan_to_num(vals), color=["#56B4E9"] * (len(names) - 1) + ["#0072B2"])
            ax.set_yticks(np.arange(len(names)), names, fontsize=7)
            ax.invert_yaxis()
            ax.set_xlim(0, 1)
            ax.tick_params(axis="x", labelsize=7)
            ax.set_title(f"{model}: {name}\n({STRUCTURE[name]}; interaction {r['interaction']['value']:+.1f} bits)",
                         fontsize=8)
            ax.set_xlabel("image share", fontsize=7)
            src = big.get((model, name), r)
            x = np.arange(len(ATOMS))
            for k, (label, atoms) in enumerate((("oracle", src["oracle"]), ("PID", src["pid"]))):
                v = np.array([atoms[a]["value"] for a in ATOMS])
                err = np.array([[max(0.0, atoms[a]["value"] - atoms[a]["ci_low"]) for a in ATOMS],
                                [max(0.0, atoms[a]["ci_high"] - atoms[a]["value"]) for a in ATOMS]])
                ax2.bar(x + (k - 0.5) * 0.38, v, 0.38, yerr=err, color=colors[label], label=label, capsize=2)
            ax2.set_xticks(x, [SHORT[a] for a in ATOMS], fontsize=7)
            ax2.axhline(0, color="black", lw=0.5)
            lo, hi = ax2.get_ylim()
            ax2.set_ylim(min(lo, -0.1), max(hi, 0.5))
            ax2.tick_params(axis="y", labelsize=7)
            ax2.set_ylabel("bits", fontsize=7)
            ax2.set_title(f"atoms, N = {src['n']}", fontsize=7)
            if i == 0 and j == 0:
                ax2.legend(fontsize=6)
    fig.savefig(HERE / "blind_spot.png", dpi=100)


if __name__ == "__main__":
    main()
