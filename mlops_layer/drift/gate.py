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
class _Assessment:
    name: str
    kind: str
    scores: dict[str, float] = field(default_factory=dict)
    p_value: float | None = None
    note: str | None = None


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def _example(values: Any) -> str:
    text = repr(values)
    return text if len(text) <= 40 else text[:37] + "..."


def _numeric_current(series: pd.Series, name: str, problems: list[str]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """The batch's values of a reference-numeric column; text that is not a number is a schema problem."""
    import pandas as pd

    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        if series.notna().any():
            problems.append(f"column {name!r} is numeric in the reference but {dtype} in the batch")
        return np.full(len(series), np.nan)
    if pd.api.types.is_numeric_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype):
        return numeric_values(series)
    present = series.notna()
    coerced = pd.to_numeric(series.where(present), errors="coerce")
    bad = present & coerced.isna()
    n_bad = int(bad.sum())
    if n_bad:
        problems.append(
            f"column {name!r} is numeric in the reference but has {n_bad} non-numeric value(s) in the batch "
            f"(e.g. {_example(series[bad].iloc[0])})"
        )
    return np.asarray(coerced.to_numpy(dtype=np.float64, na_value=np.nan), dtype=np.float64)


def _rate_problems(
    name: str, ref_rate: float, cur_rate: float, what: str, cfg: DriftConfig, problems: list[str]
) -> None:
    if cur_rate - ref_rate > cfg.max_null_rate_increase:
        problems.append(
            f"{what} rate of column {name!r} rose from {_pct(ref_rate)} to {_pct(cur_rate)} "
            f"(allowed: +{_pct(cfg.max_null_rate_increase)})"
        )


def _assess_numeric(
    name: str, ref: NumericProfile, series: pd.Series, cfg: DriftConfig, want_p: bool, problems: list[str]
) -> _Assessment:
    out = _Assessment(name, NUMERIC)
    values = _numeric_current(series, name, problems)
    n = values.size
    s, n_nan, n_inf = stats.split_finite(values)
    _rate_problems(name, ref.null_rate, n_nan / n, "null", cfg, problems)
    if n_inf and ref.inf_rate == 0:
        problems.append(f"column {name!r} has {n_inf} infinite value(s) in the batch; the reference had none")
    else:
        _rate_problems(name, ref.inf_rate, n_inf / n, "infinite-value", cfg, problems)
    if ref.n_valid == 0 or ref.min is None or ref.max is None:
        if s.size:
            problems.append(f"column {name!r} was entirely null in the reference but has {s.size} value(s) now")
        out.note = "no values in the reference"
        return out
    if s.size == 0:
        out.note = "no values in the batch"
        return out
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
    return out


def _assess_categorical(
    name: str, ref: CategoricalProfile, series: pd.Series, cfg: DriftConfig, want_p: bool, problems: list[str]
) -> _Assessment:
    import pandas as pd

    out = _Assessment(name, "categorical")
    n = len(series)
    values = category_strings(series)
    _rate_problems(name, ref.null_rate, (n - len(values)) / n, "null", cfg, problems)
    if len(values) and pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        problems.append(f"column {name!r} is categorical (text) in the reference but {series.dtype} in the batch")
    if ref.n_valid == 0:
        if len(values):
            problems.append(f"column {name!r} was entirely null in the reference but has {len(values)} value(s) now")
        out.note = "no values in the reference"
        return out
    if len(values) == 0:
        out.note = "no values in the batch"
        return out
    index = {k: i for i, (k, _) in enumerate(ref.frequencies)}
    ref_p = [p for _, p in ref.frequencies]
    cur_counts = [0] * len(index)
    other = unseen = 0
    unseen_examples: list[str] = []
    for value, count in sorted(values.value_counts(sort=False).items(), key=lambda kv: str(kv[0])):
        i = index.get(str(value))
        if i is not None:
            cur_counts[i] += int(count)
        elif ref.complete:
            unseen += int(count)
            if len(unseen_examples) < 3:
                unseen_examples.append(str(value))
        else:
            other += int(count)
    if not ref.complete:
        ref_p.append(ref.other)
        cur_counts.append(other)
    if unseen:
        ref_p.append(0.0)
        cur_counts.append(unseen)
        share = unseen / len(values)
        if share > cfg.max_unseen_share:
            problems.append(
                f"column {name!r} has {_pct(share)} values never seen in the reference "
                f"(e.g. {', '.join(repr(v) for v in unseen_examples)}; allowed: {_pct(cfg.max_unseen_share)})"
            )
    ref_arr = np.asarray(ref_p, dtype=np.float64)
    cur_arr = np.asarray(cur_counts, dtype=np.float64)
    out.scores["jensenshannon"] = stats.js_distance(ref_arr, cur_arr)
    out.scores["psi"] = stats.psi(ref_arr, cur_arr / cur_arr.sum())
    if want_p:
        out.p_value = stats.chi2_two_sample(ref_arr, ref.n_valid, cur_arr)
    return out


