"""Monitoring through the facade: score a production batch, alert stakeholders, and the alerts' state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.api.drift import drift_config, model_reference
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from mlops_layer.adapters.mlflow import MlflowRegistry, VersionInfo
    from mlops_layer.drift.result import DriftResult
    from mlops_layer.monitoring.monitor import MonitorResult
    from mlops_layer.monitoring.notifiers import FlushResult


class _MonitorDrift:
    """The drift gate against the serving version's reference profile (the ``drift:`` section of the policy), and
    the Evidently report people open from an alert."""

    def __init__(self, cfg: Settings, registry: MlflowRegistry, info: VersionInfo, warnings: list[str]) -> None:
        self.profile: Any = None
        self.current: Any = None
        self.verdict: Any = None
        try:
            _, self.profile = model_reference(registry, info.name, info.version)
        except NotFoundError as exc:
            warnings.append(f"drift was not checked: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            return
        self.config = drift_config(info.name, settings=cfg)
        pred_col = self.config.prediction_column
        if pred_col and pred_col not in self.profile.columns:
            warnings.append(f"the reference profile has no {pred_col!r} column: prediction drift was not checked")
            self.config = dataclasses.replace(self.config, prediction_column=None)

    def check(self, frame: Any, predictions: Any) -> DriftResult | None:
        from mlops_layer.drift.gate import check

        if self.profile is None:
            return None
        pred_col = self.config.prediction_column
        columns = [c for c in frame.columns if str(c) in self.profile.columns and str(c) != pred_col]
        current = frame[columns]
        if pred_col:
            current = current.assign(**{pred_col: predictions})
        self.current = current
        verdict: DriftResult = check(self.profile, current, self.config)
        self.verdict = verdict
        return verdict

    def report(self, path: Path) -> str:
        from mlops_layer.adapters.evidently_report import write_report

        written = write_report(path, self.profile, self.current, self.verdict, drift_share=self.config.drift_share)
        return str(written.path)


def monitor(
    name_at_alias: str,
    batch: Path | str,
    *,
    labels: str | None = None,
    report: Path | str | None = None,
    at: Any = None,
    rules: Any = None,
    notifications: Any = None,
    settings: Settings | None = None,
) -> MonitorResult:
    """Monitor one production batch of the version serving ``NAME@ALIAS`` (or ``NAME/VERSION``).

    Drift against the version's reference profile, the prediction distribution, and with ``labels`` (the column
    holding true outcomes) the metrics the version was promoted on; the batch is logged as a point in time in the
    MLflow experiment ``monitoring/<model>`` and audited (``monitor.batch``); the policy's alert rules run and the
    model card's stakeholders are notified when an alert fires or clears (``alert.fired``/``alert.cleared``; a
    failed delivery is ``notification.failed`` and waits in the outbox). ``at`` (a datetime) backdates the batch;
    ``rules`` (AlertRule list) and ``notifications`` (NotifierConfig) override the project's files.
    Returns a :class:`mlops_layer.monitoring.monitor.MonitorResult`.
    """
    import time
    from datetime import datetime, timezone

    from mlops_layer.adapters.mlflow import MonitoringTracker
    from mlops_layer.adapters.sklearn import ServingModel
    from mlops_layer.api.training import load_registered
    from mlops_layer.audit.acting import ActingTrail
    from mlops_layer.drift.io import file_digest
    from mlops_layer.lineage import parse_model_ref
    from mlops_layer.monitoring import dispatch as notices
    from mlops_layer.monitoring.alerts import load_alert_rules
    from mlops_layer.monitoring.monitor import BatchInput, read_batch, run_batch
    from mlops_layer.monitoring.notifiers import deliver, dispatch, notice_payload
    from mlops_layer.monitoring.scoring import promoted_metrics
    from mlops_layer.monitoring.state import monitoring_dir

    cfg = _wiring.resolve(settings)
    name, ref = parse_model_ref(name_at_alias)
    if ref is None:
        raise InputError(f"{name_at_alias!r} names no serving version", hint="use NAME@ALIAS, e.g. churn@champion")
    alias = ref if "@" in name_at_alias else None
    when = at or datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    alert_rules = list(rules) if rules is not None else load_alert_rules(cfg.policy_file)
    factory = notices.notifier_factory(cfg, notifications)
    path = Path(batch)
    started = time.perf_counter()
    frame = read_batch(path)
    digest = file_digest(path).removeprefix("sha256:")
    read_s = time.perf_counter() - started
    warnings: list[str] = []

    started = time.perf_counter()
    registry = _wiring.registry(cfg)
    info = registry.resolve(name, ref)
    promoted = promoted_metrics(registry.get_run(info.run_id).metrics) if info.run_id else {}
    model = ServingModel(load_registered(cfg, info.name, info.version))
    drift = _MonitorDrift(cfg, registry, info, warnings)
    load_s = time.perf_counter() - started
    recipients = notices.stakeholders(cfg, info.name, warnings)
    outbox = notices.outbox(cfg)
    tracker = MonitoringTracker(cfg.tracking_uri, cfg.registry_uri, cfg.artifact_location, info.name)
    report_dir = monitoring_dir(cfg.state_dir) / "reports" / info.name
    inp = BatchInput(
        model=info.name,
        alias=alias,
        version=info.version,
        batch_path=path.resolve(),
        frame=frame,
        labels=labels,
        promoted=promoted,
        experiment=tracker.experiment,
        timestamp=when,
        batch_sha256=digest,
    )
    with _wiring.audit_store(cfg) as store:
        result = run_batch(
            inp,
            model=model,
            drift=drift.check,
            report=(
                lambda seq: drift.report(Path(report) if report is not None else report_dir / f"batch-{seq:06d}.html")
            )
            if drift.profile is not None
            else None,
            report_always=report is not None,
            tracking=tracker,
            trail=ActingTrail(store, cfg.actor),
            notify=lambda events: dispatch(events, recipients, factory, outbox),
            notify_rejected=lambda problems: deliver(
                notice_payload(
                    "batch.rejected",
                    f"{info.name} v{info.version}: production batch {path.name} refused (schema changed)",
                    {"model": info.name, "version": info.version, "batch": str(path), "problems": list(problems)},
                ),
                [r for r in recipients if r.wants_any("batch.rejected", "schema")],
                factory,
                outbox,
                reference=f"{info.name}:batch.rejected",
            ),
            rules=alert_rules,
            state_dir=cfg.state_dir,
        )
    result = dataclasses.replace(
        result,
        warnings=(*warnings, *result.warnings),
        timings={"read": read_s, "load_model": load_s, **result.timings},
    )
    return result


@dataclass(frozen=True)
class AlertStatus:
    """Where the alerts of one model stand: open alerts, each rule's last assessment, queued notifications."""

    model: str
    last_batch: int
    rules: tuple[dict[str, Any], ...]
    open_alerts: tuple[str, ...]
    queued_notifications: int
    runs: dict[str, str]


