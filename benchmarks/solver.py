"""Benchmark of the BROJA solvers, all timed in the same run on the same machine.

Compares mmpid `exact` and `ipfp` with cvxpy + Clarabel on the same convex programme
(Liang et al.'s "CVX" estimator) and dit's `PID_BROJA(method="cone")` (ECOS), on dense
random joints; then the throughput of `decompose_many` on a stack of small tables.
Per-table timings run on one CPU core (BLAS threads pinned to 1 before numpy loads).
`exact` runs its compiled primal-dual pass (numba); the vectorised pass that the torch
backend uses (and numpy with MMPID_JIT=0) is timed beside it.

    python benchmarks/solver.py                      # the full run (several minutes)
    python benchmarks/solver.py --sizes 10x10x10 --batch 200 --dit-max-cells 1000

Writes benchmarks/results/solver.json and benchmarks/results/solver.md.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import contextlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from mmpid.pid import decompose, decompose_many  # noqa: E402
from mmpid.pid.api import JIT_ENV, _workers  # noqa: E402
from mmpid.pid.measures import source_informations  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ATOMS = ("redundancy", "unique_1", "unique_2", "synergy")
LN2 = np.log(2.0)


def random_joint(shape: tuple[int, int, int], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(int(np.prod(shape)))).reshape(shape)


def atoms_from_iq(p: np.ndarray, iq: float) -> np.ndarray:
    """(R, U1, U2, S) in bits from I_q(X1,X2;Y) of the BROJA optimum."""
    i1, i2, i12 = (float(v) for v in source_informations(p))
    return np.array([i1 + i2 - iq, iq - i2, iq - i1, i12 - iq])


@contextlib.contextmanager
def vectorised():
    """Run the exact solver's vectorised pass instead of the compiled one."""
    old = os.environ.get(JIT_ENV)
    os.environ[JIT_ENV] = "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ[JIT_ENV]
        else:
            os.environ[JIT_ENV] = old


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def timed_median(fn, *args, budget_s: float = 20.0, max_repeats: int = 7, **kwargs):
    """Median wall time over repeats (at least 1, at most `max_repeats`, stopping once
    `budget_s` is spent): one slow moment on a shared machine does not decide a ratio."""
    out, first = timed(fn, *args, **kwargs)
    times = [first]
    while len(times) < max_repeats and sum(times) + times[-1] < budget_s:
        out, t = timed(fn, *args, **kwargs)
        times.append(t)
    return out, float(np.median(times)), len(times)