def _assess(
    name: str, ref: ColumnProfile, series: pd.Series, cfg: DriftConfig, small: bool, problems: list[str]
) -> _Assessment:
    import pandas as pd

    if isinstance(series, pd.DataFrame):
        raise InputError(f"the batch has more than one column named {name!r}")
    method, _ = cfg.method_for(name, ref.kind)
    want_p = small or method in P_VALUE_METHODS
    if isinstance(ref, NumericProfile):
        return _assess_numeric(name, ref, series, cfg, want_p, problems)
    return _assess_categorical(name, ref, series, cfg, want_p, problems)


def _decide(a: _Assessment, cfg: DriftConfig, p_adj: float | None, small: bool, n_rows: int) -> ColumnDrift:
    method, threshold = cfg.method_for(a.name, a.kind)
    weight = cfg.weight_for(a.name)
    if a.note is not None or not a.scores:
        return ColumnDrift(a.name, method, None, threshold, False, None, a.kind, weight, {}, a.note or "not assessed")
    if method in P_VALUE_METHODS:
        score = 1.0 if p_adj is None else p_adj
        drifted = score < threshold
    else:
        score = a.scores[method]
        drifted = bool(math.isfinite(score) and score >= threshold)
        if small and p_adj is not None:
            # a small batch needs evidence as well as size: both the effect and the corrected test must agree
            drifted = drifted and p_adj < cfg.alpha
    note = None
    if n_rows < cfg.min_rows:
        drifted, note = False, f"too few rows ({n_rows} < {cfg.min_rows}) to call drift"
    return ColumnDrift(a.name, method, score, threshold, bool(drifted), p_adj, a.kind, weight, dict(a.scores), note)


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
    pred = cfg.prediction_column
    batch_cols = [str(c) for c in current.columns]
    if cfg.include is not None:
        unknown = [c for c in cfg.include if c not in profile.columns and c not in batch_cols]
        if unknown:
            raise InputError(
                f"column(s) {', '.join(repr(c) for c in unknown)} are neither in the reference nor in the batch",
                hint=f"reference columns: {', '.join(list(profile.columns)[:30])}",
            )

    def wanted(c: str) -> bool:
        return c != pred and c not in cfg.exclude and (cfg.include is None or c in cfg.include)

    ref_cols = [c for c in profile.columns if wanted(c)]
    problems: list[str] = []
    for c in ref_cols:
        if c not in batch_cols:
            problems.append(f"column {c!r} is in the reference but missing from the batch")
    for c in batch_cols:
        if wanted(c) and c not in profile.columns:
            problems.append(
                f"column {c!r} is in the batch but not in the reference "
                f"(if it is not a feature, leave it out with --exclude {c})"
            )
    small = n_cur <= cfg.small_n
    present = [c for c in ref_cols if c in batch_cols]
    total = len(present) + (1 if pred else 0)
    assessments: list[_Assessment] = []
    for i, name in enumerate(present):
        assessments.append(_assess(name, profile.columns[name], current[name], cfg, small, problems))
        if progress is not None:
            progress(i + 1, total, name)
    pred_assessment: _Assessment | None = None
    if pred:
        if pred not in profile.columns:
            problems.append(f"prediction column {pred!r} is not in the reference profile")
        elif pred not in batch_cols:
            problems.append(f"prediction column {pred!r} is missing from the batch")
        else:
            pred_assessment = _assess(pred, profile.columns[pred], current[pred], cfg, small, problems)
        if progress is not None:
            progress(total, total, pred)
    tested = [a for a in [*assessments, pred_assessment] if a is not None and a.p_value is not None]
    adjusted = stats.adjust_p_values([a.p_value for a in tested if a.p_value is not None], cfg.correction)
    p_adj = {a.name: p for a, p in zip(tested, adjusted, strict=True)}
    columns = tuple(_decide(a, cfg, p_adj.get(a.name), small, n_cur) for a in assessments)
    prediction = (
        _decide(pred_assessment, cfg, p_adj.get(pred_assessment.name), small, n_cur) if pred_assessment else None
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
    )
