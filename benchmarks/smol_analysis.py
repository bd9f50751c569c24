"""What mmpid reports for zoo:smol: both protocols over all 30 layers, and the oracle.

Reads two ``mmpid analyze --model zoo:smol`` runs (``--protocol input-fusion`` and
``--protocol span``, on the same easy-vqa test questions), and computes the oracle PID of
the model's predictions (from the input-fusion store: image latent, question meaning -> prediction,
integer labels; :func:`mmpid.zoo.oracle.oracle_of_store`) with the same estimator options. A run
still estimating contributes the layers it has finished.
Usage::

    mmpid analyze --model zoo:smol --protocol input-fusion --limit 2000 --batch-size 32 --out runs/smol-if
    mmpid analyze --model zoo:smol --protocol span --limit 2000 --batch-size 32 --out runs/smol-span
    python benchmarks/smol_analysis.py runs/smol-if runs/smol-span   (these two are the defaults)

Writes benchmarks/results/smol_analysis.json and benchmarks/results/smol_analysis.md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BITS = ("redundancy", "unique_image", "unique_text", "synergy")
SHORT = {"redundancy": "R", "unique_image": "U_image", "unique_text": "U_text", "synergy": "S"}


def read_results(run: Path) -> dict[int, dict]:
    """``{layer: {atom: [corrected, ci_low, ci_high]}}`` (bits) from a run's results.csv, or, for a
    run still estimating, from the layers it has finished (its per-layer cache)."""
    out: dict[int, dict] = {}
    if (run / "results.csv").is_file():
        with (run / "results.csv").open() as fh:
            for row in csv.DictReader(fh):
                out.setdefault(int(row["layer"]), {})[row["atom"]] = [
                    float(row[k] or "nan") for k in ("corrected", "ci_low", "ci_high")]
    else:
        for f in sorted((run / "layers").glob("layer_*.json")):
            cached = json.loads(f.read_text())
            out[int(cached["layer"])] = {r["atom"]: [r["corrected"], r["ci_low"], r["ci_high"]]
                                         for r in cached["records"]}
    for atoms in out.values():
        atoms["total"] = sum(atoms[a][0] for a in BITS)
    return out


def oracle_row(store_dir: Path) -> dict:
    from mmpid.store import FeatureStore
    from mmpid.zoo.oracle import oracle_of_store

    est = oracle_of_store(FeatureStore.open(store_dir), seed=0)
    row = {a: [est[a].corrected, est[a].ci_low, est[a].ci_high] for a in BITS}
    row["total"] = float(sum(est[a].corrected for a in BITS))
    c = est.contribution_image
    row["contribution_image"] = [c.corrected, c.ci_low, c.ci_high]
    row["n"] = int(est.n)
    return row


def _cell(v: list[float]) -> str:
    return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"


def _pct(v: list[float]) -> str:
    return "n/a" if v[0] != v[0] else f"{100 * v[0]:.1f}% [{100 * v[1]:.1f}, {100 * v[2]:.1f}]"


def markdown(res: dict) -> str:
    lines = [
        f"zoo:smol on {res['n']:,} easy-vqa test questions (seeded subset, seed 0); corrected bits, 95% "
        f"intervals; 200 bootstrap resamples, 100 permutations, clusters `auto`; {res['date']}.",
        "",
        f"Oracle (image latent, question meaning -> prediction), on the {res['oracle']['n']:,} of them whose image "
        "latent is known:",
        "",
        "| R | U_image | U_text | S | total | image contribution |",
        "|---|---|---|---|---|---|",
        "| " + " | ".join(_cell(res["oracle"][a]) for a in BITS)
        + f" | {res['oracle']['total']:.3f} | {_pct(res['oracle']['contribution_image'])} |",
        "",
    ]
    for protocol in ("input-fusion", "span"):
        layers = res[protocol]
        lines += [f"{protocol}:", "", "| layer | R | U_image | U_text | S | total | image contribution |",
                  "|---|---|---|---|---|---|---|"]
        for layer in sorted(layers, key=int):
            a = layers[layer]
            lines.append(f"| {layer} | " + " | ".join(_cell(a[b]) for b in BITS)
                         + f" | {a['total']:.3f} | {_pct(a['contribution_image'])} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("input_fusion", type=Path, nargs="?", default=ROOT / "runs" / "smol-if")
    ap.add_argument("span", type=Path, nargs="?", default=ROOT / "runs" / "smol-span")
    args = ap.parse_args()
    if not (args.input_fusion / "store").is_dir():
        # `make bench` runs every script here; this one only summarises runs made beforehand
        print(f"skipped: no analysis of zoo:smol in {args.input_fusion} (run the two `mmpid analyze` "
              "commands of this script's docstring first, about an hour on 2 CPU cores)")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    fusion, span = read_results(args.input_fusion), read_results(args.span)
    from mmpid.store import FeatureStore

    n = FeatureStore.open(args.input_fusion / "store").n_samples
    res = {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "n": n,
        # the predictions are the same in both stores (same model, questions and answer scoring)
        "oracle": oracle_row(args.input_fusion / "store"),
        "input-fusion": {str(k): v for k, v in fusion.items()},
        "span": {str(k): v for k, v in span.items()},
    }
    out = ROOT / "benchmarks" / "results"
    (out / "smol_analysis.json").write_text(json.dumps(res, indent=2) + "\n")
    text = markdown(res)
    (out / "smol_analysis.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
