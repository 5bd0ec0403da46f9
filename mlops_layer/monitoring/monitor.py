"""One monitored production batch, end to end: score it, log it as a point in time, audit it, run the alerts.

The flow works on small ports — the model, the drift gate, the MLflow monitoring run, the audit trail, the
notifications — so tests can hand it fakes and :func:`mlops_layer.api.monitor` wires the real ones. Order: the batch
is logged and audited before the alert state changes; alert events are audited before anyone is notified; a failed
notification is audited too (and waits in the outbox). The whole batch runs under the model's monitoring lock, so
two monitors of one model never lose each other's alert state.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from mlops_layer.audit.actions import (
    ALERT_CLEARED,
    ALERT_FIRED,
    ALERT_RESOLVED,
    MONITOR_BATCH,
    NOTIFICATION_FAILED,
)
from mlops_layer.errors import InputError
from mlops_layer.monitoring.alerts import (
    FIRED,
    PREDICTION_DRIFT_SIGNAL,
    SUPERSEDED,
    AlertEvent,
    AlertRule,
    Assessment,
    BatchPoint,
    assess,
    evaluate_alerts,
)
from mlops_layer.monitoring.datatime import TimeRange, advance, high_water
from mlops_layer.monitoring.notifiers import DeliveryResult
from mlops_layer.monitoring.scoring import evaluate_batch, metric_names, prediction_summary
from mlops_layer.monitoring.state import load_state, model_lock, save_state

# what a labelled batch always shows, besides the metrics the version was promoted on and those alert rules watch
DEFAULT_METRICS = {"classifier": ("accuracy", "f1", "roc_auc"), "regressor": ("rmse", "mae", "r2")}

# ----------------------------------------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class Predictions:
    """What the model said about a batch. ``kind`` is ``classifier`` or ``regressor``."""

    labels: Any
    proba: Any | None = None
    classes: Any | None = None
    kind: str = "classifier"


class ModelPort(Protocol):
    """The serving model. ``feature_names`` are the columns it needs (None: use every non-label column)."""

    @property
    def feature_names(self) -> tuple[str, ...] | None: ...

    def predict(self, features: Any) -> Predictions: ...


class DriftView(Protocol):
    """What monitoring reads of a drift verdict (``mlops_layer.drift.result.DriftResult`` satisfies it)."""

    @property
    def share(self) -> float: ...
    @property
    def drift(self) -> bool: ...
    @property
    def schema_problems(self) -> tuple[str, ...]: ...
    @property
    def drifted_columns(self) -> tuple[str, ...]: ...
    @property
    def report(self) -> str | None: ...

    def to_dict(self) -> dict[str, Any]: ...


DriftCheck = Callable[[Any, Any], DriftView | None]  # (features frame, predictions or None) -> verdict


class TrackingPort(Protocol):
    """Where each batch becomes a point in time (the MLflow monitoring run of the serving version)."""

    def log_batch(
        self,
        *,
        version: str,
        run_id: str | None,
        seq: int,
        timestamp: datetime,
        metrics: Mapping[str, float],
        summary: Mapping[str, Any],
        promoted: Mapping[str, float],
    ) -> tuple[str, str]:
        """Log the batch; return (run id, a URL or URI people can open)."""
        ...

    def attach(self, run_id: str, path: Path, seq: int) -> None:
        """Add a file (the Evidently report of batch ``seq``) to the monitoring run."""
        ...


class TrailPort(Protocol):
    def append(
        self,
        action: str,
        *,
        subject: Mapping[str, str],
        run_id: str | None = None,
        decision: str | None = None,
        details: Mapping[str, Any] | None = None,
    ) -> int: ...


Notify = Callable[[Sequence[AlertEvent]], list[DeliveryResult]]


# ---------------------------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class MonitorResult:
    """What one monitored batch showed, which alerts fired or cleared, who was told, and where it is recorded."""

    model: str
    alias: str | None
    version: str
    batch: str
    batch_sha256: str
    rows: int
    seq: int
    timestamp: str
    labels: str | None
    drift: dict[str, Any] | None
    drift_share: float | None
    drifted_columns: tuple[str, ...]
    metrics: dict[str, float]
    promoted: dict[str, float]
    prediction: dict[str, float]
    assessments: tuple[Assessment, ...]
    events: tuple[AlertEvent, ...]
    deliveries: tuple[DeliveryResult, ...]
    open_alerts: tuple[str, ...]
    report: str | None
    run_id: str | None
    run_url: str | None
    experiment: str
    audit_seq: int | None
    alert_audit_seqs: tuple[int, ...] = ()
    timings: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    time_range: dict[str, str] | None = None  # the data time the batch covers (with a timestamp column)
    backfill: bool = False  # older than the newest data monitored: recorded at its time, alert state unchanged

    @property
    def fired(self) -> tuple[AlertEvent, ...]:
        return tuple(e for e in self.events if e.kind == FIRED)

    @property
    def failed_deliveries(self) -> tuple[DeliveryResult, ...]:
        return tuple(d for d in self.deliveries if not d.ok and not d.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "version": self.version,
            "batch": self.batch,
            "batch_sha256": self.batch_sha256,
            "rows": self.rows,
            "seq": self.seq,
            "timestamp": self.timestamp,
            "labels": self.labels,
            "drift_share": self.drift_share,
            "drifted_columns": list(self.drifted_columns),
            "drift": self.drift,
            "metrics": self.metrics,
            "promoted": self.promoted,
            "prediction": self.prediction,
            "rules": [a.to_dict() for a in self.assessments],
            "events": [e.to_dict() for e in self.events],
            "deliveries": [d.to_dict() for d in self.deliveries],
            "open_alerts": list(self.open_alerts),
            "report": self.report,
            "run_id": self.run_id,
            "run_url": self.run_url,
            "experiment": self.experiment,
            "audit_seq": self.audit_seq,
            "alert_audit_seqs": list(self.alert_audit_seqs),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
            "warnings": list(self.warnings),
            "time_range": self.time_range,
            "backfill": self.backfill,
        }


# ------------------------------------------------------------------------------------------------------- the batch


def read_batch(path: Path) -> Any:
    """Read a production batch (CSV or Parquet, as the drift gate reads them); a clear InputError otherwise."""
    from mlops_layer.drift.io import read_table

    frame = read_table(path, what="batch")
    if len(frame) == 0:
        raise InputError(f"batch file {path} has no rows", hint="monitor a batch with at least one row")
    return frame


@dataclass(frozen=True)
class BatchInput:
    """Everything about the batch and the serving version the flow needs besides the ports."""

    model: str
    alias: str | None
    version: str
    batch_path: Path
    frame: Any
    labels: str | None
    promoted: Mapping[str, float]
    experiment: str
    timestamp: datetime
    batch_sha256: str = ""
    time_range: TimeRange | None = None  # data time of the rows; ``timestamp`` is then its end


def _split(inp: BatchInput, model: ModelPort) -> tuple[Any, Any | None]:
    """Features (in the model's column order) and labels; InputError naming missing columns."""
    frame = inp.frame
    columns = [str(c) for c in frame.columns]
    y = None
    if inp.labels is not None:
        if inp.labels not in columns:
            raise InputError(
                f"labels column {inp.labels!r} is not in batch {inp.batch_path.name} "
                f"(columns: {', '.join(columns[:20])}{', ...' if len(columns) > 20 else ''})",
                hint="name the column holding the true outcome with --labels, or leave --labels out",
            )
        y = frame[inp.labels]
        frame = frame.drop(columns=[inp.labels])
    names = model.feature_names
    if names is not None:
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise InputError(
                f"batch {inp.batch_path.name} does not fit v{inp.version} of {inp.model!r}: "
                f"{len(missing)} feature column(s) missing: {', '.join(missing[:10])}"
                + (", ..." if len(missing) > 10 else ""),
                hint="the batch's schema changed; fix the producer or retrain on the new schema",
            )
        frame = frame[list(names)]
    return frame, y


Rejected = Callable[[Sequence[str]], list[DeliveryResult]]  # tell people a production batch was refused


def _reject(trail: TrailPort, inp: BatchInput, problems: Sequence[str], notify: Rejected | None) -> int:
    """A production batch that does not fit the model is an incident: audited, and the stakeholders are told."""
    subject = {"model": inp.model, "version": inp.version, **({"alias": inp.alias} if inp.alias else {})}
    seq = trail.append(
        MONITOR_BATCH,
        subject=subject,
        decision="rejected",
        details={"batch": str(inp.batch_path), "batch_sha256": inp.batch_sha256, "problems": list(problems)},
    )
    for d in notify(problems) if notify is not None else []:
        if not d.ok and not d.skipped:
            trail.append(
                NOTIFICATION_FAILED,
                subject=subject,
                decision="queued" if d.queued else "failed",
                details=d.to_dict(),
            )
    return seq


def run_batch(
    inp: BatchInput,
    *,
    model: ModelPort,
    drift: DriftCheck,
    tracking: TrackingPort,
    trail: TrailPort,
    notify: Notify,
    rules: Sequence[AlertRule],
    state_dir: Path,
    report: Callable[[int], str] | None = None,
    report_always: bool = False,
    notify_rejected: Rejected | None = None,
    lock_timeout: float = 60.0,
) -> MonitorResult:
    """Score ``inp`` and run the alert state machine; see the module docstring for the order of effects.

    ``report(seq)`` writes the Evidently report of the batch and returns its path: called for every batch with
    ``report_always``, otherwise only when an alert fires (it is the alert's evidence, and it costs seconds).
    ``notify_rejected(problems)`` tells the stakeholders when the batch is refused (schema changed).
    """
    timings: dict[str, float] = {}
    warnings: list[str] = []
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[name] = now - clock
        clock = now

    subject = {"model": inp.model, "version": inp.version, **({"alias": inp.alias} if inp.alias else {})}
    try:
        features, y = _split(inp, model)
    except InputError as exc:
        if inp.labels is not None and inp.labels not in [str(c) for c in inp.frame.columns]:
            raise  # a wrong flag, not a change in production data: nothing to audit
        _reject(trail, inp, [exc.message], notify_rejected)
        raise
    try:
        predictions = model.predict(features)
    except InputError as exc:
        _reject(trail, inp, [exc.message], notify_rejected)
        raise
    lap("predict")

    verdict = drift(features, predictions.labels)
    lap("drift")
    if verdict is not None and verdict.schema_problems:
        _reject(trail, inp, verdict.schema_problems, notify_rejected)
        raise InputError(
            f"batch {inp.batch_path.name} does not match the reference schema of {inp.model} v{inp.version}: "
            + "; ".join(verdict.schema_problems[:5])
            + (f" (and {len(verdict.schema_problems) - 5} more)" if len(verdict.schema_problems) > 5 else ""),
            hint="the batch's schema changed; fix the producer, or retrain so the new schema becomes the reference",
        )

    wanted = set(inp.promoted) | {r.metric for r in rules if r.metric and r.applies_to(inp.model)}
    wanted |= set(DEFAULT_METRICS.get(predictions.kind, ()))
    unknown = sorted(m for m in wanted if m not in metric_names(wanted) and m in {r.metric for r in rules})
    if unknown:
        warnings.append(f"alert rules watch metric(s) monitoring cannot compute: {', '.join(unknown)}")
    metrics: dict[str, float] = {}
    labelled_rows = 0
    if y is not None:
        import numpy as np

        mask = y.notna().to_numpy()
        labelled_rows = int(mask.sum())
        if labelled_rows < len(y):
            warnings.append(f"{len(y) - labelled_rows} row(s) without a label were left out of the metrics")
        if labelled_rows:
            proba = predictions.proba[mask] if predictions.proba is not None else None
            metrics = evaluate_batch(
                predictions.kind,
                y.to_numpy()[mask],
                np.asarray(predictions.labels)[mask],
                proba,
                classes=predictions.classes,
                wanted=wanted,
            )
    elif any(r.needs_labels and r.applies_to(inp.model) for r in rules):
        warnings.append("no --labels: metric alert rules were not assessed on this batch")
    prediction = prediction_summary(predictions.labels, predictions.proba, classes=predictions.classes)
    lap("metrics")

    drift_dict = verdict.to_dict() if verdict is not None else None
    signals: dict[str, float] = {}
    pred_drift = (drift_dict or {}).get("prediction") or {}
    if pred_drift.get("score") is not None:
        signals[PREDICTION_DRIFT_SIGNAL] = float(pred_drift["score"])

    with model_lock(state_dir, inp.model, timeout=lock_timeout):
        state = load_state(state_dir, inp.model)
        seq = state.last_seq + 1
        backfill = False
        if inp.time_range is not None:
            newest = high_water(state_dir, inp.model)
            backfill = newest is not None and inp.time_range.end < newest
            if backfill:
                warnings.append(
                    f"backfill: this batch's data (up to {inp.time_range.to_dict()['end']}) is older than the newest "
                    f"monitored ({newest.isoformat(timespec='seconds') if newest else ''}); recorded at its data "
                    "time, the alert state is unchanged"
                )
        logged = {
            **metrics,
            **prediction,
            "batch.rows": float(len(inp.frame)),
            "batch.labelled_rows": float(labelled_rows),
        }
        if verdict is not None:
            logged["drift.share"] = float(verdict.share)
            logged["drift.columns_drifted"] = float(len(verdict.drifted_columns))
            logged["drift.detected"] = 1.0 if verdict.drift else 0.0
        logged.update({f"signal.{k}": v for k, v in signals.items()})
        summary = {
            "seq": seq,
            "model": inp.model,
            "version": inp.version,
            "alias": inp.alias,
            "batch": str(inp.batch_path),
            "batch_sha256": inp.batch_sha256,
            "rows": len(inp.frame),
            "labels": inp.labels,
            "timestamp": inp.timestamp.isoformat(timespec="seconds"),
            "time_range": inp.time_range.to_dict() if inp.time_range else None,
            "backfill": backfill,
            "metrics": metrics,
            "promoted": dict(inp.promoted),
            "prediction": prediction,
            "drift": drift_dict,
        }
        run_id, run_url = tracking.log_batch(
            version=inp.version,
            run_id=state.runs.get(inp.version),
            seq=seq,
            timestamp=inp.timestamp,
            metrics=logged,
            summary=summary,
            promoted=inp.promoted,
        )
        state = replace(state, runs={**state.runs, inp.version: run_id})
        lap("log")

        evidence = {"run_id": run_id, "run_url": run_url, "step": str(seq), "batch": str(inp.batch_path)}
        report_path: str | None = None
        if report is not None and report_always:
            report_path = _write_report(report, seq, tracking, run_id, warnings)
            if report_path:
                evidence["report"] = report_path
        point = BatchPoint(
            seq=seq,
            timestamp=inp.timestamp,
            model=inp.model,
            version=inp.version,
            alias=inp.alias,
            drift_share=float(verdict.share) if verdict is not None else None,
            metrics=metrics,
            promoted=inp.promoted,
            signals=signals,
            evidence=evidence,
        )
        applicable = [r for r in rules if r.applies_to(inp.model)]
        assessments = tuple(assess(r, point) for r in applicable)
        audit_seq = trail.append(
            MONITOR_BATCH,
            subject=subject,
            run_id=run_id,
            decision="drift" if verdict is not None and verdict.drift else "ok",
            details={
                "seq": seq,
                "batch": str(inp.batch_path),
                "batch_sha256": inp.batch_sha256,
                "rows": len(inp.frame),
                "labels": inp.labels,
                "drift_share": point.drift_share,
                "drifted_columns": list(verdict.drifted_columns) if verdict is not None else [],
                "metrics": metrics,
                "promoted": dict(inp.promoted),
                "breaches": [a.rule for a in assessments if a.breached],
                "run_url": run_url,
                **({"time_range": inp.time_range.to_dict(), "backfill": backfill} if inp.time_range else {}),
            },
        )
        events: list[AlertEvent] = []
        if backfill:
            state = replace(state, last_seq=seq)
        else:
            state, events = evaluate_alerts(applicable, [point], state)
        if report is not None and report_path is None and any(e.kind == FIRED for e in events):
            report_path = _write_report(report, seq, tracking, run_id, warnings)
            if report_path:
                events = [
                    replace(e, evidence={**e.evidence, "report": report_path}) if e.kind == FIRED else e for e in events
                ]
        alert_seqs = tuple(
            trail.append(
                event_action(e.kind),
                subject={**subject, "version": e.version},
                run_id=run_id,
                decision=e.kind,
                details=e.to_dict(),
            )
            for e in events
        )
        save_state(state_dir, state)
        if inp.time_range is not None and not backfill:
            advance(state_dir, inp.model, inp.time_range.end)
        lap("audit")

    deliveries = notify(events) if events else []
    for d in deliveries:
        if not d.ok and not d.skipped:
            trail.append(
                NOTIFICATION_FAILED,
                subject=subject,
                run_id=run_id,
                decision="queued" if d.queued else "failed",
                details=d.to_dict(),
            )
    lap("notify")
    return MonitorResult(
        model=inp.model,
        alias=inp.alias,
        version=inp.version,
        batch=str(inp.batch_path),
        batch_sha256=inp.batch_sha256,
        rows=len(inp.frame),
        seq=seq,
        timestamp=inp.timestamp.astimezone(timezone.utc).isoformat(timespec="seconds"),
        labels=inp.labels,
        drift=drift_dict,
        drift_share=point.drift_share,
        drifted_columns=tuple(verdict.drifted_columns) if verdict is not None else (),
        metrics=metrics,
        promoted=dict(inp.promoted),
        prediction=prediction,
        assessments=assessments,
        events=tuple(events),
        deliveries=tuple(deliveries),
        open_alerts=tuple(state.open_alerts()),
        report=report_path,
        run_id=run_id,
        run_url=run_url,
        experiment=inp.experiment,
        audit_seq=audit_seq,
        alert_audit_seqs=alert_seqs,
        timings=timings,
        warnings=tuple(warnings),
        time_range=inp.time_range.to_dict() if inp.time_range else None,
        backfill=backfill,
    )


def event_action(kind: str) -> str:
    """The audit action of an alert event: fired, cleared by healthy batches, or closed (superseded, resolved)."""
    if kind == FIRED:
        return ALERT_FIRED
    if kind == SUPERSEDED:
        return ALERT_RESOLVED
    return ALERT_CLEARED


def _write_report(
    report: Callable[[int], str], seq: int, tracking: TrackingPort, run_id: str, warnings: list[str]
) -> str | None:
    """The Evidently report is evidence, not the gate: a failure to write it warns and monitoring goes on."""
    from mlops_layer.errors import MlopsError

    try:
        path = report(seq)
    except MlopsError as exc:
        warnings.append(f"the Evidently report could not be written: {exc}")
        return None
    try:
        tracking.attach(run_id, Path(path), seq)
    except MlopsError as exc:
        warnings.append(f"the Evidently report could not be logged to MLflow: {exc}")
    return path
