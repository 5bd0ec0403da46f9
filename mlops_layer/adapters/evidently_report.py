"""Evidently adapter: an HTML drift report for people, configured like the gate so its numbers agree.

Evidently 0.7's API (``Report``, ``Dataset``, ``DataDefinition``, ``DataDriftPreset``) runs on a bounded, seeded
sample of the batch. The reference side is a sample of the reference file in ad hoc checks, or, in model checks,
a deterministic stand-in rebuilt from the profile's quantile function and frequencies (the raw training data is
never needed). Each column gets the gate's method and threshold (``per_column_method`` / ``per_column_threshold``)
under Evidently's own method names, and sees the same cells as the gate: categories outside the profile's top-K are
folded into ``__other__``, and a numeric column judged by ``psi`` or ``jensenshannon`` is handed over as its
reference quantile bin (Evidently would otherwise bin equal-width over both samples and get other numbers).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.errors import BackendError, InputError

if TYPE_CHECKING:
    import pandas as pd

    from mlops_layer.drift.profile import ReferenceProfile
    from mlops_layer.drift.result import DriftResult

DEFAULT_SAMPLE_ROWS = 50_000

Step = Callable[[str], None]


@dataclass(frozen=True)
class EvidentlyReport:
    """Where the report went and the per-column drift scores Evidently computed (to compare with the gate)."""

    path: Path
    scores: dict[str, float] = field(default_factory=dict)
    drifted: dict[str, bool] = field(default_factory=dict)
    methods: dict[str, str] = field(default_factory=dict)
    current_rows: int = 0
    reference_rows: int = 0
    reference_from_profile: bool = True


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    import numpy as np

    if len(frame) <= rows:
        return frame
    idx = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
    return frame.iloc[idx]


BINNED_METHODS = ("psi", "jensenshannon")


def bin_labels(edges: tuple[float, ...]) -> list[str]:
    """Readable names of the bins (-inf, e1], (e1, e2], ..., (e_last, inf), sortable by their number."""
    bounds = ["-inf", *(f"{e:.4g}" for e in edges), "inf"]
    return [f"q{i + 1:02d} ({bounds[i]}, {bounds[i + 1]}]" for i in range(len(edges) + 1)]


def _binned(values: Any, edges: tuple[float, ...]) -> Any:
    import numpy as np

    labels = np.array(bin_labels(edges), dtype=object)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    out = labels[np.minimum(idx, len(labels) - 1)]
    out[~np.isfinite(values)] = None
    return out


def _prepare(frame: pd.DataFrame, profile: ReferenceProfile, columns: list[str], binned: set[str]) -> pd.DataFrame:
    """The columns as the gate sees them: numbers as float (inf -> NaN) or as their reference quantile bin,
    categories as text with top-K folding."""
    import numpy as np
    import pandas as pd

    from mlops_layer.drift.profile import OTHER, CategoricalProfile, numeric_values

    out: dict[str, Any] = {}
    for name in columns:
        col = profile.columns[name]
        series = frame[name]
        if name in binned and not isinstance(col, CategoricalProfile):
            out[name] = _binned(numeric_values(series), col.bin_edges)
        elif isinstance(col, CategoricalProfile):
            known = {k for k, _ in col.frequencies}
            text = series.astype("string").astype(object).where(series.notna(), None)
            if not col.complete:
                text = text.map(lambda v, known=known: v if v is None or v in known else OTHER)
            out[name] = text.to_numpy(dtype=object)
        else:
            values = numeric_values(series).copy()
            values[~np.isfinite(values)] = np.nan
            out[name] = values
    return pd.DataFrame(out, index=range(len(frame)))


def _reference_frame(profile: ReferenceProfile, columns: list[str], rows: int, binned: set[str]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    from mlops_layer.drift.profile import NumericProfile, reference_sample

    n = max(1, min(rows, profile.n_rows))
    data = reference_sample(profile, n)
    frame: dict[str, Any] = {}
    for c in columns:
        col = profile.columns[c]
        if c in binned and isinstance(col, NumericProfile):
            # exactly the profile's bin proportions (largest remainders), not a re-binned approximation
            raw = np.asarray(col.bin_proportions) * n
            counts = np.floor(raw).astype(int)
            for i in np.argsort(-(raw - counts), kind="stable")[: n - int(counts.sum())]:
                counts[i] += 1
            frame[c] = np.repeat(np.array(bin_labels(col.bin_edges), dtype=object), counts)
        else:
            frame[c] = data[c]
    return pd.DataFrame(frame)


def write_report(
    path: Path | str,
    profile: ReferenceProfile,
    current: pd.DataFrame,
    result: DriftResult,
    *,
    reference: pd.DataFrame | None = None,
    drift_share: float | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    seed: int = 0,
    step: Step | None = None,
) -> EvidentlyReport:
    """Write Evidently's data drift report for the columns the gate assessed; return Evidently's own scores."""
    import warnings

    import numpy as np

    os.environ.setdefault("DO_NOT_TRACK", "1")
    target = Path(path)
    if target.suffix.lower() not in (".html", ".htm"):
        raise InputError(f"report path {target} should end in .html", hint="e.g. --report drift.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    checked = [c for c in (*result.columns, *([result.prediction] if result.prediction else [])) if c.score is not None]
    if not checked:
        raise InputError(
            "no column could be compared, so there is nothing to report",
            hint="see the schema problems of the check",
        )
    names = [c.name for c in checked]
    binned = {c.name for c in checked if c.kind == "numeric" and c.method in BINNED_METHODS}
    say = step or (lambda _msg: None)
    say(f"sampling up to {sample_rows:,} rows")
    cur = _prepare(_sample(current, sample_rows, seed), profile, names, binned)
    from_profile = reference is None
    if reference is None:
        ref = _reference_frame(profile, names, sample_rows, binned)
    else:
        ref = _prepare(_sample(reference, sample_rows, seed + 1), profile, names, binned)
    # Evidently refuses a column with no values on either side; the gate reported those already.
    usable = [c for c in checked if cur[c.name].notna().any() and ref[c.name].notna().any()]
    if not usable:
        raise InputError("no column has values on both sides, so there is nothing to report")
    cols = [c.name for c in usable]
    numeric = [c.name for c in usable if c.kind == "numeric" and c.name not in binned]
    categorical = [c.name for c in usable if c.kind != "numeric" or c.name in binned]
    say(f"running Evidently's DataDriftPreset on {len(cols)} columns")
    try:
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

        definition = DataDefinition(numerical_columns=numeric, categorical_columns=categorical)
        preset = DataDriftPreset(
            columns=cols,
            per_column_method={c.name: c.method for c in usable},
            per_column_threshold={c.name: float(c.threshold) for c in usable},
            drift_share=float(drift_share if drift_share is not None else result.drift_share),
        )
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            # tiny samples make numpy/plotly warn about degrees of freedom: noise for the person reading the report
            warnings.simplefilter("ignore")
            snapshot = Report([preset]).run(
                Dataset.from_pandas(cur[cols], data_definition=definition),
                Dataset.from_pandas(ref[cols], data_definition=definition),
            )
            say(f"writing {target}")
            snapshot.save_html(str(target))
            metrics = snapshot.dict()["metrics"]
    except (ValueError, TypeError, KeyError, ZeroDivisionError) as exc:
        raise BackendError(f"Evidently could not build the drift report: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise BackendError(f"writing the drift report {target} failed: {exc}") from exc
    scores: dict[str, float] = {}
    drifted: dict[str, bool] = {}
    methods: dict[str, str] = {}
    thresholds = {c.name: c.threshold for c in usable}
    for metric in metrics:
        config = metric.get("config") or {}
        if not str(config.get("type", "")).endswith("ValueDrift"):
            continue
        name, method, value = str(config.get("column")), str(config.get("method")), metric.get("value")
        if value is None:
            continue
        scores[name] = float(value)
        methods[name] = method
        p_value = method in ("ks", "chisquare")
        drifted[name] = scores[name] < thresholds[name] if p_value else scores[name] >= thresholds[name]
    return EvidentlyReport(
        path=target,
        scores=scores,
        drifted=drifted,
        methods=methods,
        current_rows=len(cur),
        reference_rows=len(ref),
        reference_from_profile=from_profile,
    )
