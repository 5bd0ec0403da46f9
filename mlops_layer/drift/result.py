"""The verdict of a drift check: one :class:`ColumnDrift` per column and a :class:`DriftResult` for the batch.

Plain value objects without heavy imports, so governance and monitoring can read them cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


def _num(value: float | None, digits: int = 6) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


@dataclass(frozen=True)
class ColumnDrift:
    """One column's verdict.

    ``score`` is the deciding method's value (an effect size, or a corrected p-value for ``ks``/``chisquare``);
    ``None`` when it could not be computed (no values on one side). ``scores`` holds every statistic computed for
    the column (e.g. both ``psi`` and ``wasserstein`` for a numeric column). ``p_value`` is the corrected p-value of
    the small-batch significance test when one ran. ``note`` says why a column was not assessed.

    Scores computed from merged aggregates (the streaming and Spark engines, beyond ``exact_limit`` rows) may be
    approximate: ``bound`` is then the proven bound on ``score``'s error (``bounds`` per statistic; ``None``: exact)
    and ``near_threshold`` says the threshold lies within it, so the in-memory gate could decide otherwise.
    """

    name: str
    method: str
    score: float | None
    threshold: float
    drifted: bool
    p_value: float | None = None
    kind: str = "numeric"
    weight: float = 1.0
    scores: dict[str, float] = field(default_factory=dict)
    note: str | None = None
    bound: float | None = None
    near_threshold: bool = False
    bounds: dict[str, float] = field(default_factory=dict)

    @property
    def approximate(self) -> bool:
        return self.bound is not None and self.bound > 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "method": self.method,
            "score": _num(self.score),
            "threshold": self.threshold,
            "drifted": self.drifted,
            "p_value": _num(self.p_value, 10),
            "kind": self.kind,
            "weight": self.weight,
            "scores": {k: _num(v) for k, v in sorted(self.scores.items())},
            "note": self.note,
            "bound": _num(self.bound, 9),
            "near_threshold": self.near_threshold,
            "bounds": {k: _num(v, 9) for k, v in sorted(self.bounds.items())},
        }


@dataclass(frozen=True)
class DriftResult:
    """The verdict for a batch.

    ``drift`` — the (importance-weighted) share of drifted feature columns reached ``drift_share``, or the
    prediction drifted (when that fails the check). ``passed`` — no drift and no schema problem; a schema problem
    fails the check on its own. The CLI exits 1 when ``passed`` is false.
    """

    drift: bool
    share: float
    columns: tuple[ColumnDrift, ...]
    schema_problems: tuple[str, ...]
    n_reference: int
    n_current: int
    drift_share: float = 0.5
    prediction: ColumnDrift | None = None
    significance_tested: bool = False
    # context filled in by the api (None in ad hoc checks of frames)
    model: str | None = None
    version: str | None = None
    reference: str | None = None
    current: str | None = None
    checked_at: str | None = None
    report: str | None = None
    report_scores: dict[str, float] | None = None
    mlflow_run_id: str | None = None
    audit_seq: int | None = None
    warnings: tuple[str, ...] = ()
    engine: str = "memory"  # memory | stream | spark: how the batch was read

    @property
    def approximate(self) -> bool:
        """Some score came from merged aggregates with a non-zero error bound."""
        return any(c.approximate for c in (*self.columns, *((self.prediction,) if self.prediction else ())))

    @property
    def near_threshold(self) -> tuple[str, ...]:
        """Columns whose score is within its error bound of the threshold (their verdict could go either way)."""
        cols = (*self.columns, *((self.prediction,) if self.prediction else ()))
        return tuple(c.name for c in cols if c.near_threshold)

    @property
    def passed(self) -> bool:
        return not self.drift and not self.schema_problems

    @property
    def drifted_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.drifted)

    @property
    def status(self) -> str:
        """``passed`` / ``drift`` / ``schema`` (schema problems win: the data does not even fit)."""
        if self.schema_problems:
            return "schema"
        return "drift" if self.drift else "passed"

    def summary(self) -> str:
        """One line for people, tags and audit details."""
        if self.passed:
            return (
                f"no drift: {len(self.drifted_columns)} of {len(self.columns)} columns drifted (share {self.share:.2f})"
            )
        parts: list[str] = []
        if self.drift:
            cols = ", ".join(
                f"{c.name} ({c.method} {c.score:.3g})" for c in self.columns if c.drifted and c.score is not None
            )
            parts.append(f"drift share {self.share:.2f} >= {self.drift_share:.2f}" + (f": {cols}" if cols else ""))
        if self.prediction is not None and self.prediction.drifted:
            parts.append(f"prediction {self.prediction.name} drifted")
        if self.schema_problems:
            parts.append(f"{len(self.schema_problems)} schema problem(s): {self.schema_problems[0]}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "drift": self.drift,
            "passed": self.passed,
            "status": self.status,
            "share": round(self.share, 6),
            "drift_share": self.drift_share,
            "columns": [c.to_dict() for c in self.columns],
            "schema_problems": list(self.schema_problems),
            "prediction": self.prediction.to_dict() if self.prediction is not None else None,
            "n_reference": self.n_reference,
            "n_current": self.n_current,
            "significance_tested": self.significance_tested,
            "model": self.model,
            "version": self.version,
            "reference": self.reference,
            "current": self.current,
            "checked_at": self.checked_at,
            "report": self.report,
            "report_scores": (
                {k: _num(v) for k, v in sorted(self.report_scores.items())} if self.report_scores is not None else None
            ),
            "mlflow_run_id": self.mlflow_run_id,
            "audit_seq": self.audit_seq,
            "warnings": list(self.warnings),
            "engine": self.engine,
            "approximate": self.approximate,
            "near_threshold": list(self.near_threshold),
        }
