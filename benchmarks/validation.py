"""Validation against answers known independently of the estimator.

1. **The zoo against its oracle.** For `zoo:normal`, `zoo:blind` and `zoo:shuffle` on the
   easy-vqa test split: the oracle (the PID of the model's predictions from easy-vqa's own
   latents, integer labels, :mod:`mmpid.zoo.oracle`) beside mmpid's estimates from the
   embeddings (span protocol at every layer, input-fusion at every layer), on the oracle's
   questions, with the default resolution rule ("auto") and the old one ("conservative"),
   and the issue's targets checked.
2. **No invented information.** Over many seeds, how often an atom's interval excludes 0 on
   data with nothing to find: synthetic `independent` (N = 3,000, 64-d, embedded target) and
   `zoo:normal`'s span features with the prediction permuted. Nominal: at most 5%.
3. **Many latent classes.** The synthetic structures with 16-32 latent classes per source at
   N = 10,000: every atom within 0.05 bits of the truth.

Run: python benchmarks/validation.py [--seeds 100] [--sections zoo null classes]
Writes benchmarks/results/validation.{json,md}. About 20-30 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
BITS = ("redundancy", "unique_image", "unique_text", "synergy")
SHORT = {"redundancy": "R", "unique_image": "U_image", "unique_text": "U_text", "synergy": "S"}


def _quiet(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    from mmpid.errors import EstimateWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimateWarning)
        return fn(*args, **kwargs)


def _row(est) -> dict:  # type: ignore[no-untyped-def]
    out = {a: [est[a].corrected, est[a].ci_low, est[a].ci_high] for a in BITS}
    out["total"] = float(sum(est[a].corrected for a in BITS))
    c = est.contribution_image
    out["contribution_image"] = [c.corrected, c.ci_low, c.ci_high]
    out["clusters"] = dict(est.clusters)
    return out


def _stores(model: str, root: Path) -> dict[str, object]:
    from mmpid.data import load_dataset
    from mmpid.extract import extract
    from mmpid.models.registry import load_adapter
    from mmpid.store import FeatureStore

    adapter = load_adapter(f"zoo:{model}", device="cpu")
    data = load_dataset("easy-vqa", split="test")
    out = {}
    for protocol in ("span", "input-fusion"):
        path = root / f"{model}-{protocol}"
        extract(adapter, data, path, protocol=protocol, target="prediction", batch_size=64,
                progress=False)
        out[protocol] = FeatureStore.open(path)
    return out


def zoo(args: argparse.Namespace) -> dict:
    from mmpid.estimate import estimate
    from mmpid.zoo.oracle import known, oracle_of_store

    settings = {"n_bootstrap": args.bootstrap, "n_permutations": args.permutations, "seed": 0}
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in ("normal", "shuffle", "blind"):
            stores = _stores(model, Path(tmp))
            orc = _quiet(oracle_of_store, stores["span"], **settings)
            results[model] = {"oracle": _row(orc), "n": orc.n}
            print(f"\n{model}: oracle on {orc.n} questions: {_fmt(_row(orc))}", flush=True)
            for protocol, store in stores.items():
                keep = known(store.sample_ids)
                layers = store.layers[1:] if protocol == "input-fusion" else store.layers
                for layer in layers:
                    x1, x2, y = (a[keep] for a in store.load(layer))
                    for rule in ("auto", "conservative"):
                        if rule == "conservative" and layer not in (layers[0], layers[-1]):
                            continue
                        t = time.perf_counter()
                        est = _quiet(estimate, x1, x2, y, clusters=rule, **settings)
                        row = {**_row(est), "seconds": time.perf_counter() - t}
                        results[model][f"{protocol}/{layer}/{rule}"] = row
                        print(f"  {protocol:12s} layer {layer} {rule:12s} {_fmt(row)} "
                              f"({row['seconds']:.0f} s)", flush=True)
    results["targets"] = _zoo_targets(results)
    return results


def _fmt(row: dict) -> str:
    atoms = " ".join(f"{SHORT[a]} {row[a][0]:+.3f}" for a in BITS)
    k = row.get("clusters")
    ks = f" k {k['image']}x{k['text']}x{k['target']}" if k else ""
    return f"{atoms} total {row['total']:.3f} C {100 * row['contribution_image'][0]:.1f}%{ks}"


def _zoo_targets(results: dict) -> list[dict]:
    """The resolution issue's bars, each with what was measured."""
    checks = []
    for model in ("normal", "shuffle"):
        o = results[model]["oracle"]
        span0 = results[model]["span/0/auto"]
        last_if = max(k for k in results[model] if k.startswith("input-fusion/") and k.endswith("/auto"))
        fusion = results[model][last_if]
        worst = max(abs(span0[a][0] - o[a][0]) for a in BITS)
        checks += [
            {"target": f"{model}, span layer 0: every atom within 0.15 bits of the oracle",
             "measured": f"largest difference {worst:.3f} bits", "met": worst <= 0.15},
            {"target": f"{model}, span layer 0: total >= 90% of the oracle's",
             "measured": f"{100 * span0['total'] / o['total']:.0f}%",
             "met": span0["total"] >= 0.9 * o["total"]},
            {"target": f"{model}, span layer 0: image contribution within 3 points",
             "measured": f"{100 * span0['contribution_image'][0]:.1f}% vs "
                         f"{100 * o['contribution_image'][0]:.1f}%",
             "met": abs(span0["contribution_image"][0] - o["contribution_image"][0]) <= 0.03},
            {"target": f"{model}, input-fusion last layer: total >= 90% of the oracle's",
             "measured": f"{100 * fusion['total'] / o['total']:.0f}%",
             "met": fusion["total"] >= 0.9 * o["total"]},
            {"target": f"{model}, input-fusion last layer: image contribution within 3 points",
             "measured": f"{100 * fusion['contribution_image'][0]:.1f}% vs "
                         f"{100 * o['contribution_image'][0]:.1f}%",
             "met": abs(fusion["contribution_image"][0] - o["contribution_image"][0]) <= 0.03},
        ]
    blind = [v for k, v in results["blind"].items() if k.endswith("/auto")]
    worst = max(abs(r[a][0]) for r in blind for a in ("unique_image", "synergy"))
    covered = all(r[a][1] <= 0 <= r[a][2] for r in blind for a in ("unique_image", "synergy"))
    checks.append({"target": "blind, every layer, both protocols: U_image and S within "
                             "+-0.02 bits, intervals containing 0",
                   "measured": f"largest |atom| {worst:.3f} bits, intervals contain 0: {covered}",
                   "met": worst <= 0.02 and covered})
    return checks


