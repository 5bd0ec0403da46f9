"""The drift gate: schema checks first, then one vectorised pass of statistics per column, then the verdict.

Effect sizes decide (PSI, normalised Wasserstein, Jensen-Shannon): at a million rows every p-value says "drift",
while a tenth of a standard deviation means the same at any size. Small batches (``small_n`` rows or fewer) also
need a significance test, corrected for the number of columns, so noise in a handful of rows is not called drift.
Deterministic: no sampling, stable orderings.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_layer.drift import stats
from mlops_layer.drift.config import P_VALUE_METHODS, DriftConfig
from mlops_layer.drift.profile import (
    NUMERIC,
    CategoricalProfile,
    ColumnProfile,
    NumericProfile,
    ReferenceProfile,
    category_strings,
    numeric_values,
)
from mlops_layer.drift.result import ColumnDrift, DriftResult
from mlops_layer.errors import InputError

if TYPE_CHECKING:
    import pandas as pd

Progress = Callable[[int, int, str], None]


@dataclass
class Assessment:
    """One column's scores before the verdict (from the whole column, or from its merged aggregate)."""

    name: str
    kind: str
    scores: dict[str, float] = field(default_factory=dict)
    p_value: float | None = None
    note: str | None = None
    # approximate scores (merged aggregates): the bound on each score's error, and the p-value's (low, high) range
    bounds: dict[str, float] = field(default_factory=dict)
    p_range: tuple[float, float] | None = None


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _example(values: Any) -> str:
    text = repr(values)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass(frozen=True)
class NumericChunk:
    """A batch's (or a chunk's) values of a reference-numeric column, and what did not fit."""

    values: np.ndarray[Any, np.dtype[np.float64]]
    n_bad: int = 0  # text that is not a number (counted as null in ``values``)
    bad_example: str | None = None
    wrong_dtype: str | None = None  # bool or datetime values where numbers were expected


def numeric_chunk(series: pd.Series) -> NumericChunk:
    """Read a reference-numeric column of a batch or chunk as float64 (NaN for missing and unparseable values)."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        wrong = str(dtype) if series.notna().any() else None
        return NumericChunk(np.full(len(series), np.nan), wrong_dtype=wrong)
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return NumericChunk(numeric_values(series))
    present = series.notna()
    coerced = pd.to_numeric(series.where(present), errors="coerce")
    bad = present & coerced.isna()
    n_bad = int(bad.sum())
    example = _example(series[bad].iloc[0]) if n_bad else None
    return NumericChunk(
        np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64), n_bad, example
    )


def numeric_chunk_problems(
    name: str, wrong_dtype: str | None, n_bad: int, bad_example: str | None, problems: list[str]
) -> None:
    if wrong_dtype is not None:
        problems.append(f"column {name!r} is numeric in the reference but {wrong_dtype} in the batch")
    if n_bad:
        problems.append(
            f"column {name!r} is numeric in the reference but has {n_bad} non-numeric value(s) in the batch "
            f"(e.g. {bad_example})"
        )


def _numeric_current(series: pd.Series, name: str, problems: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The batch's values of a reference-numeric column; text that is not a number is a schema problem."""
    chunk = numeric_chunk(series)
    numeric_chunk_problems(name, chunk.wrong_dtype, chunk.n_bad, chunk.bad_example, problems)
    return chunk.values


def _rate_problems(
    name: str, ref_rate: float, cur_rate: float, what: str, cfg: DriftConfig, problems: list[str]
) -> None:
    if cur_rate - ref_rate > cfg.max_null_rate_increase:
        problems.append(
            f"{what} rate of column {name!r} rose from {_pct(ref_rate)} to {_pct(cur_rate)} "
            f"(allowed: +{_pct(cfg.max_null_rate_increase)})"
        )


