"""The reference profile: a compact, JSON-serialisable summary of training data that drift checks compare against.

Numeric columns keep their quantile function (``quantiles`` at ``levels``: K evenly spaced plus a few in each
tail, with min/max) for Wasserstein and KS, equal-frequency bins with reference proportions for PSI, mean/std and
null/inf rates. Categorical columns keep their top-K frequencies and an "other" share. Checking a batch never needs
the raw training data again.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_layer.drift import stats
from mlops_layer.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
DEFAULT_QUANTILES = 200
DEFAULT_BINS = 10
DEFAULT_TOP_K = 50
OTHER = "__other__"

NUMERIC = "numeric"
CATEGORICAL = "categorical"


def _f(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None


@dataclass(frozen=True)
class NumericProfile:
    """A numeric column. ``quantiles`` is empty when the column had no finite value."""

    dtype: str
    count: int
    n_valid: int
    null_rate: float
    inf_rate: float
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    levels: tuple[float, ...]
    quantiles: tuple[float, ...]
    bin_edges: tuple[float, ...]
    bin_proportions: tuple[float, ...]
    integer: bool = False
    kind: str = NUMERIC

    @property
    def scale(self) -> float:
        """What normalises W1: the reference std; for a constant column (std 0, hence IQR 0 too) a small floor.

        The floor is Evidently's (0.001), scaled up for large constants, so any change of a constant column drifts.
        """
        if self.std is not None and self.std > 0:
            return self.std
        return 1e-3 * max(1.0, abs(self.mean or 0.0))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "n_valid": self.n_valid,
            "null_rate": self.null_rate,
            "inf_rate": self.inf_rate,
            "mean": self.mean,
            "std": self.std,
            "min": self.min,
            "max": self.max,
            "integer": self.integer,
            "levels": list(self.levels),
            "quantiles": list(self.quantiles),
            "bin_edges": list(self.bin_edges),
            "bin_proportions": list(self.bin_proportions),
        }


@dataclass(frozen=True)
class CategoricalProfile:
    """A categorical column: top-K value frequencies (shares of non-null rows) and the share of all the others."""

    dtype: str
    count: int
    n_valid: int
    null_rate: float
    frequencies: tuple[tuple[str, float], ...]
    other: float
    n_unique: int
    kind: str = CATEGORICAL

    @property
    def complete(self) -> bool:
        """Whether every reference category is listed (then a value outside the list was never seen)."""
        return self.n_unique <= len(self.frequencies)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dtype": self.dtype,
            "count": self.count,
            "n_valid": self.n_valid,
            "null_rate": self.null_rate,
            "n_unique": self.n_unique,
            "frequencies": {k: v for k, v in self.frequencies},
            "other": self.other,
        }


ColumnProfile = NumericProfile | CategoricalProfile


@dataclass(frozen=True)
class ReferenceProfile:
    """Per-column profiles of a reference data set, its row count, and the data hash the caller vouches for."""

    n_rows: int
    columns: Mapping[str, ColumnProfile]
    data_hash: str | None = None
    quantile_count: int = DEFAULT_QUANTILES
    bins: int = DEFAULT_BINS
    top_k: int = DEFAULT_TOP_K
    schema_version: int = SCHEMA_VERSION
    source: str | None = None
    meta: Mapping[str, Any] = field(default_factory=dict)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(self.columns)

    def with_hash(self, data_hash: str | None, source: str | None = None) -> ReferenceProfile:
        from dataclasses import replace

        return replace(self, data_hash=data_hash, source=source if source is not None else self.source)

    @property
    def roles(self) -> dict[str, str]:
        """The role of each column it holds (``feature``, ``prediction``, ...), as recorded when it was built.

        Profiles written before roles were recorded say nothing; a column named ``prediction`` in them is the one
        ``log_reference_profile`` added (its default name), so it is read back as the prediction.
        """
        recorded = self.meta.get("roles")
        if isinstance(recorded, Mapping):
            return {str(k): str(v) for k, v in recorded.items()}
        return {c: ("prediction" if c == "prediction" else "feature") for c in self.columns}

    @property
    def prediction_column(self) -> str | None:
        return next((c for c, r in self.roles.items() if r == "prediction"), None)

    @property
    def features(self) -> tuple[str, ...]:
        roles = self.roles
        return tuple(c for c in self.columns if roles.get(c, "feature") == "feature")

    def with_roles(self, roles: Mapping[str, str]) -> ReferenceProfile:
        """This profile with the role of each column recorded (columns not named are features)."""
        from dataclasses import replace

        full = {c: str(roles.get(c, "feature")) for c in self.columns}
        return replace(self, meta={**dict(self.meta), "roles": full})

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "kind": "mlops_layer.reference_profile",
            "n_rows": self.n_rows,
            "data_hash": self.data_hash,
            "source": self.source,
            "quantile_count": self.quantile_count,
            "bins": self.bins,
            "top_k": self.top_k,
            "meta": dict(self.meta),
            "columns": {name: col.to_dict() for name, col in self.columns.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, text: str) -> ReferenceProfile:
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"reference profile is not valid JSON: {exc}") from None
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReferenceProfile:
        if not isinstance(data, Mapping) or "columns" not in data:
            raise InputError("reference profile has no 'columns'", hint="create it with build_profile()")
        version = int(data.get("schema_version", 0))
        if version != SCHEMA_VERSION:
            raise InputError(
                f"reference profile has schema version {version}; this mlops_layer reads version {SCHEMA_VERSION}",
                hint="re-create the profile (re-run the train stage) with this version of mlops_layer",
            )
        columns: dict[str, ColumnProfile] = {}
        for name, body in dict(data["columns"]).items():
            try:
                columns[str(name)] = _column_from_dict(body)
            except (KeyError, TypeError, ValueError) as exc:
                raise InputError(f"reference profile column {name!r} is malformed ({exc})") from None
        return cls(
            n_rows=int(data["n_rows"]),
            columns=columns,
            data_hash=data.get("data_hash"),
            quantile_count=int(data.get("quantile_count", DEFAULT_QUANTILES)),
            bins=int(data.get("bins", DEFAULT_BINS)),
            top_k=int(data.get("top_k", DEFAULT_TOP_K)),
            schema_version=version,
            source=data.get("source"),
            meta=dict(data.get("meta") or {}),
        )


def _floats(values: Iterable[Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in values)


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def _column_from_dict(body: Mapping[str, Any]) -> ColumnProfile:
    if body["kind"] == NUMERIC:
        if int(body["n_valid"]) and (
            len(body["levels"]) != len(body["quantiles"]) or len(body["bin_proportions"]) != len(body["bin_edges"]) + 1
        ):
            raise ValueError("levels/quantiles or bin_edges/bin_proportions do not match in length")
        return NumericProfile(
            dtype=str(body["dtype"]),
            count=int(body["count"]),
            n_valid=int(body["n_valid"]),
            null_rate=float(body["null_rate"]),
            inf_rate=float(body.get("inf_rate", 0.0)),
            mean=_opt(body.get("mean")),
            std=_opt(body.get("std")),
            min=_opt(body.get("min")),
            max=_opt(body.get("max")),
            levels=_floats(body["levels"]),
            quantiles=_floats(body["quantiles"]),
            bin_edges=_floats(body["bin_edges"]),
            bin_proportions=_floats(body["bin_proportions"]),
            integer=bool(body.get("integer", False)),
        )
    if body["kind"] == CATEGORICAL:
        freqs = body["frequencies"]
        return CategoricalProfile(
            dtype=str(body["dtype"]),
            count=int(body["count"]),
            n_valid=int(body["n_valid"]),
            null_rate=float(body["null_rate"]),
            frequencies=tuple((str(k), float(v)) for k, v in dict(freqs).items()),
            other=float(body["other"]),
            n_unique=int(body["n_unique"]),
        )
    raise ValueError(f"unknown kind {body['kind']!r}")


# -- building ---------------------------------------------------------------------------------------------------
_DATETIME_KINDS = ("datetime", "datetime64", "date", "time", "timedelta", "timedelta64", "period")


def classify(series: pd.Series, name: str) -> str:
    """``numeric`` or ``categorical`` for a reference column; refuses mixed types and non-features by name."""
    import pandas as pd

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return CATEGORICAL
    if pd.api.types.is_bool_dtype(dtype):
        return CATEGORICAL
    if pd.api.types.is_datetime64_any_dtype(dtype) or pd.api.types.is_timedelta64_dtype(dtype):
        raise InputError(
            f"column {name!r} holds timestamps ({dtype}); drift is checked on features only",
            hint=f"leave it out with --exclude {name} (or exclude: [{name}] in the drift settings)",
        )
    if pd.api.types.is_complex_dtype(dtype):
        raise InputError(f"column {name!r} holds complex numbers, which drift checks do not support")
    if pd.api.types.is_numeric_dtype(dtype):
        return NUMERIC
    inferred = pd.api.types.infer_dtype(series, skipna=True)
    if inferred in ("empty", "string", "boolean", "categorical"):
        if inferred == "string":
            _refuse_numbers_in_text(series, name)
        return CATEGORICAL
    if inferred in ("integer", "floating", "decimal", "mixed-integer-float"):
        return NUMERIC
    if inferred in _DATETIME_KINDS:
        raise InputError(
            f"column {name!r} holds {inferred} values; drift is checked on features only",
            hint=f"leave it out with --exclude {name}",
        )
    examples = _type_examples(series)
    raise InputError(
        f"column {name!r} mixes types ({examples})",
        hint="clean the column so it holds only numbers or only text, or leave it out with --exclude",
    )


def _type_examples(series: pd.Series) -> str:
    seen: dict[str, Any] = {}
    for value in series.dropna().head(10_000):
        seen.setdefault(type(value).__name__, value)
        if len(seen) >= 3:
            break
    return ", ".join(f"{t} e.g. {v!r}" for t, v in seen.items())


def _refuse_numbers_in_text(series: pd.Series, name: str) -> None:
    """A text column whose values are mostly numbers is a numeric column with stray text: refuse it by name."""
    import pandas as pd

    values = series.dropna()
    if values.empty:
        return
    parsed = pd.to_numeric(values, errors="coerce")
    ok = int(parsed.notna().sum())
    if 0 < ok < len(values) and ok >= len(values) / 2:
        bad = values[parsed.isna()]
        raise InputError(
            f"column {name!r} mixes numbers and text: {len(bad)} of {len(values)} values are not numbers "
            f"(e.g. {bad.iloc[0]!r} next to {values[parsed.notna()].iloc[0]!r})",
            hint="fix those values in the reference data, or leave the column out with --exclude",
        )


def numeric_values(series: pd.Series) -> np.ndarray[Any, np.dtype[np.float64]]:
    """A float64 view (or copy) of a numeric column, missing values as NaN."""
    import pandas as pd

    if series.dtype == np.float64:
        return np.asarray(series.to_numpy(), dtype=np.float64)
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        return np.asarray(series.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)
    coerced = pd.to_numeric(series, errors="coerce")
    return np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def category_strings(series: pd.Series) -> pd.Series:
    """Non-null values of a categorical column as strings (how profiles store categories)."""
    values = series.dropna()
    if values.dtype == object or str(values.dtype) in ("string", "str"):
        return values.astype(str)
    return values.astype(str)


def profile_numeric(
    values: np.ndarray[Any, np.dtype[np.float64]], dtype: str, *, quantiles: int, bins: int
) -> NumericProfile:
    count = int(values.size)
    s, n_nan, n_inf = stats.split_finite(values)
    n = int(s.size)
    if n == 0:
        return NumericProfile(
            dtype=dtype,
            count=count,
            n_valid=0,
            null_rate=n_nan / count if count else 0.0,
            inf_rate=n_inf / count if count else 0.0,
            mean=None,
            std=None,
            min=None,
            max=None,
            levels=(),
            quantiles=(),
            bin_edges=(),
            bin_proportions=(),
        )
    levels = stats.profile_levels(quantiles)
    edges = stats.quantile_bin_edges(s, bins)
    props = stats.bin_counts(s, edges) / n
    mean = float(np.mean(s))
    std = float(np.std(s))
    return NumericProfile(
        dtype=dtype,
        count=count,
        n_valid=n,
        null_rate=n_nan / count,
        inf_rate=n_inf / count,
        mean=_f(mean),
        std=_f(std),
        min=float(s[0]),
        max=float(s[-1]),
        levels=_floats(levels),
        quantiles=_floats(stats.sorted_quantiles(s, levels)),
        bin_edges=_floats(edges),
        bin_proportions=_floats(props),
        integer=bool(np.all(np.floor(s[:: max(1, n // 10_000)]) == s[:: max(1, n // 10_000)])),
    )


def profile_categorical(series: pd.Series, *, top_k: int) -> CategoricalProfile:
    count = int(len(series))
    values = category_strings(series)
    n = int(len(values))
    counts = values.value_counts(sort=False)
    # deterministic order: most frequent first, ties by value
    ordered = sorted(((str(k), int(v)) for k, v in counts.items()), key=lambda kv: (-kv[1], kv[0]))
    top = ordered[:top_k]
    other = sum(v for _, v in ordered[top_k:])
    return CategoricalProfile(
        dtype=str(series.dtype),
        count=count,
        n_valid=n,
        null_rate=(count - n) / count if count else 0.0,
        frequencies=tuple((k, v / n) for k, v in top) if n else (),
        other=other / n if n else 0.0,
        n_unique=len(ordered),
    )


def select_columns(
    available: Sequence[str], columns: Sequence[str] | None, exclude: Sequence[str] | None, *, what: str
) -> list[str]:
    """The columns to use, in data order; unknown names in ``columns`` are an input error naming them."""
    names = [str(c) for c in available]
    if columns:
        missing = [c for c in columns if c not in names]
        if missing:
            raise InputError(
                f"{what} has no column(s) {', '.join(repr(c) for c in missing)}",
                hint=f"its columns are: {', '.join(names[:30])}",
            )
        wanted = set(columns)
        names = [c for c in names if c in wanted]
    drop = set(exclude or ())
    return [c for c in names if c not in drop]


def build_profile(
    df: pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    quantiles: int = DEFAULT_QUANTILES,
    bins: int = DEFAULT_BINS,
    top_k: int = DEFAULT_TOP_K,
    data_hash: str | None = None,
    source: str | None = None,
) -> ReferenceProfile:
    """Profile a reference frame. Deterministic: the same data gives byte-identical JSON.

    Raises :class:`InputError` naming the column for mixed types, timestamps and other non-features, and for an
    empty frame.
    """
    if quantiles < 10 or bins < 2 or top_k < 1:
        raise InputError(f"profile sizes too small: quantiles={quantiles}, bins={bins}, top_k={top_k}")
    names = select_columns(list(df.columns), columns, exclude, what="the reference data")
    if len(df) == 0:
        raise InputError("the reference data has no rows", hint="profile the training data the model was fit on")
    if not names:
        raise InputError("no columns left to profile", hint="check --columns / --exclude")
    profiles: dict[str, ColumnProfile] = {}
    for name in names:
        series = df[name]
        if isinstance(series, type(df)):
            raise InputError(f"the reference data has more than one column named {name!r}")
        kind = classify(series, name)
        if kind == NUMERIC:
            profiles[name] = profile_numeric(numeric_values(series), str(series.dtype), quantiles=quantiles, bins=bins)
        else:
            profiles[name] = profile_categorical(series, top_k=top_k)
    return ReferenceProfile(
        n_rows=int(len(df)),
        columns=profiles,
        data_hash=data_hash,
        quantile_count=quantiles,
        bins=bins,
        top_k=top_k,
        source=source,
        meta={"roles": dict.fromkeys(profiles, "feature")},
    )


def reference_sample(profile: ReferenceProfile, n: int) -> dict[str, list[Any] | np.ndarray[Any, Any]]:
    """A deterministic stand-in for the reference data, rebuilt from the profile (for Evidently's reports).

    Numeric columns: the quantile function at n evenly spaced levels; categorical columns: each category repeated
    in proportion to its frequency ("other" as ``__other__``). Nulls are left out.
    """
    out: dict[str, list[Any] | np.ndarray[Any, Any]] = {}
    for name, col in profile.columns.items():
        if isinstance(col, NumericProfile):
            if col.n_valid == 0 or col.min is None or col.max is None:
                out[name] = np.full(n, np.nan)
                continue
            u_grid, q_grid = stats.reference_grid(col.levels, col.quantiles, col.min, col.max)
            values = np.interp(stats.midpoint_levels(n), u_grid, q_grid)
            out[name] = np.round(values) if col.integer else values
        else:
            cells = [*col.frequencies, *([(OTHER, col.other)] if col.other > 0 else [])]
            if not cells:
                out[name] = [None] * n
                continue
            raw = np.array([p for _, p in cells]) * n
            counts = np.floor(raw).astype(int)
            # largest remainders get the rows rounding left over (deterministic: stable order)
            for i in np.argsort(-(raw - counts), kind="stable")[: n - int(counts.sum())]:
                counts[i] += 1
            values_list: list[Any] = []
            for (value, _), k in zip(cells, counts, strict=True):
                values_list.extend([value] * int(k))
            out[name] = values_list
    return out
