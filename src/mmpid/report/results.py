"""The results file: one record per (layer, atom), the run's configuration and its warnings.

``results.json`` is the authoritative file; ``results.csv`` holds the same records in long
format (one row per layer and atom) for spreadsheets and pandas. Schema of ``results.json``::

    {
      "mmpid_version": "0.2.0",
      "config":   {...},                      # the run's settings, any JSON object
      "layers":   [0, 1, 2],
      "warnings": [{"layer": 3, "message": "..."}],   # layer null = the whole run
      "records":  [{"layer": 0, "atom": "redundancy", "plugin": 0.1, "null_mean": 0.02,
                    "corrected": 0.08, "ci_low": 0.05, "ci_high": 0.11}, ...]
    }

A run with both estimators (``estimator="both"``) adds two keys; a single-estimator file has
neither and reads as before::

      "gaussian":      {"config": {...}, "warnings": [...], "records": [...]},  # same layers
      "disagreements": [{"layer": 3, "atom": "synergy",
                         "discrete": {"corrected": 0.98, "ci_low": 0.95, "ci_high": 1.01},
                         "gaussian": {"corrected": 0.00, "ci_low": -0.01, "ci_high": 0.01},
                         "difference": 0.98, "reading": "synergy that only ..."}]

``records`` are then the discrete estimator's, ``config["estimator"]`` is ``"both"`` and
``config["disagreement_rule"]`` says what counts as a disagreement
(:mod:`mmpid.estimate.compare`). ``results.csv`` has a column ``estimator`` naming each row's
estimator (both estimators' rows for such a run).

Atoms ``redundancy``, ``unique_image``, ``unique_text`` and ``synergy`` are in bits; the
contributions ``contribution_image`` and ``contribution_text`` are fractions in [0, 1] and may be
undefined (NaN; ``null`` in JSON, an empty cell in CSV) when both unique atoms are about zero.
Every layer carries all six atoms. Negative corrected values are kept as they are, never clamped.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmpid.atomic import write_text_atomic
from mmpid.errors import InputError, StoreError
from mmpid.estimate.compare import Disagreement
from mmpid.estimate.result import ATOMS, BIT_ATOMS, CONTRIBUTIONS, FIELDS
from mmpid.versions import mmpid_version

__all__ = [
    "ATOMS",
    "BIT_ATOMS",
    "CONTRIBUTIONS",
    "FIELDS",
    "RESULTS_CSV",
    "RESULTS_JSON",
    "AtomRecord",
    "interval_label",
    "LayerResults",
    "LayerWarning",
    "load",
]

#: The columns of ``results.csv`` and of :meth:`LayerResults.to_frame`.
COLUMNS: tuple[str, ...] = ("layer", "atom", *FIELDS)

RESULTS_JSON = "results.json"
RESULTS_CSV = "results.csv"
_TOP_KEYS = ("mmpid_version", "config", "layers", "warnings", "records")
#: Keys only a run with both estimators has (see the module docstring).
_BOTH_KEYS = ("gaussian", "disagreements")
_SECOND_KEYS = ("config", "warnings", "records")


def level_text(results: LayerResults) -> str:
    """The confidence level of the results' intervals as a percentage ("95%"), for labels."""
    try:
        return f"{100 * float(results.config.get('level', 0.95)):g}%"
    except (TypeError, ValueError):
        return "95%"


def interval_label(results: LayerResults) -> str:
    """A short label for the intervals, for legends: "95% interval (basic bootstrap, widened)"."""
    kind = results.interval_kind or ""
    how = "basic bootstrap, widened" if "basic bootstrap" in kind else "bootstrap"
    return f"{level_text(results)} interval ({how})"


