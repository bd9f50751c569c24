"""The exact two-player modality game: image and question as the players, four coalitions.

With v(∅), v(I), v(T), v(IT) the value of each coalition (here log p(ŷ), the absent modality
masked as in :mod:`mmpid.baselines.ablation`):

    φ_I  = [(v(I) - v(∅)) + (v(IT) - v(T))] / 2
    φ_T  = [(v(T) - v(∅)) + (v(IT) - v(I))] / 2
    φ_IT = v(IT) - v(I) - v(T) + v(∅)      (Shapley interaction = k-SII = STII = FSII = Möbius)

If v(S) = I(X_S; Y), then v(I) = R + U_I, v(T) = R + U_T, v(IT) = R + U_I + U_T + S and
φ_I = U_I + (R + S)/2, φ_T = U_T + (R + S)/2, φ_IT = S - R: redundancy and synergy get the
same Shapley values and cancel in the interaction.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmpid.baselines._core import MethodResult, bootstrap_mean, bootstrap_share, check_positive_int, iter_probes, no_grad
from mmpid.errors import InputError

if TYPE_CHECKING:  # pragma: no cover
    from mmpid.data import VQADataset
    from mmpid.models.base import Adapter

__all__ = ["TwoPlayerGame", "modality_shapley", "two_player_game"]


@dataclass(frozen=True)
class TwoPlayerGame:
    """Shapley values and interaction of the two-player game, arrays of the inputs' shape."""

    phi_image: np.ndarray
    phi_text: np.ndarray
    interaction: np.ndarray

    def to_dict(self) -> dict[str, list]:
        return {k: np.asarray(v).tolist() for k, v in vars(self).items()}


def two_player_game(v_empty, v_image, v_text, v_both) -> TwoPlayerGame:
    """Exact Shapley values and interaction index of a two-player game (any broadcastable arrays).

    >>> g = two_player_game(0.0, 1.0, 1.0, 1.0)   # pure redundancy R = 1
    >>> float(g.phi_image), float(g.phi_text), float(g.interaction)
    (0.5, 0.5, -1.0)
    >>> g = two_player_game(0.0, 0.0, 0.0, 1.0)   # pure synergy S = 1
    >>> float(g.phi_image), float(g.phi_text), float(g.interaction)
    (0.5, 0.5, 1.0)
    """
    v = [np.asarray(x, dtype=float) for x in (v_empty, v_image, v_text, v_both)]
    for name, x in zip(("v_empty", "v_image", "v_text", "v_both"), v):
        if not np.all(np.isfinite(x)):
            raise InputError(f"The {name!r} parameter must be finite. Got {x!r}.")
    e, i, t, b = np.broadcast_arrays(*v)
    return TwoPlayerGame(
        phi_image=((i - e) + (b - t)) / 2,
        phi_text=((t - e) + (b - i)) / 2,
        interaction=b - i - t + e,
    )


def modality_shapley(
    adapter: Adapter, dataset: VQADataset, *, batch_size: int = 64, seed: int = 0, n_boot: int = 1000
) -> MethodResult:
    """The exact two-player game on every sample (4 coalitions each), value log p(ŷ) in bits.

    Returns
    -------
    MethodResult
        ``stats``: ``phi_image``, ``phi_text``, ``interaction`` and the coalition values
        ``v_empty``, ``v_image``, ``v_text``, ``v_both`` (bits). ``image_share`` is
        |φ_I| / (|φ_I| + |φ_T|) of the means.
    """
    check_positive_int("batch_size", batch_size, minimum=2)
    t0 = time.perf_counter()
    cols: dict[str, list[np.ndarray]] = {k: [] for k in ("v_empty", "v_image", "v_text", "v_both")}
    passes = 0
    with no_grad():
        for probe, _ in iter_probes(adapter, dataset, batch_size=batch_size):
            for key, (mi, mt) in {"v_empty": (True, True), "v_image": (False, True),
                                  "v_text": (True, False), "v_both": (False, False)}.items():
                cols[key].append(probe.value(probe.masked(image=mi, text=mt)).cpu().numpy().astype(float))
            passes += probe.n_passes
    per = {k: np.concatenate(v) for k, v in cols.items()}
    game = two_player_game(per["v_empty"], per["v_image"], per["v_text"], per["v_both"])
    per.update(phi_image=game.phi_image, phi_text=game.phi_text, interaction=game.interaction)
    stats = {k: bootstrap_mean(v, n_boot=n_boot, seed=seed) for k, v in per.items()}
    return MethodResult(
        method="shapley",
        image_share=bootstrap_share(game.phi_image, game.phi_text, n_boot=n_boot, seed=seed),
        stats=stats,
        per_sample=per,
        cost={"seconds": time.perf_counter() - t0, "forward_passes": passes},
        definition="|φ_image| / (|φ_image| + |φ_text|) of the mean two-player Shapley values",
    )