def null(args: argparse.Namespace) -> dict:
    """Exclusion rates of 0 over seeds on data with nothing to find."""
    from mmpid import synthetic
    from mmpid.estimate import estimate

    rates = {}
    with tempfile.TemporaryDirectory() as tmp:
        zoo_x1, zoo_x2, zoo_y = _stores("normal", Path(tmp))["span"].load(0)
    for case in ("independent (N = 3,000)", "zoo:normal span layer 0, Y permuted"):
        excluded = {a: 0 for a in BITS}
        t = time.perf_counter()
        for seed in range(args.seeds):
            if case.startswith("independent"):
                d = synthetic.make("independent", 3000, dim_target=64, seed=1000 + seed)
                a, b, c = d.x_image, d.x_text, d.y
            else:
                a, b, c = zoo_x1, zoo_x2, np.random.default_rng(seed).permutation(zoo_y)
            est = _quiet(estimate, a, b, c, n_bootstrap=args.bootstrap, n_permutations=10,
                         seed=seed)
            for atom in BITS:
                excluded[atom] += not est[atom].contains(0.0)
        rates[case] = {a: excluded[a] / args.seeds for a in BITS}
        print(f"{case}: interval excludes 0 in " + ", ".join(
            f"{SHORT[a]} {100 * rates[case][a]:.0f}%" for a in BITS)
            + f" of {args.seeds} seeds ({time.perf_counter() - t:.0f} s)", flush=True)
    return {"rates": rates, "seeds": args.seeds}


def classes(args: argparse.Namespace) -> dict:
    from mmpid import synthetic
    from mmpid.estimate import estimate

    out = {}
    for structure in synthetic.MANY_CLASSES:
        d = synthetic.make(structure, 10_000, seed=7)
        t = time.perf_counter()
        est = _quiet(estimate, d.x_image, d.x_text, d.y, n_bootstrap=args.bootstrap,
                     n_permutations=args.permutations, seed=0)
        err = {a: est[a].corrected - d.truth[a] for a in BITS}
        out[structure] = {"clusters": dict(est.clusters), "error": err,
                          "covered": {a: est[a].contains(d.truth[a]) for a in BITS},
                          "seconds": time.perf_counter() - t}
        print(f"{structure}: clusters {est.clusters}, largest error "
              f"{max(abs(e) for e in err.values()):.3f} bits ({out[structure]['seconds']:.0f} s)",
              flush=True)
    return out


def _markdown(res: dict) -> str:
    lines = [f"Validation ({platform.machine()}, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC).", ""]
    if "zoo" in res:
        z = res["zoo"]
        lines += ["| model | estimate | R | U_image | U_text | S | total | image contribution | clusters |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for model in ("normal", "shuffle", "blind"):
            for key, row in z[model].items():
                if not isinstance(row, dict) or "total" not in row:
                    continue
                k = row.get("clusters") or {}
                ks = f"{k['image']}x{k['text']}x{k['target']}" if key != "oracle" else "labels"
                name = "oracle (latents)" if key == "oracle" else key
                lines.append(
                    f"| {model} | {name} | " + " | ".join(f"{row[a][0]:.3f}" for a in BITS)
                    + f" | {row['total']:.3f} | {100 * row['contribution_image'][0]:.1f}% | {ks} |")
        lines += ["", "| target | measured | met |", "|---|---|---|"]
        lines += [f"| {c['target']} | {c['measured']} | {'yes' if c['met'] else 'no'} |"
                  for c in z["targets"]]
    if "null" in res:
        n = res["null"]
        lines += ["", f"Interval excludes 0 (nominal at most 5%), {n['seeds']} seeds:", "",
                  "| data | R | U_image | U_text | S |", "|---|---|---|---|---|"]
        for case, r in n["rates"].items():
            lines.append(f"| {case} | " + " | ".join(f"{100 * r[a]:.0f}%" for a in BITS) + " |")
    if "classes" in res:
        lines += ["", "| structure (N = 10,000) | clusters | largest error (bits) | truth covered | seconds |",
                  "|---|---|---|---|---|"]
        for s, r in res["classes"].items():
            k = r["clusters"]
            lines.append(f"| {s} | {k['image']}x{k['text']}x{k['target']} | "
                         f"{max(abs(e) for e in r['error'].values()):.3f} | "
                         f"{all(r['covered'].values())} | {r['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sections", nargs="+", default=["zoo", "null", "classes"],
                        choices=["zoo", "null", "classes"])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--permutations", type=int, default=100)
    args = parser.parse_args()
    res = {name: globals()[name](args) for name in args.sections}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "validation.json").write_text(json.dumps(res, indent=1, default=float) + "\n")
    md = _markdown(res)
    (RESULTS / "validation.md").write_text(md)
    print("\n" + md)


if __name__ == "__main__":
    main()
