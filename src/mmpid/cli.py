"""The `mmpid` command line: thin commands over the library (mmpid.pipeline and friends).

An error the user can cause ends as one coloured line naming the flag as typed, what was
wrong and what to do: exit code 2 for a usage error (a bad flag value, a file named on the
command line that does not exist), 1 for a failure (a dataset, model, store or table that
cannot be used). Anything else is a bug and keeps its traceback; ``mmpid --debug COMMAND``
shows the traceback of the errors above too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from mmpid.errors import InputError, MmpidError, OptionError
from mmpid.estimate.options import CLUSTER_RULES

app = typer.Typer(
    help="mmpid: what a vision-language model uses, in bits (Partial Information Decomposition).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
zoo_app = typer.Typer(help="Small VLMs trained on easy-vqa whose behaviour is known.", no_args_is_help=True)
app.add_typer(zoo_app, name="zoo")

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

# Options shared by several commands.
Model = Annotated[str, typer.Option("--model", "-m", help="Hub id, local folder, or zoo:NAME.")]
Dataset = Annotated[str, typer.Option(help="easy-vqa, a Hugging Face dataset name/path, or a .jsonl file.")]
Split = Annotated[str, typer.Option(help="Dataset split.")]
Limit = Annotated[int | None, typer.Option(help="Use at most this many samples.")]
Column = Annotated[
    list[str] | None,
    typer.Option("--column", help="Column mapping ROLE=NAME for image, question, answer, id, choices (repeatable)."),
]
Protocol = Annotated[
    str,
    typer.Option(help="input-fusion (default), span, or tokens (the paper's per-sample token sets, plus pooled)."),
]
Pooling = Annotated[str, typer.Option(help="mean, last or max over a span's tokens.")]
Target = Annotated[str, typer.Option(help="span protocol: prediction or label.")]
BatchSize = Annotated[int, typer.Option(help="Samples per forward pass.")]
Device = Annotated[str, typer.Option(help="auto, cpu or cuda.")]
DType = Annotated[str | None, typer.Option(help="float32, bfloat16 or float16 (default: the model's).")]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Clusters = Annotated[
    str,
    typer.Option(help="Clusters per variable: 'auto' (the resolution the data support), "
                      "'conservative' (one k from N alone) or an integer."),
]
Bootstrap = Annotated[int, typer.Option("--bootstrap", help="Bootstrap resamples.")]
Permutations = Annotated[int, typer.Option("--permutations", help="Permutations for the null.")]
Level = Annotated[float, typer.Option(help="Confidence level of the intervals.")]
Seed = Annotated[int, typer.Option(help="Random seed (sampling, clustering, resampling).")]
Estimator = Annotated[
    str,
    typer.Option(help="'discrete' (clusters + exact BROJA), 'gaussian' (Gaussian PID of the features) "
                      "or 'both' (side by side, with where they disagree)."),
]
Layers = Annotated[str | None, typer.Option(help="Comma-separated layers to estimate (default: all).")]
PerSampleClusters = Annotated[
    int, typer.Option(help="tokens stores: k-means clusters per token set of the per-sample protocol.")
]
Length = Annotated[
    int | None,
    typer.Option(help="tokens stores: common length of the per-sample token sets (default: each example's shortest)."),
]
Engine = Annotated[str, typer.Option(help="local (this process) or ray (a Ray cluster; needs the 'ray' extra).")]
Address = Annotated[
    str | None, typer.Option(help="Ray cluster to join, e.g. auto (default: start a private local one).")
]
Workers = Annotated[int | None, typer.Option(help="Ray workers (default: what the cluster allows).")]
GpusPerWorker = Annotated[float, typer.Option(help="GPUs per Ray extraction worker (0: CPU only).")]


#: Exit codes: a usage error (bad flag value, missing file argument), a failure, Ctrl-C.
USAGE, FAILURE, INTERRUPTED = 2, 1, 130
#: Library keyword -> the flag that sets it, where the two are not spelled alike.
FLAGS = {
    "n_bootstrap": "--bootstrap",
    "n_permutations": "--permutations",
    "data_seed": "--seed",
    "columns": "--column",
    "out_dir": "--out",
    "store_dir": "--out",
    "model": "--model",
    "spec": "--model",
    "name": "NAME",  # zoo train's argument
    "methods": "--method",
}
_state = {"debug": False}


class UsageError(Exception):
    """A command-line value the library never sees (e.g. --layers that is not a list)."""


def flag(name: str) -> str:
    """The command-line flag of a library keyword: ``n_bootstrap`` -> ``--bootstrap``."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


