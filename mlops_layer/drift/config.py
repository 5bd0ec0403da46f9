"""Drift settings as one value object: methods, thresholds, per-column rules, importance, schema tolerances.

Built from the ``drift:`` section of governance/policy.yaml (:func:`drift_config_from_document`, errors name
file:line and the field) or from a dict in users' code (:meth:`DriftConfig.from_dict`). Imports nothing heavy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from mlops_layer.errors import ConfigError
from mlops_layer.policyfile import PolicyDocument, load_policy_document

NUMERIC_METHODS = ("wasserstein", "psi", "jensenshannon", "ks")
CATEGORICAL_METHODS = ("jensenshannon", "psi", "chisquare")
METHODS = ("wasserstein", "psi", "jensenshannon", "ks", "chisquare")
# p-value methods: the score is a (corrected) p-value and a column drifts when it is BELOW the threshold.
P_VALUE_METHODS = ("ks", "chisquare")
CORRECTIONS = ("bh", "holm", "none")

DEFAULT_THRESHOLDS: Mapping[str, float] = {
    # effect sizes: a column drifts when the score is AT OR ABOVE the threshold (Evidently's convention)
    "wasserstein": 0.1,  # W1 / reference std: a shift of a tenth of a standard deviation
    "psi": 0.1,  # population stability index on the reference's quantile bins ("moderate change" from 0.1)
    "jensenshannon": 0.1,  # Jensen-Shannon distance, natural log (0 = same, 0.83 = disjoint)
    # significance tests (p-values): a column drifts when the corrected p-value is BELOW the threshold
    "ks": 0.05,
    "chisquare": 0.05,
}

_KEYS = (
    "numeric_method",
    "categorical_method",
    "thresholds",
    "columns",
    "drift_share",
    "importance",
    "include",
    "exclude",
    "small_n",
    "min_rows",
    "alpha",
    "correction",
    "max_null_rate_increase",
    "max_unseen_share",
    "prediction_column",
    "prediction_drift_fails",
    "models",
)


@dataclass(frozen=True)
class ColumnRule:
    """Per-column override: the method, its threshold and the column's importance weight (each optional)."""

    method: str | None = None
    threshold: float | None = None
    weight: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (("method", self.method), ("threshold", self.threshold), ("weight", self.weight))
            if v is not None
        }


@dataclass(frozen=True)
class DriftConfig:
    """How the drift gate decides. Every field has a default, so ``DriftConfig()`` is a working gate.

    - ``numeric_method`` / ``categorical_method``: the method that decides a column of that kind.
    - ``thresholds``: per method, overriding :data:`DEFAULT_THRESHOLDS`.
    - ``columns``: per-column :class:`ColumnRule` (method, threshold, weight).
    - ``drift_share``: the dataset drifts when the (importance-weighted) share of drifted columns is >= this.
    - ``importance``: column -> weight; unlisted columns get the mean listed weight.
    - ``include`` / ``exclude``: which columns are features (ids and timestamps are not).
    - ``small_n``: batches with at most this many rows also need a significance test (KS / chi-squared,
      corrected by ``correction`` at level ``alpha``) before an effect size counts as drift.
    - ``min_rows``: batches with fewer rows are scored but never called drift (a handful of rows speaks of
      outliers, not of distributions); their schema problems still fail the check.
    - ``max_null_rate_increase``: a null (or infinite) rate rising by more than this (absolute) is a schema problem.
    - ``max_unseen_share``: categories never seen in the reference above this share of rows are a schema problem.
    - ``prediction_column``: checked like a feature but reported apart; ``prediction_drift_fails`` makes its drift
      fail the check on its own.
    """

    numeric_method: str = "wasserstein"
    categorical_method: str = "jensenshannon"
    thresholds: Mapping[str, float] = field(default_factory=dict)
    columns: Mapping[str, ColumnRule] = field(default_factory=dict)
    drift_share: float = 0.5
    importance: Mapping[str, float] = field(default_factory=dict)
    include: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    small_n: int = 1000
    min_rows: int = 10
    alpha: float = 0.05
    correction: str = "bh"
    max_null_rate_increase: float = 0.1
    max_unseen_share: float = 0.05
    prediction_column: str | None = None
    prediction_drift_fails: bool = True

    # -- derived ----------------------------------------------------------------------------------------------
    def threshold_for(self, method: str) -> float:
        return float(self.thresholds.get(method, DEFAULT_THRESHOLDS[method]))

    def method_for(self, column: str, kind: str) -> tuple[str, float]:
        """The (method, threshold) that decides ``column`` of ``kind`` ("numeric" or "categorical")."""
        rule = self.columns.get(column)
        method = (rule.method if rule else None) or (
            self.numeric_method if kind == "numeric" else self.categorical_method
        )
        allowed = NUMERIC_METHODS if kind == "numeric" else CATEGORICAL_METHODS
        if method not in allowed:
            raise ConfigError(
                f"drift method {method!r} does not apply to {kind} column {column!r}",
                hint=f"use one of {', '.join(allowed)} for {kind} columns",
            )
        threshold = rule.threshold if rule is not None and rule.threshold is not None else self.threshold_for(method)
        return method, float(threshold)

    def weight_for(self, column: str) -> float:
        rule = self.columns.get(column)
        if rule is not None and rule.weight is not None:
            return float(rule.weight)
        if column in self.importance:
            return float(self.importance[column])
        if self.importance:
            return float(sum(self.importance.values()) / len(self.importance))
        return 1.0

    def with_columns(self, include: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()) -> DriftConfig:
        """A copy with the column selection narrowed by a caller (CLI ``--columns`` / ``--exclude``)."""
        return replace(
            self,
            include=tuple(include) if include else self.include,
            exclude=tuple(dict.fromkeys((*self.exclude, *exclude))),
        )

    # -- (de)serialisation ------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "numeric_method": self.numeric_method,
            "categorical_method": self.categorical_method,
            "thresholds": {m: self.threshold_for(m) for m in METHODS},
            "columns": {k: v.to_dict() for k, v in sorted(self.columns.items())},
            "drift_share": self.drift_share,
            "importance": dict(sorted(self.importance.items())),
            "include": list(self.include) if self.include is not None else None,
            "exclude": list(self.exclude),
            "small_n": self.small_n,
            "min_rows": self.min_rows,
            "alpha": self.alpha,
            "correction": self.correction,
            "max_null_rate_increase": self.max_null_rate_increase,
            "max_unseen_share": self.max_unseen_share,
            "prediction_column": self.prediction_column,
            "prediction_drift_fails": self.prediction_drift_fails,
        }

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, model: str | None = None, source: str = "drift settings"
    ) -> DriftConfig:
        """Validate a plain mapping; ``models: {NAME: {...}}`` holds per-model overrides merged for ``model``.

        Errors name ``source`` and the field, e.g. ``policy.yaml drift.columns.age.threshold``.
        """
        if isinstance(data, DriftConfig):
            return data
        return _from_mapping(data, model, source, _nowhere)


