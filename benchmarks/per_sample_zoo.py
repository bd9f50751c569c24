"""The paper's per-sample protocol and mmpid's pooled estimate on models whose answer is known.

For ``zoo:normal``, ``zoo:blind`` (uses no image) and ``zoo:shuffle``: one ``tokens`` store of N
easy-vqa test questions per model (default 3,000, a seeded random subset), and on it, per layer,

- mmpid's pooled estimate (input-fusion variables pooled from the token sets; default options:
  clusters="auto", 200 bootstrap resamples, 100 permutations);
- the paper's per-sample estimate (arXiv 2511.19470) with its 10 clusters, and with 3 clusters
  (fewer clusters than tokens, so that one example's table is not a bijection); its plug-in is
  the paper's figure, its noise floor the same with targets shuffled across examples;
- the oracle: the PID of (image latent, question meaning -> the model's prediction), integer
  labels, on the same questions whose image latent is known (mmpid.zoo.latents).

Prints one table (also written to benchmarks/results/per_sample_zoo.{json,md}) and draws
docs/zoo/per_sample_vs_pooled.png. The reference each number is compared with is the oracle
of the same run. Stores are kept under --work (default: a temporary folder).

Run: python benchmarks/per_sample_zoo.py [--n 3000] [--work DIR]
     python benchmarks/per_sample_zoo.py --tables-only   (the tables and figure again from the JSON)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("normal", "blind", "shuffle")
ATOMS = ("redundancy", "unique_image", "unique_text", "synergy")
SHORT = {"redundancy": "R", "unique_image": "U_image", "unique_text": "U_text", "synergy": "S"}


def _atoms(est, field: str = "corrected") -> dict[str, float]:
    out = {a: float(getattr(est[a], field)) for a in ATOMS}
    out["contribution_image"] = float(getattr(est["contribution_image"], field))
    out.update({f"{a}_ci": [float(est[a].ci_low), float(est[a].ci_high)] for a in ATOMS})
    return out


def _oracle(store) -> dict[str, float]:
    from mmpid.estimate import estimate
    from mmpid.zoo.latents import latents

    lat = latents("test")
    idx = np.array([int(s.split("-", 1)[1]) for s in store.sample_ids])
    pred = store.predictions()
    known = lat.known[idx]
    est = estimate(lat.image[idx][known], lat.meaning[idx][known], pred[known], seed=0)
    out = _atoms(est)
    out["n"] = int(known.sum())
    return out


def _distance(row: dict[str, float], oracle: dict[str, float]) -> float:
    return float(sum(abs(row[a] - oracle[a]) for a in ATOMS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=3000)
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--tables-only", action="store_true",
                        help="redo the tables and the figure from benchmarks/results/per_sample_zoo.json")
    args = parser.parse_args()
    out = ROOT / "benchmarks" / "results"
    if args.tables_only:
        doc = json.loads((out / "per_sample_zoo.json").read_text())
        _write(doc["rows"], doc["oracle"], doc["n"], doc.get("seconds") or sum(r["seconds"] for r in doc["rows"]), out)
        return

    from mmpid.errors import EstimateWarning
    from mmpid.estimate import estimate
    from mmpid.pipeline import extract_features

    work = args.work or Path(tempfile.mkdtemp(prefix="mmpid-per-sample-"))
    rows: list[dict] = []
    oracles: dict[str, dict] = {}
    t_start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EstimateWarning)
        for name in MODELS:
            store = extract_features(f"zoo:{name}", work / name, limit=args.n, device="cpu",
                                     protocol="tokens", progress=False)
            oracles[name] = oracle = _oracle(store)
            print(f"{name}: N={store.n_samples}, oracle on {oracle['n']} questions with known image latent: "
                  + ", ".join(f"{SHORT[a]} {oracle[a]:.3f}" for a in ATOMS), flush=True)
            for layer in store.layers:
                variants = [("pooled", store.load(layer), {})]
                tokens = store.load_tokens(layer)
                variants += [(f"per-sample, {k} clusters", tokens, {"protocol": "per-sample", "clusters": k})
                             for k in (10, 3)]
                for protocol, data, kw in variants:
                    t0 = time.perf_counter()
                    est = estimate(*data, seed=0, **kw)
                    row = {"model": name, "layer": layer, "protocol": protocol,
                           "seconds": time.perf_counter() - t0, **_atoms(est)}
                    if kw:
                        row["plugin"] = _atoms(est, "plugin")
                        row["floor"] = _atoms(est, "null_mean")
                    row["distance"] = _distance(row, oracle)
                    if kw:
                        row["plugin_distance"] = _distance(row["plugin"], oracle)
                    rows.append(row)
                    print(f"  layer {layer} {protocol}: " + ", ".join(f"{SHORT[a]} {row[a]:.3f}" for a in ATOMS)
                          + f" ({row['seconds']:.1f} s)", flush=True)
    total = time.perf_counter() - t_start
    out.mkdir(parents=True, exist_ok=True)
    (out / "per_sample_zoo.json").write_text(
        json.dumps({"n": args.n, "seconds": total, "oracle": oracles, "rows": rows}, indent=1)
    )
    _write(rows, oracles, args.n, total, out)


def _write(rows, oracles, n, total, out: Path) -> None:
    md = _markdown(rows, oracles, n, total)
    short = _summary(rows, oracles, n)
    print(short)
    (out / "per_sample_zoo.md").write_text(short + "\n\n" + md + "\n")
    _figure(rows, oracles, ROOT / "docs" / "zoo" / "per_sample_vs_pooled.png")


def _quad(values: dict, keys=ATOMS) -> str:
    return " / ".join(_fmt(values[a]) for a in keys)


def _summary(rows, oracles, n) -> str:
    """The README's table: per model and layer, the four atoms as R / U_image / U_text / S."""
    by = {(r["model"], r["layer"], r["protocol"]): r for r in rows}
    lines = [
        (f"Easy-vqa test, the same N = {n} questions for every column; bits, R / U_image / U_text / S. "
         "Oracle: PID of (image latent, question meaning -> prediction) on the questions whose "
         "image latent is known. Distance: sum over the four atoms of |value - oracle|."),
        "",
        ("| model | layer | pooled (mmpid, corrected) | the paper's figure (per-sample plug-in, 10 clusters) "
         "| per-sample minus its noise floor, 10 clusters | per-sample minus its noise floor, 3 clusters "
         "| distance to oracle: pooled / paper's figure / per-sample 3 clusters minus floor |"),
        "|---|---|---|---|---|---|---|",
    ]
    for name, o in oracles.items():
        lines.append(f"| {name} | oracle | {_quad(o)} | | | | |")
        layers = sorted({r["layer"] for r in rows if r["model"] == name})
        for layer in layers:
            p, t, f = (by[(name, layer, k)] for k in ("pooled", "per-sample, 10 clusters", "per-sample, 3 clusters"))
            lines.append(
                f"| {name} | {layer} | {_quad(p)} | {_quad(t['plugin'])} | {_quad(t)} | {_quad(f)} | "
                f"{p['distance']:.2f} / {t['plugin_distance']:.2f} / {f['distance']:.2f} |"
            )
    return "\n".join(lines)