def numeric_rates(
    name: str, ref: NumericProfile, n: int, n_nan: int, n_inf: int, cfg: DriftConfig, problems: list[str]
) -> None:
    """Null and infinite-value rate problems of a numeric column (``n`` rows, of which NaN / +-inf)."""
    _rate_problems(name, ref.null_rate, n_nan / n, "null", cfg, problems)
    if n_inf and ref.inf_rate == 0:
        problems.append(f"column {name!r} has {n_inf} infinite value(s) in the batch; the reference had none")
    else:
        _rate_problems(name, ref.inf_rate, n_inf / n, "infinite-value", cfg, problems)


def numeric_unassessable(out: Assessment, ref: NumericProfile, n_valid: int, problems: list[str]) -> bool:
    """Note why a numeric column cannot be scored (no values on one side); True when it cannot."""
    if ref.n_valid == 0 or ref.min is None or ref.max is None:
        if n_valid:
            problems.append(f"column {out.name!r} was entirely null in the reference but has {n_valid} value(s) now")
        out.note = "no values in the reference"
        return True
    if n_valid == 0:
        out.note = "no values in the batch"
        return True
    return False


def score_numeric(out: Assessment, ref: NumericProfile, s: np.ndarray[Any, np.dtype[np.float64]], want_p: bool) -> None:
    """Exact scores of a numeric column from its sorted finite values."""
    assert ref.min is not None and ref.max is not None
    edges = np.asarray(ref.bin_edges, dtype=np.float64)
    ref_p = np.asarray(ref.bin_proportions, dtype=np.float64)
    cur_p = stats.bin_counts(s, edges) / s.size
    out.scores["psi"] = stats.psi(ref_p, cur_p)
    out.scores["jensenshannon"] = stats.js_distance(ref_p, cur_p)
    out.scores["wasserstein"] = (
        stats.wasserstein_to_quantiles(s, ref.levels, ref.quantiles, ref.min, ref.max) / ref.scale
    )
    if want_p:
        d, p = stats.ks_against_quantiles(s, ref.levels, ref.quantiles, ref.min, ref.max, ref.n_valid)
        out.scores["ks"] = d
        out.p_value = p


def _assess_numeric(
    name: str, ref: NumericProfile, series: pd.Series, cfg: DriftConfig, want_p: bool, problems: list[str]
) -> Assessment:
    out = Assessment(name, NUMERIC)
    values = _numeric_current(series, name, problems)
    s, n_nan, n_inf = stats.split_finite(values)
    numeric_rates(name, ref, values.size, n_nan, n_inf, cfg, problems)
    if not numeric_unassessable(out, ref, int(s.size), problems):
        score_numeric(out, ref, s, want_p)
    return out