def drift_config_from_document(document: PolicyDocument, model: str | None = None) -> DriftConfig:
    """The ``drift:`` section of a policy document parsed once (defaults when absent); errors name file:line."""
    section = document.section("drift")
    if section is None:
        return DriftConfig()

    def locate(where: str) -> str:
        return f"{document.path}:{section.line_of(where)}: "

    return _from_mapping(section.plain(), model, section.field, locate)


def load_drift_config(policy_file: Path, model: str | None = None) -> DriftConfig:
    """The drift settings in ``governance/policy.yaml`` (no file or no section: the defaults)."""
    return drift_config_from_document(load_policy_document(policy_file, missing_ok=True), model)


# Where an error points: a dotted field path -> "file:line: " (nothing for plain data from users' code).
Locate = Callable[[str], str]


def _nowhere(where: str) -> str:
    return ""


def _error(where: str, problem: str, locate: Locate, *, hint: str | None = None, at: str | None = None) -> ConfigError:
    return ConfigError(f"{locate(at or where)}{where}: {problem}", hint=hint)


def _from_mapping(data: Any, model: str | None, source: str, locate: Locate) -> DriftConfig:
    if data is None:
        return DriftConfig()
    if not isinstance(data, Mapping):
        raise _error(source, f"expected a mapping, got {type(data).__name__}", locate)
    merged = dict(data)
    models = merged.pop("models", None) or {}
    if not isinstance(models, Mapping):
        raise _error(f"{source}.models", "expected a mapping of model name -> drift settings", locate)
    # every model's overrides are validated on their own first, so an error names where it was written
    for name, override in models.items():
        if not isinstance(override, Mapping):
            raise _error(f"{source}.models.{name}", "expected a mapping", locate)
        if "models" in override:
            raise _error(f"{source}.models.{name}.models", "per-model settings cannot nest models", locate)
        _parse(override, f"{source}.models.{name}", locate)
    if model is not None and model in models:
        for key, value in models[model].items():
            if key in ("thresholds", "columns", "importance") and isinstance(value, Mapping):
                base = merged.get(key) or {}
                if not isinstance(base, Mapping):
                    raise _error(f"{source}.{key}", "expected a mapping", locate)
                merged[key] = {**base, **value}
            else:
                merged[key] = value
    return _parse(merged, source, locate)


