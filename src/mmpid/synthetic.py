"""Continuous data with a known PID, for tests, docs and sanity checks of an estimator.

Each structure draws discrete latent symbols ``a`` (image), ``b`` (text) and ``t`` (target)
from a small joint distribution whose BROJA PID is known exactly, then embeds each symbol as
a well-separated cluster in high-dimensional Gaussian noise. Embedding is injective and the
noise is independent of everything else, so the PID of the continuous data equals that of
the latent symbols (adding independent noise to a source or the target leaves BROJA atoms
unchanged).

>>> from mmpid import synthetic
>>> data = synthetic.make("xor", 1000, seed=0)
>>> data.x_image.shape, data.x_text.shape, data.y.shape
((1000, 64), (1000, 64), (1000,))
>>> data.truth["synergy"]
1.0
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmpid.errors import InputError

__all__ = ["MANY_CLASSES", "STRUCTURES", "TRUE_ATOMS", "SyntheticData", "latent_joint", "make"]

# AND with uniform inputs: I(a; y) = H(y) - H(y|a) = h(1/4) - 1/2 = 0.311278 bits = R; S = 1/2.
_H_QUARTER = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
_AND_R = _H_QUARTER - 0.5

#: The structures and their exact BROJA atoms in bits (image = source 1, text = source 2).
TRUE_ATOMS: dict[str, dict[str, float]] = {
    "independent": {"redundancy": 0.0, "unique_image": 0.0, "unique_text": 0.0, "synergy": 0.0},
    "xor": {"redundancy": 0.0, "unique_image": 0.0, "unique_text": 0.0, "synergy": 1.0},
    "and": {"redundancy": _AND_R, "unique_image": 0.0, "unique_text": 0.0, "synergy": 0.5},
    "unique_image": {"redundancy": 0.0, "unique_image": 1.0, "unique_text": 0.0, "synergy": 0.0},
    "unique_text": {"redundancy": 0.0, "unique_image": 0.0, "unique_text": 1.0, "synergy": 0.0},
    "redundant": {"redundancy": 1.0, "unique_image": 0.0, "unique_text": 0.0, "synergy": 0.0},
    # two structures side by side: y = (a, b) is unique image + unique text ("copy");
    # a = (r, a1), b = (r, b1), y = (r, a1 xor b1) is redundancy + synergy ("rdn xor").
    "copy": {"redundancy": 0.0, "unique_image": 1.0, "unique_text": 1.0, "synergy": 0.0},
    "redundant_xor": {"redundancy": 1.0, "unique_image": 0.0, "unique_text": 0.0, "synergy": 1.0},
    # Many latent classes per source (what k-means must resolve), with closed-form atoms:
    # a, b uniform on 16 symbols unless stated. Bits of a source that the target ignores
    # are independent noise, which leaves BROJA atoms unchanged.
    "unique_16": {"redundancy": 0.0, "unique_image": 3.0, "unique_text": 0.0, "synergy": 0.0},
    "redundant_16": {"redundancy": 4.0, "unique_image": 0.0, "unique_text": 0.0, "synergy": 0.0},
    "xor_16": {"redundancy": 0.0, "unique_image": 0.0, "unique_text": 0.0, "synergy": 2.0},
    "and_16": {"redundancy": _AND_R, "unique_image": 0.0, "unique_text": 0.0, "synergy": 0.5},
    "mixed_32": {"redundancy": 1.0, "unique_image": 1.0, "unique_text": 1.0, "synergy": 1.0},
}
STRUCTURES: tuple[str, ...] = tuple(TRUE_ATOMS)
#: The structures whose sources have 16-32 latent classes.
MANY_CLASSES: tuple[str, ...] = ("unique_16", "redundant_16", "xor_16", "and_16", "mixed_32")


def latent_joint(structure: str) -> np.ndarray:
    """The joint p(a, b, t) of the latent symbols, shape (n_a, n_b, n_t), summing to 1."""
    _check_structure(structure)
    if structure == "independent":
        return np.full((4, 4, 4), 1.0 / 64)
    if structure in MANY_CLASSES:
        return _many_classes(structure)
    if structure in ("redundant_xor",):
        p = np.zeros((4, 4, 4))
        for r in range(2):
            for a1 in range(2):
                for b1 in range(2):
                    p[2 * r + a1, 2 * r + b1, 2 * r + (a1 ^ b1)] = 1.0 / 8
        return p
    if structure == "copy":
        p = np.zeros((2, 2, 4))
        for a in range(2):
            for b in range(2):
                p[a, b, 2 * a + b] = 0.25
        return p
    if structure == "redundant":
        p = np.zeros((2, 2, 2))
        p[0, 0, 0] = p[1, 1, 1] = 0.5
        return p
    rule = {
        "xor": lambda a, b: a ^ b,
        "and": lambda a, b: a & b,
        "unique_image": lambda a, b: a,
        "unique_text": lambda a, b: b,
    }[structure]
    p = np.zeros((2, 2, 2))
    for a in range(2):
        for b in range(2):
            p[a, b, rule(a, b)] = 0.25
    return p


def _many_classes(structure: str) -> np.ndarray:
    """Latent joints of :data:`MANY_CLASSES`.

    - ``unique_16``: t = a mod 8 (U_image = 3 bits);
    - ``redundant_16``: a = b = t (R = 4 bits);
    - ``xor_16``: t = (a + b) mod 4 (S = 2 bits: each source alone says nothing of t);
    - ``and_16``: t = (a mod 2) AND (b mod 2), AND's atoms (the other 3 bits are noise);
    - ``mixed_32``: 32 symbols a source, a = (r, u1, s1, 2 noise bits), b = (r, u2, s2, 2 noise
      bits), t = (r, u1, u2, s1 xor s2) (16 symbols): four independent subsystems, one bit of
      each atom (BROJA atoms add over independent subsystems).
    """
    if structure == "mixed_32":
        p = np.zeros((32, 32, 16))
        for a in range(32):
            for b in range(32):
                r, u1, s1 = a & 1, (a >> 1) & 1, (a >> 2) & 1
                r2, u2, s2 = b & 1, (b >> 1) & 1, (b >> 2) & 1
                if r2 == r:  # the shared bit
                    p[a, b, r | u1 << 1 | u2 << 2 | (s1 ^ s2) << 3] = 1.0
        return p / p.sum()
    rule, n_t = {
        "unique_16": (lambda a, b: a % 8, 8),
        "redundant_16": (lambda a, b: a if a == b else -1, 16),
        "xor_16": (lambda a, b: (a + b) % 4, 4),
        "and_16": (lambda a, b: (a % 2) & (b % 2), 2),
    }[structure]
    p = np.zeros((16, 16, n_t))
    for a in range(16):
        for b in range(16):
            t = rule(a, b)
            if t >= 0:
                p[a, b, t] = 1.0
    return p / p.sum()


@dataclass(frozen=True)
class SyntheticData:
    """Samples with a known PID.

    Attributes
    ----------
    x_image : (N, dim_image) floats, the embedded image symbol.
    x_text : (N, dim_text) floats, the embedded text symbol.
    y : (N,) int labels, or (N, dim_target) floats when a target dimension was asked for.
    a, b, t : (N,) the latent symbols of image, text and target.
    structure : the structure's name.
    truth : the exact atoms in bits (redundancy, unique_image, unique_text, synergy,
        mutual_information) and ``contribution_image`` (NaN when both uniques are 0).
    """

    x_image: np.ndarray
    x_text: np.ndarray
    y: np.ndarray
    a: np.ndarray
    b: np.ndarray
    t: np.ndarray
    structure: str
    truth: dict[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return int(self.a.shape[0])

    def to_dict(self) -> dict[str, Any]:
        """The description (not the arrays): structure, N, dimensions, true atoms."""
        return {
            "structure": self.structure,
            "n": self.n,
            "dim_image": int(self.x_image.shape[1]),
            "dim_text": int(self.x_text.shape[1]),
            "dim_target": None if self.y.ndim == 1 else int(self.y.shape[1]),
            "truth": dict(self.truth),
        }


def _check_structure(structure: str) -> None:
    if structure not in TRUE_ATOMS:
        raise InputError(f"'structure' must be one of {list(STRUCTURES)}; got {structure!r}.")


def _embed(
    symbols: np.ndarray, n_symbols: int, dim: int, rng: np.random.Generator, separation: float, noise: float
) -> np.ndarray:
    centres = rng.normal(size=(n_symbols, dim))
    centres *= separation / np.linalg.norm(centres, axis=1, keepdims=True)
    return centres[symbols] + rng.normal(scale=noise / math.sqrt(dim), size=(len(symbols), dim))


def make(
    structure: str,
    n: int,
    *,
    dim_image: int = 64,
    dim_text: int = 64,
    dim_target: int | None = None,
    separation: float = 4.0,
    noise: float = 1.0,
    seed: int = 0,
) -> SyntheticData:
    """Draw N samples of a structure with a known PID.

    Parameters
    ----------
    structure : one of :data:`STRUCTURES`: ``independent`` (a, b, t independent, 4 symbols
        each), ``xor`` (t = a xor b), ``and`` (t = a and b), ``unique_image`` (t = a),
        ``unique_text`` (t = b), ``redundant`` (a = b = t), ``copy`` (t = (a, b)) and
        ``redundant_xor`` (a shared bit plus an xor). Binary a, b unless stated.
    n : number of samples.
    dim_image, dim_text : dimensions of the embedded sources.
    dim_target : None for integer target labels (N,); an int to embed the target too.
    separation : distance of every cluster centre from the origin (centres are random
        directions, so about ``separation * sqrt(2)`` apart).
    noise : norm of the isotropic Gaussian noise (per-coordinate sd ``noise / sqrt(dim)``).
    seed : seeds the symbols, the centres and the noise.

    Returns
    -------
    SyntheticData with the samples and the true atoms in bits.

    Examples
    --------
    >>> d = make("and", 500, dim_target=32, seed=1)
    >>> d.y.shape, round(d.truth["redundancy"], 6), d.truth["synergy"]
    ((500, 32), 0.311278, 0.5)
    """
    _check_structure(structure)
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InputError(f"'n' must be an int >= 1; got {n!r}.")
    for name, dim in (("dim_image", dim_image), ("dim_text", dim_text)):
        if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
            raise InputError(f"'{name}' must be an int >= 1; got {dim!r}.")
    if dim_target is not None and (
        isinstance(dim_target, bool) or not isinstance(dim_target, (int, np.integer)) or dim_target < 1
    ):
        raise InputError(f"'dim_target' must be None (labels) or an int >= 1; got {dim_target!r}.")
    if not separation > 0 or not noise >= 0:
        raise InputError(
            f"'separation' must be > 0 and 'noise' >= 0; got separation={separation!r}, noise={noise!r}."
        )
    rng = np.random.default_rng(seed)
    p = latent_joint(structure)
    cells = rng.choice(p.size, size=int(n), p=p.ravel())
    a, b, t = np.unravel_index(cells, p.shape)
    a, b, t = a.astype(np.int64), b.astype(np.int64), t.astype(np.int64)
    x_image = _embed(a, p.shape[0], int(dim_image), rng, separation, noise)
    x_text = _embed(b, p.shape[1], int(dim_text), rng, separation, noise)
    y = t.copy() if dim_target is None else _embed(t, p.shape[2], int(dim_target), rng, separation, noise)
    truth = dict(TRUE_ATOMS[structure])
    truth["mutual_information"] = sum(truth.values())
    ui, ut = truth["unique_image"], truth["unique_text"]
    truth["contribution_image"] = ui / (ui + ut) if ui + ut > 0 else math.nan
    return SyntheticData(x_image, x_text, y, a, b, t, structure, truth)