def _message(exc: BaseException) -> str:
    if isinstance(exc, OptionError):
        return exc.for_flag(flag(exc.name))
    # older messages name the Python parameter: "The 'limit' parameter ..." -> "--limit ..."
    return re.sub(r"The '(\w+)' parameter", lambda m: flag(m.group(1)), str(exc))


@app.callback()
def main(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of every error.")] = False,
) -> None:
    """mmpid: what a vision-language model uses, in bits (Partial Information Decomposition)."""
    _state["debug"] = debug


def _friendly(func: F) -> F:
    """Turn an error the user can cause into one red line: exit code 2 (usage) or 1 (failure)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            if _state["debug"]:
                raise
            err_console.print(
                "[bold red]interrupted:[/] finished shards and layers are kept; run the same command "
                "again to resume.",
                highlight=False,
            )
            raise typer.Exit(code=INTERRUPTED) from None
        except (UsageError, OptionError, MmpidError, OSError) as exc:
            if _state["debug"]:
                raise
            usage = isinstance(exc, (UsageError, OptionError, FileNotFoundError))
            err_console.print(f"[bold red]error:[/] {_message(exc)}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=USAGE if usage else FAILURE) from exc

    return wrapper  # type: ignore[return-value]


def _columns(pairs: list[str] | None) -> dict[str, str] | None:
    if not pairs:
        return None
    mapping = {}
    for pair in pairs:
        role, sep, name = pair.partition("=")
        if not sep or role not in {"image", "question", "answer", "id", "choices"}:
            raise UsageError(
                f"--column must be ROLE=NAME with ROLE one of image, question, answer, id, choices; got {pair!r}."
            )
        mapping[role] = name
    return mapping


def _clusters(value: str) -> int | str:
    if value in CLUSTER_RULES:
        return value
    try:
        return int(value)
    except ValueError:
        raise UsageError(
            f"--clusters must be one of {', '.join(CLUSTER_RULES)} or an integer, e.g. --clusters 6; "
            f"got {value!r}."
        ) from None


def _disagreement_text(results: Any) -> str:
    """One line per atom and layer where the discrete and Gaussian estimators disagree."""
    if not results.disagreements:
        return "the discrete and Gaussian estimators agree on every atom and layer"
    lines = [f"the estimators disagree on {len(results.disagreements)} atom(s):"]
    for d in results.disagreements:
        lines.append(
            f"  layer {d.layer} {d.atom}: discrete {d.discrete[0]:.3f} [{d.discrete[1]:.3f}, "
            f"{d.discrete[2]:.3f}], gaussian {d.gaussian[0]:.3f} [{d.gaussian[1]:.3f}, "
            f"{d.gaussian[2]:.3f}] bits: {d.reading}"
        )
    return "\n".join(lines)


def _layers(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        layers = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--layers must be comma-separated integers, e.g. --layers 0,4,8; got {value!r}.") from None
    if not layers:
        raise UsageError(f"--layers must name at least one layer, e.g. --layers 0,4,8; got {value!r}.")
    return layers


@app.command()
@_friendly
def extract(
    model: Model,
    out: Out,
    dataset: Dataset = "easy-vqa",
    split: Split = "test",
    limit: Limit = None,
    column: Column = None,
    protocol: Protocol = "input-fusion",
    pooling: Pooling = "mean",
    target: Target = "prediction",
    batch_size: BatchSize = 16,
    device: Device = "auto",
    dtype: DType = None,
    seed: Seed = 0,
    engine: Engine = "local",
    address: Address = None,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = 0.0,
) -> None:
    """Run the model over the dataset and write pooled per-layer features to a store (resumable)."""
    from mmpid.pipeline import extract_features

    store = extract_features(
        model,
        out,
        dataset=dataset,
        split=split,
        limit=limit,
        data_seed=seed,
        columns=_columns(column),
        protocol=protocol,
        pooling=pooling,
        target=target,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        engine=engine,
        address=address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
    )
    console.print(f"feature store: [bold]{out}[/] ({len(store.layers)} layers)")


@app.command()
@_friendly
def estimate(
    store: Annotated[Path, typer.Argument(help="A feature store written by 'mmpid extract'.")],
    out: Out,
    layers: Layers = None,
    clusters: Clusters = "auto",
    bootstrap: Bootstrap = 200,
    permutations: Permutations = 100,
    level: Level = 0.95,
    seed: Seed = 0,
    per_sample_clusters: PerSampleClusters = 10,
    length: Length = None,
    engine: Engine = "local",
    address: Address = None,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = 0.0,
    estimator: Estimator = "discrete",
) -> None:
    """Estimate the PID atoms of every stored layer; write results.json and results.csv.

    A tokens store gets the paper's per-sample estimate too (per_sample/results.json)."""
    from mmpid.pipeline import estimate_store

    results = estimate_store(
        store,
        out,
        layers=_layers(layers),
        clusters=_clusters(clusters),
        n_bootstrap=bootstrap,
        n_permutations=permutations,
        level=level,
        seed=seed,
        per_sample_clusters=per_sample_clusters,
        length=length,
        engine=engine,
        address=address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        estimator=estimator,
    )
    console.print(f"results: [bold]{out / 'results.json'}[/] and results.csv")
    if results.gaussian is not None:
        console.print(_disagreement_text(results))


