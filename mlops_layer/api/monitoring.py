"""Monitoring through the facade: score a production batch, alert stakeholders, and the alerts' state."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_layer.api import _wiring
from mlops_layer.api.drift import model_reference
from mlops_layer.audit.acting import ActingTrail
from mlops_layer.config import Settings
from mlops_layer.errors import InputError, NotFoundError

if TYPE_CHECKING:
    from mlops_layer.adapters.mlflow import MlflowRegistry, VersionInfo
    from mlops_layer.drift.config import DriftConfig
    from mlops_layer.drift.result import DriftResult
    from mlops_layer.monitoring.monitor import MonitorResult
    from mlops_layer.monitoring.notifiers import FlushResult


class _MonitorDrift:
    """The drift gate against the serving version's reference profile (the ``drift:`` section of the policy), and
    the Evidently report people open from an alert."""

    def __init__(self, config: DriftConfig, registry: MlflowRegistry, info: VersionInfo, warnings: list[str]) -> None:
        self.profile: Any = None
        self.current: Any = None
        self.verdict: Any = None
        try:
            _, self.profile = model_reference(registry, info.name, info.version)
        except NotFoundError as exc:
            warnings.append(f"drift was not checked: {exc.message}" + (f" ({exc.hint})" if exc.hint else ""))
            return
        self.config = config
        # the profile says which of its columns holds the training predictions; the policy may name another
        pred_col = self.config.prediction_column or self.profile.prediction_column
        if pred_col and pred_col not in self.profile.columns:
            warnings.append(f"the reference profile has no {pred_col!r} column: prediction drift was not checked")
            pred_col = None
        self.config = dataclasses.replace(self.config, prediction_column=pred_col)

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
    """Monitor one production batch of the version serving ``NAME@ALIAS`` (or ``NAME/VERSION``), of any flavor.

    Drift against the version's reference profile, the prediction distribution, and with ``labels`` (the column
    holding true outcomes; default: the card's ``columns.target`` when the batch has it) the metrics the version was
    promoted on (its independent evaluation when it has one) plus the task's defaults; the batch is logged as a point
    in time in the MLflow experiment ``monitoring/<model>`` and audited (``monitor.batch``); the policy's alert rules
    run and the model card's stakeholders are notified when an alert fires or clears (``alert.fired``/
    ``alert.cleared``; a failed delivery is ``notification.failed`` and waits in the outbox). With a
    ``columns.timestamp`` on the card the batch is placed at its data time (its newest row), and a batch older than
    the newest monitored is a backfill; otherwise at ``at`` (a datetime) or now. ``rules`` (AlertRule list) and
    ``notifications`` (NotifierConfig) override the project's files.
    Returns a :class:`mlops_layer.monitoring.monitor.MonitorResult`.
    """
    return _monitor(name_at_alias, batch, labels, report, at, rules, notifications, settings, every=None)[0]


def monitor_every(
    name_at_alias: str,
    batch: Path | str,
    every: str,
    *,
    labels: str | None = None,
    rules: Any = None,
    notifications: Any = None,
    settings: Settings | None = None,
) -> list[MonitorResult]:
    """Monitor a file spanning several periods as one batch per period (``every``: ``1d``, ``6h``, ``30min``,
    ``1w``), oldest first, split on the card's ``columns.timestamp``. Each part is recorded with the file's content
    hash and its own time range. Returns one ``MonitorResult`` per non-empty period."""
    return _monitor(name_at_alias, batch, labels, None, None, rules, notifications, settings, every=every)


def _evaluated_metrics(cfg: Settings, name: str, version: str) -> dict[str, float]:
    """The metrics of the latest independent evaluation of ``name`` v``version`` in the audit trail ({}: none)."""
    from mlops_layer.audit import actions

    latest: dict[str, float] = {}
    if (server := _wiring.governing_server(cfg)) is not None:  # team mode: the trail is the server's
        found = server.audit_entries(model=name, action=actions.EVALUATION_RECORDED, since=None, limit=None)
    else:
        with _wiring.audit_store(cfg) as trail:
            found = list(trail.entries(model=name, action=actions.EVALUATION_RECORDED))
    for entry in found:
        if str(entry.subject.get("version")) == str(version):
            latest = {k: float(v) for k, v in dict((entry.details or {}).get("metrics") or {}).items()}
    return latest


def _monitor(
    name_at_alias: str,
    batch: Path | str,
    labels: str | None,
    report: Path | str | None,
    at: Any,
    rules: Any,
    notifications: Any,
    settings: Settings | None,
    *,
    every: str | None,
) -> list[MonitorResult]:
    import time
    from datetime import datetime, timezone

    from mlops_layer.adapters.mlflow import MonitoringTracker
    from mlops_layer.api.drift import model_card_or_none
    from mlops_layer.api.loading import load_registered
    from mlops_layer.drift.config import drift_config_from_document
    from mlops_layer.drift.io import file_digest
    from mlops_layer.governance.cards import ColumnRoles
    from mlops_layer.lineage import parse_model_ref
    from mlops_layer.monitoring import datatime
    from mlops_layer.monitoring import dispatch as notices
    from mlops_layer.monitoring.alerts import alert_rules_from_document
    from mlops_layer.monitoring.monitor import BatchInput, read_batch, run_batch
    from mlops_layer.monitoring.notifiers import deliver, dispatch, notice_payload
    from mlops_layer.monitoring.scoring import promoted_metrics
    from mlops_layer.monitoring.serving import ServingModel
    from mlops_layer.monitoring.state import monitoring_dir
    from mlops_layer.policyfile import load_policy_document

    cfg = _wiring.resolve(settings)
    name, ref = parse_model_ref(name_at_alias)
    if ref is None:
        raise InputError(f"{name_at_alias!r} names no serving version", hint="use NAME@ALIAS, e.g. churn@champion")
    alias = ref if "@" in name_at_alias else None
    _wiring.may_post_evidence(cfg)  # team mode: refused before any scoring or MLflow run, as the post would be
    policy = load_policy_document(cfg.policy_file, missing_ok=True)  # parsed once for its alerts: and drift:
    alert_rules = list(rules) if rules is not None else alert_rules_from_document(policy)
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
    card = model_card_or_none(cfg, info.name, warnings)
    roles = card.columns if card is not None else ColumnRoles()
    columns = [str(c) for c in frame.columns]
    if labels is None and roles.target and roles.target in columns:
        labels = roles.target
    # the baseline: what the layer measured itself on the holdout when it has, else what the run logged
    promoted = _evaluated_metrics(cfg, info.name, info.version)
    if not promoted and info.run_id:
        promoted = promoted_metrics(registry.get_run(info.run_id).metrics)
    loaded = load_registered(cfg, info.name, info.version)
    features = loaded.feature_names
    if features is None:  # the model does not say: every column the card does not give another role
        features = tuple(c for c in roles.features(columns) if c != labels)
    model = ServingModel(loaded.model, feature_names=features, task=roles.task, non_features=roles.non_features)
    drift = _MonitorDrift(drift_config_from_document(policy, info.name), registry, info, warnings)
    load_s = time.perf_counter() - started
    recipients = notices.stakeholders(cfg, info.name, warnings)
    outbox = notices.outbox(cfg)
    # team mode: the governing server judges the alias when it records the batch
    team = _wiring.governing_server(cfg) is not None
    ungoverned = _alias_disagreement(cfg, info.name, alias, info.version) if alias and not team else None
    if ungoverned is not None:
        warnings.append(ungoverned)
        _alert_ungoverned(cfg, info.name, alias or "", info.version, path, ungoverned)
        deliver(
            notice_payload(
                "alias.ungoverned",
                ungoverned,
                {"model": info.name, "alias": alias, "version": info.version, "batch": str(path)},
            ),
            [r for r in recipients if r.wants_any("alias.ungoverned", "alias_outside_governance")],
            factory,
            outbox,
            reference=f"{info.name}@{alias}:alias.ungoverned",
        )
    tracker = MonitoringTracker(cfg.tracking_uri, cfg.registry_uri, cfg.artifact_location, info.name)
    report_dir = monitoring_dir(cfg.state_dir) / "reports" / info.name

    parts: list[tuple[Any, Any]]
    if every is not None:
        if not roles.timestamp:
            raise InputError(
                f"--every needs a timestamp column, and the card of {info.name!r} names none",
                hint="add columns: {timestamp: COLUMN} to the model card",
            )
        parts = list(datatime.split(frame, roles.timestamp, every, source=path.name))
    elif roles.timestamp and roles.timestamp in columns:
        parts = [(datatime.time_range(frame, roles.timestamp, source=path.name), frame)]
    else:
        parts = [(None, frame)]
    results: list[MonitorResult] = []
    with _wiring.evidence_trail(cfg) as posted:  # team mode: each entry is posted to the governing server
        for span, part in parts:
            when = at or (span.end if span is not None else datetime.now(timezone.utc))
            if when.tzinfo is None:
                when = when.replace(tzinfo=timezone.utc)
            inp = BatchInput(
                model=info.name,
                alias=alias,
                version=info.version,
                batch_path=path.resolve(),
                frame=part,
                labels=labels,
                promoted=promoted,
                experiment=tracker.experiment,
                timestamp=when,
                batch_sha256=digest,
                time_range=span,
            )
            result = run_batch(
                inp,
                model=model,
                drift=drift.check,
                report=(
                    lambda seq: drift.report(
                        Path(report) if report is not None else report_dir / f"batch-{seq:06d}.html"
                    )
                )
                if drift.profile is not None
                else None,
                report_always=report is not None,
                tracking=tracker,
                trail=_NotEvidenceTrail(posted.store, cfg.actor, ungoverned) if ungoverned else posted,
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
            results.append(
                dataclasses.replace(
                    result,
                    warnings=(*warnings, *result.warnings),
                    timings={"read": read_s, "load_model": load_s, **result.timings},
                )
            )
    return results


class _NotEvidenceTrail(ActingTrail):
    """The trail for a batch scored on an alias whose holder disagrees with the trail: recorded, evidence for
    nothing."""

    def __init__(self, store: Any, actor: str, why: str) -> None:
        super().__init__(store, actor)
        self.why = why

    def append(self, action: str, **fields: Any) -> int:
        from mlops_layer.audit import actions

        if action == actions.MONITOR_BATCH:
            fields["details"] = {**dict(fields.get("details") or {}), "evidence": False, "not_evidence": self.why}
        return super().append(action, **fields)


def _alias_disagreement(cfg: Settings, name: str, alias: str, holder: str) -> str | None:
    """Why ``name@alias`` -> ``holder`` is not what governance put there (None: it is)."""
    with _wiring.governance_trail(cfg) as view:
        record = view.alias_record(name, alias)
    if not record.tracked or record.version == holder:
        return None
    signed = bool((record.incident_details or {}).get("signature"))
    if record.incident_seq is not None and record.incident_actual == holder and signed:
        return None  # acknowledged by a signed incident (promote re-checks the signature)
    return (
        f"{name}@{alias} points to v{holder} but the audit trail says v{record.version}: the alias was moved "
        "outside governance; this batch is scored but counts as evidence for nothing (run `mlops audit reconcile`)"
    )


def _alert_ungoverned(cfg: Settings, name: str, alias: str, version: str, batch: Path, why: str) -> None:
    from mlops_layer.audit import actions

    with _wiring.acting_trail(cfg) as trail:
        trail.append(
            actions.ALERT_FIRED,
            subject={"model": name, "version": version, "alias": alias},
            decision="fired",
            reasons=[why],
            details={"rule": "alias_outside_governance", "batch": str(batch)},
        )


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
                "version": st.fired_version if st and st.status == "open" else None,
                "alias": st.fired_alias if st and st.status == "open" else None,
                "acked_by": st.acked_by if st else None,
                "acked_at": st.acked_at if st else None,
                "ack_comment": st.ack_comment if st else "",
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