def _as_float(value: Any, *, what: str) -> float:
    """A finite float or NaN (None means NaN); anything else is an InputError."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(f"{what} must be a number or null; got {value!r}.")
    out = float(value)
    if math.isinf(out):
        raise InputError(f"{what} must be finite or NaN (undefined); got {out}.")
    return out


def _as_layer(value: Any, *, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return int(value)
        raise InputError(f"{what} must be an integer layer index; got {value!r}.")
    return int(value)


@dataclass(frozen=True, eq=False)
class AtomRecord:
    """One atom's estimate at one layer.

    Bits for the four atoms, fractions for the contributions; NaN means undefined.
    Two records are equal when every field is equal, NaN matching NaN.
    """

    layer: int
    atom: str
    plugin: float
    null_mean: float
    corrected: float
    ci_low: float
    ci_high: float

    def __post_init__(self) -> None:
        where = f"record (layer={self.layer!r}, atom={self.atom!r})"
        object.__setattr__(self, "layer", _as_layer(self.layer, what=f"{where}: 'layer'"))
        if self.atom not in ATOMS:
            raise InputError(f"{where}: 'atom' must be one of {list(ATOMS)}; got {self.atom!r}.")
        for name in FIELDS:
            value = _as_float(getattr(self, name), what=f"{where}: {name!r}")
            object.__setattr__(self, name, value)
        if self.ci_low > self.ci_high:  # False when either is NaN
            raise InputError(
                f"{where}: 'ci_low' ({self.ci_low}) must not exceed 'ci_high' ({self.ci_high})."
            )

    @property
    def unit(self) -> str:
        """``"bits"`` for the four atoms, ``"fraction"`` for the contributions."""
        return "bits" if self.atom in BIT_ATOMS else "fraction"

    def _key(self) -> tuple[Any, ...]:
        values = tuple(None if math.isnan(v) else v for v in (getattr(self, f) for f in FIELDS))
        return (self.layer, self.atom, *values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AtomRecord):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def to_dict(self) -> dict[str, Any]:
        """The JSON record: NaN becomes None (``null``)."""
        out: dict[str, Any] = {"layer": self.layer, "atom": self.atom}
        for name in FIELDS:
            value = getattr(self, name)
            out[name] = None if math.isnan(value) else value
        return out


@dataclass(frozen=True)
class LayerWarning:
    """A warning raised while estimating one layer (``layer=None``: the whole run)."""

    layer: int | None
    message: str

    def __post_init__(self) -> None:
        if self.layer is not None:
            object.__setattr__(self, "layer", _as_layer(self.layer, what="warning 'layer'"))
        if not isinstance(self.message, str) or not self.message:
            raise InputError(
                f"A warning's 'message' must be a non-empty string; got {self.message!r}."
            )

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "message": self.message}


def _normalise_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise InputError(
            f"'config' must be a mapping (a JSON object); got {type(config).__name__}."
        )
    try:
        text = json.dumps(dict(config), allow_nan=False, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise InputError(
            f"'config' must hold only JSON values (str, number, bool, None, lists, dicts with "
            f"string keys, finite floats); {exc}."
        ) from None
    return json.loads(text)


def _json_default(value: Any) -> Any:
    """numpy scalars/arrays and paths in a config become plain JSON values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise TypeError(f"value {value!r} of type {type(value).__name__} is not JSON serialisable")