@app.command()
@_friendly
def report(
    results: Annotated[Path, typer.Argument(help="results.json, or the folder holding it.")],
    out: Out,
) -> None:
    """Render results as one self-contained HTML report plus PNG plots."""
    from mmpid.report import render_report

    paths = render_report(results, out)
    console.print(f"report: [bold]{paths.html}[/]")


@app.command()
@_friendly
def analyze(
    model: Model,
    out: Out,
    dataset: Dataset = "easy-vqa",
    split: Split = "test",
    limit: Limit = None,
    column: Column = None,
    protocol: Protocol = "input-fusion",
    pooling: Pooling = "mean",
    target: Target = "prediction",
    batch_size: BatchSize = 16,
    device: Device = "auto",
    dtype: DType = None,
    layers: Layers = None,
    clusters: Clusters = "auto",
    bootstrap: Bootstrap = 200,
    permutations: Permutations = 100,
    level: Level = 0.95,
    seed: Seed = 0,
    per_sample_clusters: PerSampleClusters = 10,
    length: Length = None,
    engine: Engine = "local",
    address: Address = None,
    workers: Workers = None,
    gpus_per_worker: GpusPerWorker = 0.0,
    estimator: Estimator = "discrete",
) -> None:
    """Extract + estimate + report in one command."""
    from mmpid.pipeline import analyze as run_analyze

    paths = run_analyze(
        model,
        out,
        dataset=dataset,
        split=split,
        limit=limit,
        data_seed=seed,
        columns=_columns(column),
        protocol=protocol,
        pooling=pooling,
        target=target,
        batch_size=batch_size,
        device=device,
        dtype=dtype,
        layers=_layers(layers),
        clusters=_clusters(clusters),
        n_bootstrap=bootstrap,
        n_permutations=permutations,
        level=level,
        seed=seed,
        per_sample_clusters=per_sample_clusters,
        length=length,
        engine=engine,
        address=address,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        estimator=estimator,
    )
    console.print(f"report: [bold]{paths.report_html}[/]")