@dataclass
class CategoryCounts:
    """A batch's counts of a reference-categorical column against the reference's categories (mergeable).

    ``counts[i]`` counts the reference's i-th listed category; ``other`` the values outside the list when the
    reference's list is incomplete, ``unseen`` those never seen when it is complete (with up to three examples,
    the smallest as text).
    """

    counts: list[int]
    n_rows: int = 0
    n_values: int = 0
    other: int = 0
    unseen: int = 0
    unseen_examples: list[str] = field(default_factory=list)
    numeric_dtype: str | None = None

    @classmethod
    def empty(cls, ref: CategoricalProfile) -> CategoryCounts:
        return cls(counts=[0] * len(ref.frequencies))

    def update(self, ref: CategoricalProfile, series: pd.Series, index: dict[str, int] | None = None) -> None:
        """Count one batch or chunk (``index``: category -> position, computed from ``ref`` when not given)."""
        import pandas as pd

        index = index if index is not None else {k: i for i, (k, _) in enumerate(ref.frequencies)}
        values = category_strings(series)
        self.n_rows += len(series)
        self.n_values += len(values)
        if (
            self.numeric_dtype is None
            and len(values)
            and pd.api.types.is_numeric_dtype(series.dtype)
            and not pd.api.types.is_bool_dtype(series.dtype)
        ):
            self.numeric_dtype = str(series.dtype)
        examples = list(self.unseen_examples)
        for value, count in values.value_counts(sort=False).items():
            key = str(value)
            i = index.get(key)
            if i is not None:
                self.counts[i] += int(count)
            elif ref.complete:
                self.unseen += int(count)
                examples.append(key)
            else:
                self.other += int(count)
        self.unseen_examples = sorted(set(examples))[:3]

    def merge(self, other: CategoryCounts) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.n_rows += other.n_rows
        self.n_values += other.n_values
        self.other += other.other
        self.unseen += other.unseen
        self.unseen_examples = sorted({*self.unseen_examples, *other.unseen_examples})[:3]
        self.numeric_dtype = self.numeric_dtype or other.numeric_dtype

    def assess(
        self, name: str, ref: CategoricalProfile, cfg: DriftConfig, want_p: bool, problems: list[str]
    ) -> Assessment:
        """Scores of the column from the counts: exact, whatever the chunking."""
        out = Assessment(name, "categorical")
        n, n_values = self.n_rows, self.n_values
        _rate_problems(name, ref.null_rate, (n - n_values) / n if n else 0.0, "null", cfg, problems)
        if self.numeric_dtype is not None:
            problems.append(
                f"column {name!r} is categorical (text) in the reference but {self.numeric_dtype} in the batch"
            )
        if ref.n_valid == 0:
            if n_values:
                problems.append(f"column {name!r} was entirely null in the reference but has {n_values} value(s) now")
            out.note = "no values in the reference"
            return out
        if n_values == 0:
            out.note = "no values in the batch"
            return out
        ref_p = [p for _, p in ref.frequencies]
        cur_counts = list(self.counts)
        if not ref.complete:
            ref_p.append(ref.other)
            cur_counts.append(self.other)
        if self.unseen:
            ref_p.append(0.0)
            cur_counts.append(self.unseen)
            share = self.unseen / n_values
            if share > cfg.max_unseen_share:
                problems.append(
                    f"column {name!r} has {_pct(share)} values never seen in the reference "
                    f"(e.g. {', '.join(repr(v) for v in self.unseen_examples)}; allowed: {_pct(cfg.max_unseen_share)})"
                )
        ref_arr = np.asarray(ref_p, dtype=np.float64)
        cur_arr = np.asarray(cur_counts, dtype=np.float64)
        out.scores["jensenshannon"] = stats.js_distance(ref_arr, cur_arr)
        out.scores["psi"] = stats.psi(ref_arr, cur_arr / cur_arr.sum())
        if want_p:
            out.p_value = stats.chi2_two_sample(ref_arr, ref.n_valid, cur_arr)
        return out


def _assess_categorical(
    name: str, ref: CategoricalProfile, series: pd.Series, cfg: DriftConfig, want_p: bool, problems: list[str]
) -> Assessment:
    counts = CategoryCounts.empty(ref)
    counts.update(ref, series)
    return counts.assess(name, ref, cfg, want_p, problems)


def _assess(
    name: str, ref: ColumnProfile, series: pd.Series, cfg: DriftConfig, small: bool, problems: list[str]
) -> Assessment:
    import pandas as pd

    if isinstance(series, pd.DataFrame):
        raise InputError(f"the batch has more than one column named {name!r}")
    method, _ = cfg.method_for(name, ref.kind)
    want_p = small or method in P_VALUE_METHODS
    if isinstance(ref, NumericProfile):
        return _assess_numeric(name, ref, series, cfg, want_p, problems)
    return _assess_categorical(name, ref, series, cfg, want_p, problems)