@dataclass(frozen=True)
class LayerResults:
    """The PID atoms of every analysed layer, with the run's configuration and warnings.

    Build it with :meth:`from_estimates` (or :meth:`from_frame`), save it with :meth:`save`,
    read it back with :func:`load`. It is validated on construction: every layer in ``layers``
    has exactly the six atoms of :data:`ATOMS`, no record names a layer outside ``layers``.

    Parameters
    ----------
    config : the run's settings (model, dataset, protocol, n, clusters, level, ...); JSON values.
    layers : the layer indices, any order (kept sorted).
    warnings : :class:`LayerWarning` objects (or ``{"layer", "message"}`` mappings).
    records : :class:`AtomRecord` objects (or mappings with the keys of :data:`COLUMNS`).
    mmpid_version : the version that wrote the results.
    gaussian : for a run with both estimators (``config["estimator"] == "both"``), the
        Gaussian estimator's results of the same layers (``records`` are then the discrete
        estimator's); None otherwise.
    disagreements : with ``gaussian``, the atoms and layers where the two disagree
        (:class:`mmpid.estimate.compare.Disagreement`, or their ``to_dict()`` mappings).

    Examples
    --------
    >>> rows = [{"layer": 0, "atom": a, "plugin": 0.2, "null_mean": 0.1, "corrected": 0.1,
    ...          "ci_low": 0.05, "ci_high": 0.15} for a in ATOMS]
    >>> res = LayerResults({"model": "toy"}, [0], [], rows)
    >>> float(res.to_frame().set_index("atom").loc["synergy", "corrected"])
    0.1
    """

    config: dict[str, Any]
    layers: tuple[int, ...]
    warnings: tuple[LayerWarning, ...] = ()
    records: tuple[AtomRecord, ...] = ()
    mmpid_version: str = field(default_factory=mmpid_version)
    gaussian: LayerResults | None = None
    disagreements: tuple[Disagreement, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", _normalise_config(self.config))
        if isinstance(self.layers, (str, bytes)) or not isinstance(self.layers, Iterable):
            raise InputError(f"'layers' must be a sequence of integers; got {self.layers!r}.")
        layers = [_as_layer(v, what="each entry of 'layers'") for v in self.layers]
        if not layers:
            raise InputError("'layers' must name at least one layer; got an empty sequence.")
        if len(set(layers)) != len(layers):
            dup = sorted({v for v in layers if layers.count(v) > 1})
            raise InputError(f"'layers' must not repeat a layer; got {dup} more than once.")
        object.__setattr__(self, "layers", tuple(sorted(layers)))

        warns = tuple(
            w if isinstance(w, LayerWarning) else LayerWarning(**_warning_kwargs(w))
            for w in self.warnings
        )
        object.__setattr__(self, "warnings", warns)

        recs = [
            r if isinstance(r, AtomRecord) else AtomRecord(**_record_kwargs(r))
            for r in self.records
        ]
        seen: dict[tuple[int, str], AtomRecord] = {}
        for rec in recs:
            key = (rec.layer, rec.atom)
            if key in seen:
                raise InputError(f"'records' holds layer {rec.layer}, atom {rec.atom!r} twice.")
            seen[key] = rec
        layer_set = set(self.layers)
        stray = sorted({layer for layer, _ in seen} - layer_set)
        if stray:
            raise InputError(
                f"'records' name layers {stray} that 'layers' ({list(self.layers)}) does not list."
            )
        for layer in self.layers:
            missing = [a for a in ATOMS if (layer, a) not in seen]
            if missing:
                raise InputError(
                    f"Layer {layer} lacks the atoms {missing}; "
                    f"every layer needs all of {list(ATOMS)}."
                )
        order = {a: i for i, a in enumerate(ATOMS)}
        recs.sort(key=lambda r: (r.layer, order[r.atom]))
        object.__setattr__(self, "records", tuple(recs))
        if not isinstance(self.mmpid_version, str):
            raise InputError(f"'mmpid_version' must be a string; got {self.mmpid_version!r}.")
        if self.gaussian is not None:
            if not isinstance(self.gaussian, LayerResults):
                raise InputError(
                    f"'gaussian' must be a LayerResults or None; got {type(self.gaussian).__name__}."
                )
            if self.gaussian.layers != self.layers:
                raise InputError(
                    f"'gaussian' holds layers {list(self.gaussian.layers)}; the discrete results "
                    f"hold {list(self.layers)}: both estimators must cover the same layers."
                )
        elif self.disagreements:
            raise InputError("'disagreements' needs the second estimator's results ('gaussian').")
        found = tuple(
            d if isinstance(d, Disagreement) else Disagreement.from_dict(d) for d in self.disagreements
        )
        object.__setattr__(self, "disagreements", found)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_estimates(
        cls,
        estimates: Mapping[int, Any],
        config: Mapping[str, Any] | None = None,
        *,
        warnings: Sequence[str] = (),
    ) -> LayerResults:
        """Collect one estimate per layer.

        Parameters
        ----------
        estimates : layer index -> an object with ``.to_frame()`` (a DataFrame with the columns
            ``atom, plugin, null_mean, corrected, ci_low, ci_high``, one row per atom of
            :data:`ATOMS`; extra columns are ignored) and ``.warnings`` (a tuple of str), such as
            :class:`mmpid.estimate.Estimate`.
        config : the run's settings, stored as they are (JSON values). When the estimates carry
            their own ``.config`` (as :class:`mmpid.estimate.Estimate` does) and ``config`` has
            no ``"estimator"`` key, the settings shared by every layer are added under
            ``"estimator"`` (e.g. the bias-correction rule the report describes); when they
            carry ``.clusters`` that differ between layers, ``"clusters_by_layer"`` is added.
        warnings : run-wide warnings (stored with ``layer=None``).
        """
        if not isinstance(estimates, Mapping) or not estimates:
            got = "an empty mapping" if isinstance(estimates, Mapping) else type(estimates).__name__
            raise InputError(
                f"'estimates' must be a non-empty mapping of layer index -> Estimate; got {got}."
            )
        records: list[AtomRecord] = []
        warns: list[LayerWarning] = [LayerWarning(None, str(m)) for m in warnings]
        for raw_layer, est in estimates.items():
            layer = _as_layer(raw_layer, what="each key of 'estimates'")
            to_frame = getattr(est, "to_frame", None)
            if not callable(to_frame):
                raise InputError(
                    f"estimates[{layer}] must have a to_frame() method (an Estimate); "
                    f"got {type(est).__name__}."
                )
            frame = to_frame()
            if "atom" not in frame.columns and frame.index.name == "atom":
                frame = frame.reset_index()
            need = ["atom", *FIELDS]
            lacking = [c for c in need if c not in frame.columns]
            if lacking:
                raise InputError(
                    f"estimates[{layer}].to_frame() lacks the columns {lacking}; "
                    f"it needs {need} and has {list(frame.columns)}."
                )
            for row in frame[need].to_dict(orient="records"):
                records.append(AtomRecord(layer=layer, **row))
            for message in getattr(est, "warnings", ()) or ():
                warns.append(LayerWarning(layer, str(message)))
        layers = sorted(_as_layer(k, what="each key of 'estimates'") for k in estimates)
        return cls(_with_provenance(config, estimates), tuple(layers), tuple(warns), tuple(records))

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        config: Mapping[str, Any] | None = None,
        *,
        warnings: Iterable[LayerWarning | Mapping[str, Any]] = (),
    ) -> LayerResults:
        """Rebuild results from the long table of :meth:`to_frame` (e.g. ``results.csv``).

        The layers are those the table holds; the CSV carries no configuration or warnings,
        so pass them here if you have them.
        """
        if not isinstance(frame, pd.DataFrame):
            raise InputError(f"'frame' must be a pandas DataFrame; got {type(frame).__name__}.")
        lacking = [c for c in COLUMNS if c not in frame.columns]
        if lacking:
            raise InputError(
                f"'frame' lacks the columns {lacking}; it needs {list(COLUMNS)} "
                f"and has {list(frame.columns)}."
            )
        if "estimator" in frame.columns and frame["estimator"].nunique() > 1:
            names = sorted(set(frame["estimator"]))
            if names != ["discrete", "gaussian"]:
                raise InputError(
                    f"'frame' column 'estimator' must hold 'discrete' and 'gaussian' (a run with "
                    f"both estimators) or one estimator; got {names}."
                )
            primary = cls.from_frame(frame[frame["estimator"] == "discrete"], config, warnings=warnings)
            second = cls.from_frame(frame[frame["estimator"] == "gaussian"], {"estimator": "gaussian"})
            return cls(
                {**primary.config, "estimator": "both"}, primary.layers, primary.warnings,
                primary.records, gaussian=second,
            )
        rows = frame[list(COLUMNS)].to_dict(orient="records")
        layers = sorted({_as_layer(r["layer"], what="column 'layer'") for r in rows})
        return cls(dict(config or {}), tuple(layers), tuple(warnings), tuple(rows))

    # ------------------------------------------------------------------ reading
    @property
    def correction(self) -> str | None:
        """The bias-correction rule of the estimates (``"null"``, ``"bootstrap"``), if recorded.

        Read from ``config["correction"]``, else ``config["estimator"]["correction"]``.
        """
        value = self.config.get("correction")
        if value is None and isinstance(self.config.get("estimator"), dict):
            value = self.config["estimator"].get("correction")
        return value if isinstance(value, str) else None

    @property
    def interval_kind(self) -> str | None:
        """What the intervals are, in words (``config["interval"]``), if recorded.

        E.g. "95% basic bootstrap interval, centred on the corrected value and widened on both
        sides by the size of the correction (...)": results.json, the CSV and the report say it.
        """
        value = self.config.get("interval")
        if value is None and isinstance(self.config.get("estimator"), dict):
            value = self.config["estimator"].get("interval")
        return value if isinstance(value, str) else None

    @property
    def last_layer(self) -> int:
        """The deepest analysed layer."""
        return self.layers[-1]

    def get(self, layer: int, atom: str) -> AtomRecord:
        """The record of one atom at one layer."""
        for rec in self.records:
            if rec.layer == layer and rec.atom == atom:
                return rec
        raise InputError(
            f"No record for layer={layer!r}, atom={atom!r}; layers are {list(self.layers)}, "
            f"atoms {list(ATOMS)}."
        )

    def series(self, atom: str, field: str = "corrected") -> np.ndarray:
        """One field of one atom across ``layers``, shape (len(layers),), NaN where undefined."""
        if atom not in ATOMS:
            raise InputError(f"'atom' must be one of {list(ATOMS)}; got {atom!r}.")
        if field not in FIELDS:
            raise InputError(f"'field' must be one of {list(FIELDS)}; got {field!r}.")
        by_layer = {r.layer: getattr(r, field) for r in self.records if r.atom == atom}
        return np.array([by_layer[layer] for layer in self.layers], dtype=float)

    @property
    def estimator(self) -> str | None:
        """The estimator of ``records``, ``"discrete"`` or ``"gaussian"``, when recorded
        (``config["estimator"]``, or its ``"estimator"`` entry); None otherwise. Results with
        both estimators (``"both"``) hold the discrete one's records."""
        value = self.config.get("estimator")
        if isinstance(value, Mapping):
            value = value.get("estimator")
        if value == "both":
            return "discrete"
        return value if value in ("discrete", "gaussian") else None

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (NaN as None)."""
        doc = {
            "mmpid_version": self.mmpid_version,
            "config": json.loads(json.dumps(self.config)),
            "layers": list(self.layers),
            "warnings": [w.to_dict() for w in self.warnings],
            "records": [r.to_dict() for r in self.records],
        }
        if self.gaussian is not None:
            second = self.gaussian.to_dict()
            doc["gaussian"] = {k: second[k] for k in _SECOND_KEYS}
            doc["disagreements"] = [d.to_dict() for d in self.disagreements]
        return doc

    def to_frame(self) -> pd.DataFrame:
        """Long format: one row per (layer, atom), columns :data:`COLUMNS`, NaN where undefined."""
        rows = [[r.layer, r.atom, *(getattr(r, f) for f in FIELDS)] for r in self.records]
        frame = pd.DataFrame(rows, columns=list(COLUMNS))
        frame["layer"] = frame["layer"].astype("int64")
        for name in FIELDS:
            frame[name] = frame[name].astype("float64")
        return frame

    # ------------------------------------------------------------------ files
    def save(self, out_dir: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``out_dir/results.json`` and ``out_dir/results.csv``; return their paths.

        Floats are written with full precision, so :func:`load` gives back equal results.
        """
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise StoreError(f"'out_dir' must be a folder; {out} is a file.")
        out.mkdir(parents=True, exist_ok=True)
        json_path, csv_path = out / RESULTS_JSON, out / RESULTS_CSV
        text = json.dumps(self.to_dict(), indent=1, allow_nan=False)
        write_text_atomic(json_path, text + "\n")
        write_text_atomic(csv_path, self.to_csv())
        return json_path, csv_path

    def to_csv(self) -> str:
        """``results.csv``: :meth:`to_frame` plus the columns ``estimator`` (the estimator of
        each row) and ``interval`` (the intervals' kind), each when recorded; a run with both
        estimators has the Gaussian estimator's rows after the discrete ones.
        :meth:`from_frame` reads them back."""
        parts = []
        for res in (self, self.gaussian):
            if res is None:
                continue
            frame = res.to_frame()
            if res.estimator is not None:
                frame["estimator"] = res.estimator
            if res.interval_kind is not None:
                frame["interval"] = res.interval_kind
            parts.append(frame)
        frame = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        return str(frame.to_csv(index=False, na_rep=""))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LayerResults:
        """Read results: see :func:`load`."""
        return load(path)


