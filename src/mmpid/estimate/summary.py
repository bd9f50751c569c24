"""From plug-in, bootstrap and null atoms to the reported estimates: bias correction,
intervals, the null's verdicts and the contribution metric (shared by every estimator)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmpid.estimate.bootstrap import (
    SOLVER_ATOL,
    bootstrap_bias,
    extrapolated_bias,
    interval,
    reflected_replicates,
)
from mmpid.estimate.contribution import contribution_image
from mmpid.estimate.null import summarise_null
from mmpid.estimate.result import BIT_ATOMS, AtomEstimate

__all__ = ["summarise", "interval_kind"]


def interval_kind(correction: str, level: float) -> str:
    """What the reported interval is, in words (results.json, the CSV and the report show it)."""
    pct = f"{100 * level:g}%"
    rule = {
        "extrapolated": "the rate-extrapolated bootstrap bias correction",
        "bootstrap": "the bootstrap bias correction",
        "null": "the null-mean bias correction",
        "gaussian": "exact Gaussian bias of the mutual informations, bootstrap bias of the "
        "union information",
    }.get(correction, f"the {correction!r} bias correction")
    return (
        f"{pct} basic bootstrap interval, centred on the corrected value and widened on both "
        f"sides by the size of the correction ({rule})"
    )


def summarise(
    plugin: np.ndarray,
    boot: np.ndarray,
    null: np.ndarray,
    *,
    level: float,
    correction: str,
    note: Any,
    bias: np.ndarray | None = None,
    sub: np.ndarray | None = None,
    sizes: tuple[int, int] | None = None,
) -> tuple[dict[str, AtomEstimate], dict[str, Any]]:
    """Turn plug-in (4,), bootstrap (B, 4) and null (P, 4) atoms into the six AtomEstimates.

    ``bias`` (4,), when given, is removed instead of the estimate that ``correction`` names.
    ``correction="extrapolated"`` needs ``sub`` (B', 4), the atoms of resamples of size
    ``sizes[1]`` drawn from the ``sizes[0]`` samples (see
    :func:`mmpid.estimate.bootstrap.extrapolated_bias`); without them it falls back to the
    bootstrap's own estimate (rate 1).
    """
    summary = summarise_null(plugin, null, atol=SOLVER_ATOL)
    boot_bias = bootstrap_bias(plugin, boot)
    rate = np.ones_like(boot_bias)
    if bias is None:
        if correction == "extrapolated" and sub is not None and sizes is not None:
            bias, rate = extrapolated_bias(plugin, boot, sub, *sizes)
        elif correction in ("bootstrap", "extrapolated"):
            bias = boot_bias
        else:
            bias = summary.mean
    corrected = plugin - bias
    reflected = reflected_replicates(plugin, boot, bias)
    lo, hi = interval(reflected, level)
    # widen by the size of the correction applied (its error can be as large, see estimate())
    slack = np.abs(bias) + SOLVER_ATOL
    lo, hi = lo - slack, hi + slack

    out: dict[str, AtomEstimate] = {}
    per_atom: dict[str, dict[str, float]] = {}
    for j, atom in enumerate(BIT_ATOMS):
        out[atom] = AtomEstimate(plugin[j], summary.mean[j], corrected[j], lo[j], hi[j])
        per_atom[atom] = {
            "null_sd": float(summary.sd[j]),
            "p_value": float(summary.p_value[j]),
            "bootstrap_bias": float(boot_bias[j]),
            "bias_removed": float(bias[j]),
            "bias_rate": float(rate[j]),
            "bootstrap_sd": float(np.std(boot[:, j], ddof=1)),
            "interval_widening": float(slack[j]),
        }

    within = [a for a in BIT_ATOMS if per_atom[a]["p_value"] > 1.0 - level]
    if within:
        note(
            "Not distinguishable from the permutation null (plug-in not above the null at "
            f"level {level}): {', '.join(within)}. The permuted joint fills every cell, so "
            "where the data's joint is sparse (a target nearly determined by the sources) the "
            "null carries more plug-in bias than the data, and this comparison understates "
            "the atom: read its corrected value and interval.",
            emit=False,
        )
    negative = [a for a in BIT_ATOMS if out[a].corrected < 0]
    if negative:
        parts = [
            f"{a} = {out[a].corrected:.4f}" + (" (interval reaches 0)" if out[a].ci_high >= 0 else "")
            for a in negative
        ]
        note(
            "Negative corrected atoms, kept as they are (not clamped): " + "; ".join(parts) + ".",
            emit=False,
        )

    # contribution metric
    iu, it = BIT_ATOMS.index("unique_image"), BIT_ATOMS.index("unique_text")
    c_plugin = float(contribution_image(plugin[iu], plugin[it]))
    c_null_all = contribution_image(null[:, iu], null[:, it])
    c_null = float(np.mean(c_null_all[np.isfinite(c_null_all)])) if np.isfinite(c_null_all).any() else math.nan
    undefined = out["unique_image"].ci_low <= 0 and out["unique_text"].ci_low <= 0
    if undefined:
        c_corr = c_lo = c_hi = math.nan
        note(
            "The contribution metric is undefined: neither unique atom is distinguishable from "
            "zero (both intervals reach 0), so U_image / (U_image + U_text) would divide noise "
            "by noise.",
            emit=False,
        )
    else:
        c_corr = float(contribution_image(corrected[iu], corrected[it]))
        # the same widening: C grows with U_image and shrinks with U_text
        su, st = slack[iu], slack[it]
        c_low_rep = contribution_image(reflected[:, iu] - su, reflected[:, it] + st)
        c_high_rep = contribution_image(reflected[:, iu] + su, reflected[:, it] - st)
        c_lo = float(interval(c_low_rep[:, None], level)[0][0])
        c_hi = float(interval(c_high_rep[:, None], level)[1][0])
    out["contribution_image"] = AtomEstimate(c_plugin, c_null, c_corr, c_lo, c_hi)
    out["contribution_text"] = AtomEstimate(1 - c_plugin, 1 - c_null, 1 - c_corr, 1 - c_hi, 1 - c_lo)
    return out, {
        "atoms": per_atom,
        "contribution_defined": not undefined,
        "interval_kind": interval_kind(correction, level),
    }