def _fmt(v: float) -> str:
    return "undefined" if not np.isfinite(v) else f"{v:.3f}"


def _pct(v: float) -> str:
    return "undefined" if not np.isfinite(v) else f"{100 * v:.1f}%"


def _markdown(rows, oracles, n, total) -> str:
    lines = [
        (f"Per-sample protocol (the paper's) against mmpid's pooled estimate, easy-vqa test, N = {n} "
         f"questions per model ({total:.0f} s of estimation in all). Bits; per-sample rows give the paper's "
         "figure (plug-in, the mean of per-example PIDs) / its noise floor / plug-in minus floor [95% interval]; "
         "pooled rows the corrected value [95% interval]. Distance: the sum over the four atoms of "
         "|value - oracle| (per-sample: plug-in / corrected)."),
        "",
        "| model | layer | protocol | R | U_image | U_text | S | image contribution | distance to oracle |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, o in oracles.items():
        lines.append(f"| {name} | - | oracle (N = {o['n']}) | " + " | ".join(
            f"{_fmt(o[a])} [{_fmt(o[a + '_ci'][0])}, {_fmt(o[a + '_ci'][1])}]" for a in ATOMS)
            + f" | {_pct(o['contribution_image'])} | 0 |")
        for r in (r for r in rows if r["model"] == name):
            if "plugin" in r:
                cells = [f"{_fmt(r['plugin'][a])} / {_fmt(r['floor'][a])} / {_fmt(r[a])} "
                         f"[{_fmt(r[a + '_ci'][0])}, {_fmt(r[a + '_ci'][1])}]" for a in ATOMS]
                contrib = f"{_pct(r['plugin']['contribution_image'])} / {_pct(r['contribution_image'])}"
                dist = f"{r['plugin_distance']:.2f} / {r['distance']:.2f}"
            else:
                cells = [f"{_fmt(r[a])} [{_fmt(r[a + '_ci'][0])}, {_fmt(r[a + '_ci'][1])}]" for a in ATOMS]
                contrib = _pct(r["contribution_image"])
                dist = f"{r['distance']:.2f}"
            lines.append(f"| {name} | {r['layer']} | {r['protocol']} | " + " | ".join(cells)
                         + f" | {contrib} | {dist} |")
    return "\n".join(lines)


def _figure(rows, oracles, path: Path) -> None:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(layout="constrained", figsize=(12, 7))
    axes = fig.subplots(2, len(oracles), sharex=True, sharey="row")
    styles = {
        "pooled": {"color": "#0072B2", "lw": 2.2, "marker": "o"},
        "per-sample, 10 clusters": {"color": "black", "lw": 1.6, "marker": "s"},
        "per-sample, 3 clusters": {"color": "#D55E00", "lw": 1.6, "marker": "^"},
    }
    for col, (name, o) in enumerate(oracles.items()):
        for row_i, what in enumerate(("image", "text")):
            ax = axes[row_i, col]
            atoms = ("unique_image", "synergy") if what == "image" else ("unique_text",)
            ax.axhline(sum(o[a] for a in atoms), color="#009E73", ls="--", lw=1.5, label="oracle")
            ax.axhline(0, color="black", lw=0.8)
            for protocol, style in styles.items():
                sel = [r for r in rows if r["model"] == name and r["protocol"] == protocol]
                x = [r["layer"] for r in sel]
                ax.plot(x, [sum(r[a] for a in atoms) for r in sel], label=f"{protocol}: corrected", **style)
                if protocol != "pooled":
                    ax.plot(x, [sum(r["plugin"][a] for a in atoms) for r in sel], ls=":",
                            color=style["color"], marker=style["marker"], mfc="white",
                            label=f"{protocol}: plug-in (the paper's figure)")
            ax.set_title(f"zoo:{name}: " + ("U_image + S" if what == "image" else "U_text"), loc="left")
            ax.set_ylabel("bits")
            ax.grid(True, color="0.92")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            if row_i == 1:
                ax.set_xlabel("layer")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=3, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, metadata={"Software": None})


if __name__ == "__main__":
    main()
