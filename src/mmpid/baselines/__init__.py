"""The methods people use today, on the same adapters, datasets and value function as PID.

One module per method family, all scoring log p(ŷ) (bits) of the model's own unperturbed answer
at the answer position (see :mod:`mmpid.baselines._core`):

- :func:`ablation` (blank / swapped image, masked question): Δ log p(ŷ), KL, flip rate, Δ accuracy;
- :func:`perceptual_score` (Gat et al. 2021): accuracy drop under a permuted modality;
- :func:`modality_shapley` and :func:`two_player_game`: the exact two-player modality game;
- :func:`mm_shap` (Parcalabescu & Frank 2023): token Shapley values with ``shap``, T-SHAP;
- :func:`integrated_gradients` (``captum``) on the merged input embeddings;
- :func:`attention`: attention mass, density and rollout from the answer position;
- :func:`compare`: all of them and PID, written as compare.json / .csv / .png / .html.

torch, shap and captum load when a method runs.
"""

from __future__ import annotations

from mmpid.baselines._core import Interval, MethodResult, bootstrap_mean, bootstrap_share
from mmpid.baselines.ablation import ablation
from mmpid.baselines.attention import attention
from mmpid.baselines.comparison import METHODS, Comparison, compare
from mmpid.baselines.gradients import integrated_gradients
from mmpid.baselines.mmshap import mm_shap
from mmpid.baselines.perceptual import perceptual_score
from mmpid.baselines.shapley import TwoPlayerGame, modality_shapley, two_player_game

__all__ = [
    "METHODS",
    "Comparison",
    "Interval",
    "MethodResult",
    "TwoPlayerGame",
    "ablation",
    "attention",
    "bootstrap_mean",
    "bootstrap_share",
    "compare",
    "integrated_gradients",
    "mm_shap",
    "modality_shapley",
    "perceptual_score",
    "two_player_game",
]