def _with_provenance(config: Mapping[str, Any] | None, estimates: Mapping[int, Any]) -> dict:
    """``config`` plus the estimator settings common to all layers and per-layer clusters."""
    out = dict(_normalise_config(config))
    configs = [getattr(est, "config", None) for est in estimates.values()]
    if "estimator" not in out and configs and all(isinstance(c, Mapping) for c in configs):
        try:
            normalised = [_normalise_config(c) for c in configs]
        except InputError:
            normalised = []
        if normalised:
            first = normalised[0]
            common = {k: v for k, v in first.items() if all(c.get(k) == v for c in normalised)}
            if common:
                out["estimator"] = common
    clusters = {int(k): getattr(est, "clusters", None) for k, est in estimates.items()}
    if "clusters_by_layer" not in out and all(isinstance(c, Mapping) for c in clusters.values()):
        as_dicts = {k: dict(c) for k, c in sorted(clusters.items())}
        if len({json.dumps(c, sort_keys=True, default=str) for c in as_dicts.values()}) > 1:
            out["clusters_by_layer"] = {str(k): c for k, c in as_dicts.items()}
    return out


def _mapping(value: Any, *, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a mapping; got {value!r}.")
    return dict(value)


def _warning_kwargs(value: Any) -> dict[str, Any]:
    row = _mapping(value, what="each warning")
    if set(row) != {"layer", "message"}:
        raise InputError(
            f"each warning needs exactly the keys ['layer', 'message']; got {sorted(row)}."
        )
    return row


def _record_kwargs(value: Any) -> dict[str, Any]:
    row = _mapping(value, what="each record")
    lacking = [k for k in COLUMNS if k not in row]
    extra = [k for k in row if k not in COLUMNS]
    if lacking or extra:
        raise InputError(
            f"each record needs exactly the keys {list(COLUMNS)}; record {row!r} "
            + (f"lacks {lacking}" if lacking else "")
            + (" and " if lacking and extra else "")
            + (f"has unknown keys {extra}" if extra else "")
            + "."
        )
    return row


def load(path: str | os.PathLike[str]) -> LayerResults:
    """Read results written by :meth:`LayerResults.save`.

    Parameters
    ----------
    path : ``results.json``, ``results.csv`` (records only: no configuration or warnings), or a
        folder holding ``results.json``.

    Raises
    ------
    StoreError : the file is missing, is not valid JSON/CSV, or does not follow the schema.
    """
    p = Path(path)
    if p.is_dir():
        p = p / RESULTS_JSON
    if not p.is_file():
        hint = "run `mmpid estimate` (or mmpid.pipeline.estimate_store) to write it"
        raise StoreError(f"No results file at {p}; {hint}.")
    if p.suffix.lower() == ".csv":
        return _load_csv(p)
    if p.suffix.lower() != ".json":
        raise StoreError(f"'path' must be a .json or .csv results file or a folder; got {p}.")
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise StoreError(
            f"{p} is not valid JSON ({exc}); it may be truncated or not a results file."
        ) from None
    if not isinstance(doc, dict):
        raise StoreError(
            f"{p} must hold a JSON object with the keys {list(_TOP_KEYS)}; "
            f"got {type(doc).__name__}."
        )
    lacking = [k for k in _TOP_KEYS if k not in doc]
    extra = [k for k in doc if k not in _TOP_KEYS + _BOTH_KEYS]
    if lacking or extra:
        raise StoreError(
            f"{p} does not follow the results schema: it needs exactly the keys {list(_TOP_KEYS)}"
            + (f"; missing {lacking}" if lacking else "")
            + (f"; unknown {extra}" if extra else "")
            + "."
        )
    for key, kind in (("config", dict), ("layers", list), ("warnings", list), ("records", list)):
        if not isinstance(doc[key], kind):
            raise StoreError(
                f"{p}: {key!r} must be a JSON {'object' if kind is dict else 'array'}; "
                f"got {type(doc[key]).__name__}."
            )
    second = doc.get("gaussian")
    if second is not None and not (
        isinstance(second, dict) and all(isinstance(second.get(k), kind) for k, kind in
                                         (("config", dict), ("warnings", list), ("records", list)))
    ):
        raise StoreError(
            f"{p}: 'gaussian' must be a JSON object with 'config' (an object), 'warnings' and "
            "'records' (arrays)."
        )
    if not isinstance(doc.get("disagreements", []), list):
        raise StoreError(f"{p}: 'disagreements' must be a JSON array.")
    try:
        gaussian = None if second is None else LayerResults(
            second["config"], tuple(doc["layers"]), tuple(second["warnings"]),
            tuple(second["records"]), mmpid_version=doc["mmpid_version"],
        )
        return LayerResults(
            doc["config"],
            tuple(doc["layers"]),
            tuple(doc["warnings"]),
            tuple(doc["records"]),
            mmpid_version=doc["mmpid_version"],
            gaussian=gaussian,
            disagreements=tuple(doc.get("disagreements", ())),
        )
    except (InputError, TypeError) as exc:
        raise StoreError(f"{p} does not follow the results schema: {exc}") from None


def _load_csv(p: Path) -> LayerResults:
    try:
        frame = pd.read_csv(p, keep_default_na=False, na_values=[""])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise StoreError(f"{p} is not a readable CSV file ({exc}).") from None
    try:
        return LayerResults.from_frame(frame)
    except (InputError, TypeError) as exc:
        raise StoreError(f"{p} does not follow the results schema: {exc}") from None