@app.command()
@_friendly
def compare(
    model: Model,
    out: Out,
    dataset: Dataset = "easy-vqa",
    split: Split = "test",
    limit: Limit = None,
    method: Annotated[
        list[str] | None,
        typer.Option("--method", help="ablation, perceptual, shapley, mmshap, ig, attention (repeatable; default all)."),
    ] = None,
    max_evals: Annotated[int, typer.Option(help="MM-SHAP: model evaluations per sample.")] = 200,
    ig_steps: Annotated[int, typer.Option(help="Integrated Gradients: steps.")] = 64,
    batch_size: BatchSize = 64,
    device: Device = "auto",
    seed: Seed = 0,
) -> None:
    """Run today's attribution methods and PID side by side; write compare.json/.csv/.png/.html.

    In a run folder of `mmpid analyze` (one holding results.json), report.html is re-rendered
    with the comparison as a section."""
    from mmpid.baselines import METHODS
    from mmpid.baselines import compare as run_compare

    result = run_compare(
        model, dataset, out_dir=out, methods=method or METHODS, split=split, limit=limit,
        batch_size=batch_size, max_evals=max_evals, ig_steps=ig_steps, device=device, seed=seed,
    )
    for name, err in result.errors.items():
        err_console.print(f"[bold yellow]not run:[/] {name}: {err}", highlight=False, soft_wrap=True)
    console.print(f"comparison: [bold]{out / 'compare.html'}[/] and compare.json, compare.csv")
    if (out / "results.json").is_file():
        console.print(f"report with the comparison section: [bold]{out / 'report.html'}[/]")


@app.command()
@_friendly
def demo(
    out: Out = Path("reports/demo"),
    limit: Annotated[int | None, typer.Option(help="Test questions to use (default: all 9,673).")] = None,
) -> None:
    """The main job on the embedded default: zoo:normal on easy-vqa's whole test split."""
    from mmpid.pipeline import analyze as run_analyze

    paths = run_analyze("zoo:normal", out, dataset="easy-vqa", split="test", limit=limit, device="cpu")
    console.print(f"report: [bold]{paths.report_html}[/]")


@app.command()
@_friendly
def decompose(
    table: Annotated[Path, typer.Argument(help="A .npy array of shape (n1, n2, ny): p(x1, x2, y) or counts.")],
    method: Annotated[str, typer.Option(help="exact or ipfp.")] = "exact",
) -> None:
    """Decompose one discrete joint distribution and print its atoms in bits as JSON."""
    import numpy as np

    from mmpid.pid import decompose as run_decompose

    if not table.is_file():
        raise FileNotFoundError(f"No such table file: {str(table)!r}; give a .npy file written with numpy.save.")
    try:
        array = np.load(table, allow_pickle=False)
    except (ValueError, OSError, EOFError):
        raise InputError(
            f"TABLE {str(table)!r} is not a .npy array file; write one with numpy.save(path, p)."
        ) from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise InputError(f"TABLE {str(table)!r} is an .npz archive; give one array saved with numpy.save.")
    result = run_decompose(array, method=method)
    console.print_json(json.dumps(result.to_dict(), default=float))


@zoo_app.command("list")
@_friendly
def zoo_list() -> None:
    """List the shipped models and their recorded accuracy."""
    from rich.table import Table

    from mmpid import zoo

    table = Table("model", "family", "image tokens", "test accuracy", "blank image", "image swap changes")
    for name in zoo.list_models():
        info = zoo.info(name)
        test, recipe = info["test"], info["recipe"]
        tokens = (64 // recipe["patch_size"]) ** 2 // recipe["scale_factor"] ** 2
        table.add_row(
            f"zoo:{name}",
            recipe["family"],
            str(tokens),
            f"{test['accuracy']:.1%}",
            f"{test['blank_accuracy']:.1%}",
            f"{test['swap_change_rate']:.1%}",
        )
    console.print(table)


@zoo_app.command("train")
@_friendly
def zoo_train(
    name: Annotated[str, typer.Argument(help="normal, blind, or another name from 'mmpid zoo list'.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Where to save (default: a new folder).")] = None,
    seed: Seed = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    threads: Annotated[int, typer.Option(help="torch CPU threads; the shipped weights used 1.")] = 1,
) -> None:
    """Retrain a zoo model from its seed (bit-identical to the shipped one with --threads 1)."""
    from mmpid import zoo

    report = zoo.train(name, seed=seed, out_dir=out, device=device, threads=threads)
    console.print(report)


if __name__ == "__main__":  # pragma: no cover
    app()