def _parse(data: Mapping[str, Any], source: str, locate: Locate) -> DriftConfig:
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise _error(
            source,
            f"unknown key(s) {', '.join(repr(k) for k in unknown)}",
            locate,
            hint=f"allowed: {', '.join(_KEYS)}",
            at=f"{source}.{unknown[0]}",
        )
    kw: dict[str, Any] = {}
    for key, kind in (("numeric_method", NUMERIC_METHODS), ("categorical_method", CATEGORICAL_METHODS)):
        if data.get(key) is not None:
            kw[key] = _method(data[key], kind, f"{source}.{key}", locate)
    thresholds = _mapping(data.get("thresholds"), f"{source}.thresholds", locate)
    for method in thresholds:
        if method not in METHODS:
            raise _error(f"{source}.thresholds.{method}", "unknown method", locate, hint=f"use {', '.join(METHODS)}")
    kw["thresholds"] = {
        m: _number(v, f"{source}.thresholds.{m}", 0.0, 1.0 if m in P_VALUE_METHODS else None, locate)
        for m, v in thresholds.items()
    }
    columns: dict[str, ColumnRule] = {}
    for name, rule in _mapping(data.get("columns"), f"{source}.columns", locate).items():
        where = f"{source}.columns.{name}"
        body = _mapping(rule, where, locate)
        extra = sorted(set(body) - {"method", "threshold", "weight"})
        if extra:
            raise _error(
                where,
                f"unknown key(s) {', '.join(extra)}",
                locate,
                hint="use method, threshold, weight",
                at=f"{where}.{extra[0]}",
            )
        rule_method = (
            _method(body["method"], METHODS, f"{where}.method", locate) if body.get("method") is not None else None
        )
        threshold = body.get("threshold")
        weight = body.get("weight")
        columns[str(name)] = ColumnRule(
            method=rule_method,
            threshold=None if threshold is None else _number(threshold, f"{where}.threshold", 0.0, None, locate),
            weight=None if weight is None else _number(weight, f"{where}.weight", 0.0, None, locate),
        )
    kw["columns"] = columns
    kw["importance"] = {
        str(k): _number(v, f"{source}.importance.{k}", 0.0, None, locate)
        for k, v in _mapping(data.get("importance"), f"{source}.importance", locate).items()
    }
    if data.get("drift_share") is not None:
        kw["drift_share"] = _number(data["drift_share"], f"{source}.drift_share", 0.0, 1.0, locate)
    for key in ("include", "exclude"):
        if data.get(key) is not None:
            kw[key] = _names(data[key], f"{source}.{key}", locate)
    for key in ("small_n", "min_rows"):
        if data.get(key) is not None:
            value = data[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _error(f"{source}.{key}", f"expected a whole number >= 0, got {value!r}", locate)
            kw[key] = value
    if data.get("alpha") is not None:
        kw["alpha"] = _number(data["alpha"], f"{source}.alpha", 0.0, 1.0, locate)
    if data.get("correction") is not None:
        corr = str(data["correction"]).lower()
        if corr not in CORRECTIONS:
            raise _error(f"{source}.correction", f"{corr!r} is not one of {', '.join(CORRECTIONS)}", locate)
        kw["correction"] = corr
    for key in ("max_null_rate_increase", "max_unseen_share"):
        if data.get(key) is not None:
            kw[key] = _number(data[key], f"{source}.{key}", 0.0, 1.0, locate)
    if data.get("prediction_column") is not None:
        kw["prediction_column"] = str(data["prediction_column"])
    if data.get("prediction_drift_fails") is not None:
        value = data["prediction_drift_fails"]
        if not isinstance(value, bool):
            raise _error(f"{source}.prediction_drift_fails", f"expected true or false, got {value!r}", locate)
        kw["prediction_drift_fails"] = value
    return DriftConfig(**kw)


def _mapping(value: Any, where: str, locate: Locate) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise _error(where, f"expected a mapping, got {type(value).__name__} {value!r}", locate)
    return value


def _method(value: Any, allowed: tuple[str, ...], where: str, locate: Locate) -> str:
    name = str(value).lower()
    if name not in allowed:
        raise _error(where, f"unknown drift method {value!r}", locate, hint=f"use one of {', '.join(allowed)}")
    return name


def _number(value: Any, where: str, low: float | None, high: float | None, locate: Locate) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        raise _error(where, f"expected a number, got {value!r}", locate)
    number = float(value)
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _error(where, f"{number} is out of range", locate, hint=f"use a value {bounds}")
    return number


def _names(value: Any, where: str, locate: Locate) -> tuple[str, ...]:
    if isinstance(value, str):
        items = [v.strip() for v in value.split(",")]
    elif isinstance(value, (list, tuple)):
        items = [str(v).strip() for v in value]
    else:
        raise _error(where, f"expected a list of column names, got {value!r}", locate)
    return tuple(v for v in items if v)