def solve_cvxpy(p: np.ndarray) -> np.ndarray:
    """BROJA with cvxpy + Clarabel: min Σ q log(q / q(x1,x2)) s.t. both marginals."""
    import cvxpy as cp
    import scipy.sparse as sp

    n1, n2, ny = p.shape
    n = n1 * n2 * ny
    idx = np.arange(n).reshape(n1, n2, ny)
    pairs = (idx // ny).ravel()  # cell -> pair index
    S = sp.csr_matrix((np.ones(n), (pairs, np.arange(n))), shape=(n1 * n2, n))
    rows1 = (np.arange(n1)[:, None, None] * ny + np.arange(ny)[None, None, :]) + 0 * idx
    rows2 = (np.arange(n2)[None, :, None] * ny + np.arange(ny)[None, None, :]) + 0 * idx
    A1 = sp.csr_matrix((np.ones(n), (rows1.ravel(), idx.ravel())), shape=(n1 * ny, n))
    A2 = sp.csr_matrix((np.ones(n), (rows2.ravel(), idx.ravel())), shape=(n2 * ny, n))
    q = cp.Variable(n, nonneg=True)
    q12 = S @ q
    obj = cp.sum(cp.rel_entr(q, S.T @ q12))
    prob = cp.Problem(cp.Minimize(obj), [A1 @ q == p.sum(1).ravel(), A2 @ q == p.sum(0).ravel()])
    prob.solve(solver=cp.CLARABEL)
    py = p.sum((0, 1))
    hy = -np.sum(py[py > 0] * np.log(py[py > 0]))
    return atoms_from_iq(p, (hy + prob.value) / LN2)


def solve_dit(p: np.ndarray) -> np.ndarray:
    import dit
    from dit.pid import PID_BROJA

    nz = np.argwhere(p > 0)
    d = dit.Distribution([tuple(int(v) for v in i) for i in nz], [float(p[tuple(i)]) for i in nz])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pid = PID_BROJA(d, ((0,), (1,)), (2,), method="cone")
    return np.array([pid.get_pi(((0,), (1,))), pid.get_pi(((0,),)), pid.get_pi(((1,),)),
                     pid.get_pi(((0, 1),))], dtype=float)


def bench_sizes(sizes, *, dit_max_cells: int, ipfp_max_iter: int, seed: int) -> list[dict]:
    rows = []
    # warm-up: imports and first-call set-up are not part of any timing
    warm = random_joint((3, 3, 2), seed)
    solve_cvxpy(warm)
    decompose(warm)
    solve_dit(warm)
    for shape in sizes:
        p = random_joint(shape, seed)
        row: dict = {"size": "x".join(map(str, shape))}
        ref, t_cvx, n_cvx = timed_median(solve_cvxpy, p)
        row.update(cvxpy_clarabel_s=t_cvx, cvxpy_repeats=n_cvx)
        ex, t_ex, n_ex = timed_median(decompose, p)
        row.update(exact_s=t_ex, exact_repeats=n_ex, exact_iterations=ex.iterations,
                   exact_gap_bits=ex.gap, exact_converged=ex.converged)
        with vectorised():
            _, t_vec, _ = timed_median(decompose, p, budget_s=10.0, max_repeats=3)
        row["exact_vectorised_s"] = t_vec
        row["exact_max_abs_diff_vs_cvxpy"] = float(np.abs(
            np.array([getattr(ex, a) for a in ATOMS]) - ref).max())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ip, t_ip = timed(decompose, p, method="ipfp", max_iter=ipfp_max_iter)
        row.update(ipfp_s=t_ip, ipfp_iterations=ip.iterations, ipfp_converged=ip.converged,
                   ipfp_gap_bits=ip.gap)
        row["ipfp_max_abs_diff_vs_cvxpy"] = float(np.abs(
            np.array([getattr(ip, a) for a in ATOMS]) - ref).max())
        row["ipfp_max_abs_diff_vs_exact"] = float(np.abs(
            np.array([getattr(ip, a) - getattr(ex, a) for a in ATOMS])).max())
        if np.prod(shape[:2]) <= dit_max_cells:
            dref, t_dit = timed(solve_dit, p)
            row["dit_cone_s"] = t_dit
            row["dit_max_abs_diff_vs_cvxpy"] = float(np.abs(dref - ref).max())
        else:
            row["dit_cone_s"] = None
        row["speedup_exact_vs_cvxpy"] = t_cvx / t_ex
        row["speedup_exact_vs_ipfp"] = t_ip / t_ex
        if row["dit_cone_s"] is not None:
            row["speedup_exact_vs_dit"] = row["dit_cone_s"] / t_ex
        rows.append(row)
        print(json.dumps(row, default=float))
    return rows


def bench_batch(n_tables: int, shape: tuple[int, int, int], seed: int,
                torch_threads: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(int(np.prod(shape))), size=n_tables).reshape((n_tables, *shape))
    out = []
    runs = [("numpy", "numpy", contextlib.nullcontext), ("numpy, vectorised", "numpy", vectorised)]
    try:
        import torch

        torch.set_num_threads(torch_threads)
        runs.append(("torch", "torch", contextlib.nullcontext))
    except ImportError:  # pragma: no cover
        pass
    for name, backend, mode in runs:
        with mode():
            decompose_many(P[:20], backend=backend)  # warm-up
            res, secs, _ = timed_median(decompose_many, P, backend=backend, budget_s=30.0,
                                        max_repeats=3)
        # numpy splits the stack over one worker thread per core (BLAS on one thread)
        threads = torch_threads if backend == "torch" else _workers("numpy", n_tables)
        row = {"backend": name, "threads": threads,
               "tables": n_tables, "size": "x".join(map(str, shape)),
               "seconds": secs, "tables_per_second": n_tables / secs,
               "converged_fraction": float(res.converged.mean()),
               "max_gap_bits": float(res.gap.max()), "mean_iterations": float(res.iterations.mean())}
        out.append(row)
        print(json.dumps(row))
    return out


def markdown(rows: list[dict], batch: list[dict], meta: dict) -> str:
    def f(v, spec=".3g"):
        return "-" if v is None else format(v, spec)

    lines = [
        f"Solver benchmark ({meta['machine']}, load average {meta['load_average_at_start']:.1f}"
        f" at start; per-table solves on one core; {meta['date']}).",
        "",
        "Times are medians of repeated runs (exact and cvxpy: up to 7, within 20 s each).",
        "",
        "| size | exact (s) | exact steps | exact, vectorised (s) | ipfp (s) | cvxpy+Clarabel (s) |"
        " dit cone (s) | exact vs cvxpy | exact max abs diff vs cvxpy (bits) | exact gap (bits) |"
        " ipfp max abs diff vs exact (bits) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['size']} | {f(r['exact_s'])} | {r['exact_iterations']} |"
            f" {f(r.get('exact_vectorised_s'))} | {f(r['ipfp_s'])} |"
            f" {f(r['cvxpy_clarabel_s'])} |"
            f" {f(r['dit_cone_s'])} | {r['speedup_exact_vs_cvxpy']:.1f}x |"
            f" {f(r['exact_max_abs_diff_vs_cvxpy'], '.1e')} | {f(r['exact_gap_bits'], '.1e')} |"
            f" {f(r['ipfp_max_abs_diff_vs_exact'], '.1e')} |")
    lines += ["", "| decompose_many | threads | tables | size | seconds | tables/s | converged |"
              " max gap (bits) |", "|---|---|---|---|---|---|---|---|"]
    for b in batch:
        lines.append(f"| {b['backend']} | {b['threads']} | {b['tables']} | {b['size']} |"
                     f" {b['seconds']:.2f} |"
                     f" {b['tables_per_second']:.0f} | {b['converged_fraction']:.0%} |"
                     f" {b['max_gap_bits']:.1e} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10x10x10,20x20x10,50x50x10,100x100x10")
    ap.add_argument("--batch", type=int, default=1000, help="tables for decompose_many")
    ap.add_argument("--dit-max-cells", type=int, default=2500,
                    help="run dit only when n1*n2 <= this (dit takes minutes beyond)")
    ap.add_argument("--ipfp-max-iter", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch CPU threads for the batch run (1 avoids contention on busy hosts)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
            "python": platform.python_version(), "numpy": np.__version__,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "load_average_at_start": os.getloadavg()[0]}
    rows = bench_sizes(sizes, dit_max_cells=args.dit_max_cells, ipfp_max_iter=args.ipfp_max_iter,
                       seed=args.seed)
    batch = (bench_batch(args.batch, (10, 10, 10), args.seed, args.torch_threads)
             if args.batch else [])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "solver.json").write_text(json.dumps(
        {"meta": meta, "sizes": rows, "batch": batch}, indent=2, default=float) + "\n")
    md = markdown(rows, batch, meta) + "\n" + verdicts(rows, batch)
    (args.out / "solver.md").write_text(md)
    print(md)


def verdicts(rows: list[dict], batch: list[dict]) -> str:
    """The solver issue's targets, met or not, in this run."""
    by = {r["size"]: r for r in rows}
    lines = ["| target | measured | met |", "|---|---|---|"]
    for size in ("20x20x10", "50x50x10"):
        if size in by:
            x = by[size]["speedup_exact_vs_cvxpy"]
            met = "yes" if x >= 50 else "no"
            lines.append(f"| exact >= 50x cvxpy + Clarabel at {size} | {x:.1f}x | {met} |")
    if "100x100x10" in by:
        t = by["100x100x10"]["exact_s"]
        lines.append(f"| 100x100x10 < 1 s on one core | {t:.2f} s | {'yes' if t < 1 else 'no'} |")
    for b in batch:
        if b["backend"] == "numpy" and b["tables"] == 1000:
            lines.append(f"| 1,000 tables 10x10x10 < 2 s on 2 cores | {b['seconds']:.2f} s"
                         f" ({b['threads']} threads) | {'yes' if b['seconds'] < 2 else 'no'} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
