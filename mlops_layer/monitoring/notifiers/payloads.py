"""The bodies of notifications: the JSON payload of an alert or of another notice, and the e-mail text of either."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from mlops_layer.monitoring.alerts import AlertEvent


def notification_payload(event: AlertEvent, *, sent_at: datetime | None = None) -> dict[str, Any]:
    """The JSON body of a notification (the envelope mirrors MLflow's webhook payload: entity/action/data)."""
    when = sent_at or datetime.now(timezone.utc)
    return {
        "entity": "mlops_alert",
        "action": event.kind,
        "timestamp": when.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "data": event.to_dict(),
    }


def notice_payload(
    kind: str, subject: str, details: Mapping[str, Any], *, sent_at: datetime | None = None
) -> dict[str, Any]:
    """The body of a notice that is not an alert (e.g. ``approval.requested`` for a challenger waiting)."""
    when = sent_at or datetime.now(timezone.utc)
    return {
        "entity": "mlops_notice",
        "action": kind,
        "timestamp": when.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "subject": subject,
        "data": dict(details),
    }


def render_email_text(payload: Mapping[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body of the email for a notification payload."""
    data = payload.get("data") or {}
    if payload.get("entity") == "mlops_notice":
        lines = [str(payload.get("subject", "")), ""] + [f"{k}: {v}" for k, v in data.items()]
        return f"[mlops] {payload.get('subject', payload.get('action', ''))}", "\n".join(lines) + "\n"
    verb = "ALERT" if data.get("kind") == "fired" else "RESOLVED"
    subject = f"[mlops {verb}] {data.get('model')} v{data.get('version')}: {data.get('rule')} ({data.get('severity')})"
    lines = [
        f"{verb}: {data.get('message', '')}",
        "",
        f"model:     {data.get('model')} version {data.get('version')}",
        f"rule:      {data.get('rule')} ({data.get('rule_type')}, window {data.get('window')})",
        f"observed:  {data.get('observed')}",
        f"threshold: {data.get('threshold')}",
        f"by:        {data.get('by')}",
        f"batch:     #{data.get('batch_seq')} at {data.get('timestamp')}",
        f"alert id:  {data.get('alert_id')}",
    ]
    evidence = data.get("evidence") or {}
    if evidence:
        lines += ["", "evidence:"] + [f"  {k}: {v}" for k, v in sorted(evidence.items())]
    return subject, "\n".join(lines) + "\n"