def _decide(
    a: Assessment,
    cfg: DriftConfig,
    p_adj: float | None,
    small: bool,
    n_rows: int,
    p_adj_range: tuple[float, float] | None = None,
) -> ColumnDrift:
    method, threshold = cfg.method_for(a.name, a.kind)
    weight = cfg.weight_for(a.name)
    if a.note is not None or not a.scores:
        return ColumnDrift(a.name, method, None, threshold, False, None, a.kind, weight, {}, a.note or "not assessed")
    bound: float | None = None
    near = False
    if method in P_VALUE_METHODS:
        score = 1.0 if p_adj is None else p_adj
        drifted = score < threshold
        if p_adj_range is not None:
            low, high = p_adj_range
            bound = max(score - low, high - score, 0.0)
            near = bool(low < threshold <= high)
    else:
        score = a.scores[method]
        drifted = bool(math.isfinite(score) and score >= threshold)
        if method in a.bounds:
            bound = a.bounds[method]
            near = bool(abs(score - threshold) <= bound)
        if small and p_adj is not None:
            # a small batch needs evidence as well as size: both the effect and the corrected test must agree
            drifted = drifted and p_adj < cfg.alpha
    note = None
    if n_rows < cfg.min_rows:
        drifted, note = False, f"too few rows ({n_rows} < {cfg.min_rows}) to call drift"
    elif near:
        note = f"within the error bound ({bound:.2g}) of the threshold: the verdict could go either way"
    return ColumnDrift(
        a.name,
        method,
        score,
        threshold,
        bool(drifted),
        p_adj,
        a.kind,
        weight,
        dict(a.scores),
        note,
        bound=bound,
        near_threshold=near,
        bounds=dict(a.bounds),
    )


@dataclass(frozen=True)
class Plan:
    """Which columns a check scores, decided from the batch's column names before any value is read."""

    columns: tuple[str, ...]  # reference feature columns present in the batch, in reference order
    prediction: str | None  # the prediction column, when it is in both the reference and the batch
    problems: tuple[str, ...]  # missing / extra feature columns
    prediction_problems: tuple[str, ...] = ()  # the prediction column missing (reported after the features')

    @property
    def scored(self) -> tuple[str, ...]:
        return (*self.columns, *((self.prediction,) if self.prediction else ()))


def plan(profile: ReferenceProfile, batch_columns: list[str], cfg: DriftConfig) -> Plan:
    """Match the batch's columns with the reference's: what to score, and the schema problems of names alone."""
    pred = cfg.prediction_column
    if cfg.include is not None:
        unknown = [c for c in cfg.include if c not in profile.columns and c not in batch_columns]
        if unknown:
            raise InputError(
                f"column(s) {', '.join(repr(c) for c in unknown)} are neither in the reference nor in the batch",
                hint=f"reference columns: {', '.join(list(profile.columns)[:30])}",
            )

    roles = profile.roles  # a column the profile holds as a prediction, target, id... is no feature to compare

    def wanted(c: str) -> bool:
        return (
            c != pred
            and roles.get(c, "feature") == "feature"
            and c not in cfg.exclude
            and (cfg.include is None or c in cfg.include)
        )

    ref_cols = [c for c in profile.columns if wanted(c)]
    problems: list[str] = []
    for c in ref_cols:
        if c not in batch_columns:
            problems.append(f"column {c!r} is in the reference but missing from the batch")
    for c in batch_columns:
        if wanted(c) and c not in profile.columns:
            problems.append(
                f"column {c!r} is in the batch but not in the reference "
                f"(if it is not a feature, leave it out with --exclude {c})"
            )
    scored_pred: str | None = None
    pred_problems: list[str] = []
    if pred:
        if pred not in profile.columns:
            pred_problems.append(f"prediction column {pred!r} is not in the reference profile")
        elif pred not in batch_columns:
            pred_problems.append(f"prediction column {pred!r} is missing from the batch")
        else:
            scored_pred = pred
    present = tuple(c for c in ref_cols if c in batch_columns)
    return Plan(present, scored_pred, tuple(problems), tuple(pred_problems))


def wants_p_value(cfg: DriftConfig, name: str, kind: str, small: bool) -> bool:
    method, _ = cfg.method_for(name, kind)
    return small or method in P_VALUE_METHODS