def alert_status(name: str, *, settings: Settings | None = None) -> AlertStatus:
    """The persisted alert state of ``name`` (no MLflow needed)."""
    from mlops_layer.monitoring.alerts import load_alert_rules
    from mlops_layer.monitoring.dispatch import outbox
    from mlops_layer.monitoring.state import load_state

    cfg = _wiring.resolve(settings)
    state = load_state(cfg.state_dir, name)
    configured = {r.name: r for r in load_alert_rules(cfg.policy_file) if r.applies_to(name)}
    rows = []
    for rule_name in sorted(set(configured) | set(state.rules)):
        st = state.rules.get(rule_name)
        rows.append(
            {
                "rule": rule_name,
                "configured": rule_name in configured,
                "status": st.status if st else "closed",
                "fired_seq": st.fired_seq if st else None,
                "fired_at": st.fired_at if st else None,
                "alert_id": st.alert_id if st else None,
                "suppressed": st.suppressed if st else 0,
                "last": st.last if st else None,
            }
        )
    queued = [e for e in outbox(cfg).entries() if str(e.get("alert_id", "")).startswith(f"{name}:")]
    return AlertStatus(
        model=name,
        last_batch=state.last_seq,
        rules=tuple(rows),
        open_alerts=tuple(state.open_alerts()),
        queued_notifications=len(queued),
        runs=dict(state.runs),
    )


def flush_notifications(*, settings: Settings | None = None) -> FlushResult:
    """Retry every queued (failed) notification; returns a FlushResult (delivered / still failed).

    Deliveries that fail again stay queued; nothing is audited twice (the first failure was).
    """
    from mlops_layer.monitoring import dispatch as notices

    cfg = _wiring.resolve(settings)
    return notices.outbox(cfg).flush(notices.notifier_factory(cfg).build)
