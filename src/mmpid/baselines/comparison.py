"""Run the chosen methods and PID on one model and dataset, side by side.

PID here is the span protocol at layer 0 with Y = the prediction: X_image = the image features
as they enter the language model (mean over image tokens), X_text = the question tokens' input
embeddings (mean), Y = ŷ among the dataset's answers, from the same forward passes the other
methods use. A method that cannot run on the model is reported with its reason in ``errors``;
the others still run.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmpid.baselines._core import MethodResult, check_positive_int, iter_probes, no_grad
from mmpid.errors import MmpidError, OptionError

if TYPE_CHECKING:  # pragma: no cover
    from mmpid.data import VQADataset
    from mmpid.models.base import Adapter

__all__ = ["METHODS", "Comparison", "compare", "pid_of_predictions"]

#: Every method, in the order they are reported.
METHODS = ("ablation", "perceptual", "shapley", "mmshap", "ig", "attention")
ATOMS = ("redundancy", "unique_image", "unique_text", "synergy")


@dataclass(frozen=True)
class Comparison:
    """Each method's verdict beside PID's, on one model and dataset.

    Attributes
    ----------
    methods : dict of str to MethodResult
    pid : dict
        Corrected atoms (bits) with intervals, and ``contribution_image``.
    errors : dict of str to str
        Methods that could not run on this model, with the reason.
    info : dict
        Model, dataset, N, seconds per method.
    """

    methods: dict[str, MethodResult]
    pid: dict[str, Any]
    errors: dict[str, str]
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "info": self.info,
            "pid": self.pid,
            "methods": {k: v.to_dict() for k, v in self.methods.items()},
            "errors": dict(self.errors),
        }

    def to_frame(self) -> Any:
        """One row per method (and one for PID): image share with its interval."""
        import pandas as pd

        rows = [
            {"method": k, "image_share": r.image_share.value, "ci_low": r.image_share.ci_low,
             "ci_high": r.image_share.ci_high, "seconds": r.cost.get("seconds"), "error": ""}
            for k, r in self.methods.items()
        ]
        rows += [{"method": k, "image_share": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                  "seconds": np.nan, "error": e} for k, e in self.errors.items()]
        c = self.pid.get("contribution_image", {})
        rows.append({"method": "pid", "image_share": c.get("value", np.nan), "ci_low": c.get("ci_low", np.nan),
                     "ci_high": c.get("ci_high", np.nan), "seconds": self.pid.get("seconds"), "error": ""})
        for atom in ATOMS:
            a = self.pid.get(atom, {})
            rows.append({"method": f"pid:{atom}_bits", "image_share": a.get("value", np.nan),
                         "ci_low": a.get("ci_low", np.nan), "ci_high": a.get("ci_high", np.nan),
                         "seconds": np.nan, "error": ""})
        return pd.DataFrame(rows)

    def write(self, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
        """Write ``compare.json``, ``compare.csv``, ``compare.png`` and ``compare.html``.

        ``compare.html`` is a page of its own (the comparison section alone). When ``out_dir`` is
        a run folder (it holds the ``results.json`` of ``mmpid analyze`` / ``estimate``), its
        ``report.html`` is re-rendered with the comparison as one of its sections (returned as
        ``"report"``); any later report rendered into the folder includes it too.
        """
        from mmpid.report.compare import comparison_figure, comparison_html
        from mmpid.report.plots import figure_png

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        data = self.to_dict()
        paths = {k: out / f"compare.{k}" for k in ("json", "csv", "png", "html")}
        paths["json"].write_text(json.dumps(data, indent=2, default=_json_default))
        self.to_frame().to_csv(paths["csv"], index=False)
        png = figure_png(comparison_figure(data))
        paths["png"].write_bytes(png)
        paths["html"].write_text(comparison_html(data, png))
        if (out / "results.json").is_file():
            from mmpid.report import render_report

            paths["report"] = render_report(out / "results.json", out).html
        return paths


def _json_default(v: Any) -> Any:
    if isinstance(v, (np.floating, np.integer)):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return str(v)


def pid_of_predictions(
    adapter: Adapter, dataset: VQADataset, *, batch_size: int = 64, seed: int = 0,
    n_bootstrap: int = 200, n_permutations: int = 50,
) -> dict[str, Any]:
    """PID of (pooled image features, pooled question embeddings -> ŷ), corrected bits."""
    import torch

    from mmpid.estimate import estimate

    t0 = time.perf_counter()
    xi, xt, y = [], [], []
    with no_grad():
        for probe, _ in iter_probes(adapter, dataset, batch_size=batch_size):
            im, tx = probe.image_mask.float()[..., None], probe.text_mask.float()[..., None]
            e = probe.embeds.float()
            xi.append(((e * im).sum(1) / im.sum(1)).cpu().numpy())
            xt.append(((e * tx).sum(1) / tx.sum(1).clamp(min=1)).cpu().numpy())
            y.append(probe.pred)
    est = estimate(np.concatenate(xi), np.concatenate(xt), np.concatenate(y).astype(np.int64), seed=seed,
                   n_bootstrap=n_bootstrap, n_permutations=n_permutations)
    out: dict[str, Any] = {}
    for name in (*ATOMS, "contribution_image"):
        a = getattr(est, name)
        out[name] = {"value": float(a.corrected), "ci_low": float(a.ci_low), "ci_high": float(a.ci_high)}
    out["seconds"] = time.perf_counter() - t0
    del torch
    return out


def _runners(options: dict[str, Any]) -> dict[str, Callable[..., MethodResult]]:
    from mmpid.baselines.ablation import ablation
    from mmpid.baselines.attention import attention
    from mmpid.baselines.gradients import integrated_gradients
    from mmpid.baselines.mmshap import mm_shap
    from mmpid.baselines.perceptual import perceptual_score
    from mmpid.baselines.shapley import modality_shapley

    b, s = options["batch_size"], options["seed"]
    return {
        "ablation": lambda a, d: ablation(a, d, batch_size=b, seed=s),
        "perceptual": lambda a, d: perceptual_score(a, d, batch_size=b, seed=s,
                                                    n_permutations=options["n_permutations"]),
        "shapley": lambda a, d: modality_shapley(a, d, batch_size=b, seed=s),
        "mmshap": lambda a, d: mm_shap(a, d, batch_size=b, seed=s, max_evals=options["max_evals"]),
        "ig": lambda a, d: integrated_gradients(a, d, batch_size=min(b, 16), seed=s, n_steps=options["ig_steps"]),
        "attention": lambda a, d: attention(a, d, batch_size=b, seed=s),
    }


def compare(
    model: str | Adapter,
    dataset: str | VQADataset = "easy-vqa",
    *,
    out_dir: str | os.PathLike[str] | None = None,
    methods: Sequence[str] = METHODS,
    split: str = "test",
    limit: int | None = None,
    batch_size: int = 64,
    max_evals: int = 200,
    ig_steps: int = 64,
    n_permutations: int = 3,
    pid: bool = True,
    device: str = "auto",
    seed: int = 0,
) -> Comparison:
    """Run ``methods`` and PID on one model and dataset; write the files when ``out_dir`` is given.

    Parameters
    ----------
    model : a hub id, a folder, ``zoo:NAME``, or a loaded adapter.
    dataset : ``"easy-vqa"``, another name :func:`mmpid.data.load_dataset` takes, or a dataset.
    methods : any of :data:`METHODS`.
    max_evals : MM-SHAP's permutation-explainer budget per sample.
    ig_steps : Integrated Gradients' steps.
    n_permutations : permutations of the perceptual score.

    Examples
    --------
    >>> c = compare("zoo:blind", limit=40, methods=["shapley"], pid=False)  # doctest: +SKIP
    >>> c.methods["shapley"].image_share.value < 0.01  # doctest: +SKIP
    True
    """
    chosen = list(methods) if not isinstance(methods, str) else [methods]
    bad = [m for m in chosen if m not in METHODS]
    if bad or not chosen:
        raise OptionError("methods", list(methods), f"a non-empty list of {list(METHODS)}")
    check_positive_int("batch_size", batch_size, minimum=2)
    check_positive_int("max_evals", max_evals, minimum=3)
    check_positive_int("ig_steps", ig_steps, minimum=2)
    check_positive_int("n_permutations", n_permutations)
    if isinstance(dataset, str):
        from mmpid.data import load_dataset

        dataset = load_dataset(dataset, split=split, limit=limit, seed=seed)
    if isinstance(model, str):
        from mmpid.models import load_adapter

        model = load_adapter(model, device=device)
    options = dict(batch_size=batch_size, seed=seed, max_evals=max_evals, ig_steps=ig_steps,
                   n_permutations=n_permutations)
    runners = _runners(options)
    results: dict[str, MethodResult] = {}
    errors: dict[str, str] = {}
    for name in chosen:
        try:
            results[name] = runners[name](model, dataset)
        except MmpidError as exc:  # the method cannot run on this model: say so, run the others
            errors[name] = f"{type(exc).__name__}: {exc}"
    pid_out: dict[str, Any] = {}
    if pid:
        try:
            pid_out = pid_of_predictions(model, dataset, batch_size=batch_size, seed=seed)
        except MmpidError as exc:
            errors["pid"] = f"{type(exc).__name__}: {exc}"
    info = {"model": getattr(model, "model_id", str(model)), "dataset": getattr(dataset, "name", str(dataset)),
            "n": len(dataset), "options": options,
            "pid_protocol": "span, layer 0 (pooled image features and question embeddings), Y = prediction"}
    comp = Comparison(methods=results, pid=pid_out, errors=errors, info=info)
    if out_dir is not None:
        comp.write(out_dir)
    return comp