def verdict(
    profile: ReferenceProfile,
    the_plan: Plan,
    assessments: list[Assessment],
    cfg: DriftConfig,
    n_cur: int,
    problems: list[str],
    *,
    engine: str = "memory",
) -> DriftResult:
    """Decide every column (p-values corrected together) and the batch, from the columns' assessments."""
    small = n_cur <= cfg.small_n
    by_name = {a.name: a for a in assessments}
    features = [by_name[c] for c in the_plan.columns]
    pred_assessment = by_name.get(the_plan.prediction) if the_plan.prediction else None
    tested = [a for a in [*features, pred_assessment] if a is not None and a.p_value is not None]
    p_values = [a.p_value for a in tested if a.p_value is not None]
    adjusted = stats.adjust_p_values(p_values, cfg.correction)
    p_adj = {a.name: p for a, p in zip(tested, adjusted, strict=True)}
    p_range: dict[str, tuple[float, float]] = {}
    if any(a.p_range is not None for a in tested):
        # corrections are monotone in every p-value: correcting the lows and the highs bounds each corrected value
        lows = stats.adjust_p_values(
            [(a.p_range or (p, p))[0] for a, p in zip(tested, p_values, strict=True)], cfg.correction
        )
        highs = stats.adjust_p_values(
            [(a.p_range or (p, p))[1] for a, p in zip(tested, p_values, strict=True)], cfg.correction
        )
        p_range = {a.name: (lo, hi) for a, lo, hi in zip(tested, lows, highs, strict=True) if a.p_range is not None}
    columns = tuple(_decide(a, cfg, p_adj.get(a.name), small, n_cur, p_range.get(a.name)) for a in features)
    prediction = (
        _decide(pred_assessment, cfg, p_adj.get(pred_assessment.name), small, n_cur, p_range.get(pred_assessment.name))
        if pred_assessment
        else None
    )
    assessed = [c for c in columns if c.score is not None]
    weight_sum = sum(c.weight for c in assessed)
    share = sum(c.weight for c in assessed if c.drifted) / weight_sum if weight_sum > 0 else 0.0
    drift = any(c.drifted for c in assessed) and share >= cfg.drift_share
    if prediction is not None and prediction.drifted and cfg.prediction_drift_fails:
        drift = True
    return DriftResult(
        drift=bool(drift),
        share=float(share),
        columns=columns,
        schema_problems=tuple(problems),
        n_reference=profile.n_rows,
        n_current=n_cur,
        drift_share=cfg.drift_share,
        prediction=prediction,
        significance_tested=bool(tested),
        engine=engine,
    )


def check(
    profile: ReferenceProfile,
    current: pd.DataFrame,
    config: DriftConfig | None = None,
    *,
    progress: Progress | None = None,
) -> DriftResult:
    """Check a batch against a reference profile. Schema problems come first and fail the check on their own."""
    cfg = config or DriftConfig()
    n_cur = len(current)
    if n_cur == 0:
        raise InputError("the batch has no rows", hint="an empty batch cannot be checked for drift")
    the_plan = plan(profile, [str(c) for c in current.columns], cfg)
    problems = list(the_plan.problems)
    small = n_cur <= cfg.small_n
    total = len(the_plan.columns) + (1 if cfg.prediction_column else 0)
    assessments: list[Assessment] = []
    for i, name in enumerate(the_plan.columns):
        assessments.append(_assess(name, profile.columns[name], current[name], cfg, small, problems))
        if progress is not None:
            progress(i + 1, total, name)
    problems.extend(the_plan.prediction_problems)
    if the_plan.prediction is not None:
        pred = the_plan.prediction
        assessments.append(_assess(pred, profile.columns[pred], current[pred], cfg, small, problems))
    if progress is not None and cfg.prediction_column:
        progress(total, total, cfg.prediction_column)
    return verdict(profile, the_plan, assessments, cfg, n_cur, problems)
