"""Notifying a model's stakeholders from a project's files: who (the model card), how (``notifications:`` in
mlops.yaml), and what happens to a failed delivery (the outbox under the state dir, and a ``notification.failed``
audit entry). Used by monitoring for alerts and by retraining for "a challenger waits for your approval".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mlops_layer.config import CONFIG_FILE, Settings
from mlops_layer.errors import ConfigError, NotFoundError
from mlops_layer.monitoring.notifiers import (
    DeliveryResult,
    NotifierConfig,
    NotifierFactory,
    Outbox,
    Recipient,
    deliver,
    load_notifier_config,
    notice_payload,
    recipients_from,
)
from mlops_layer.monitoring.state import monitoring_dir


def outbox(cfg: Settings) -> Outbox:
    return Outbox(monitoring_dir(cfg.state_dir) / "outbox.jsonl")


def notifier_factory(cfg: Settings, config: NotifierConfig | None = None) -> NotifierFactory:
    """Notifiers as ``mlops.yaml`` configures them (``config`` overrides the file)."""
    return NotifierFactory(config or load_notifier_config(cfg.root / CONFIG_FILE), cfg.state_dir)


def stakeholders(cfg: Settings, model: str, warnings: list[str] | None = None) -> list[Recipient]:
    """The stakeholders on the model card of ``model``; none (with a warning) when the card is absent or invalid.

    Notifying is a side effect: a broken card must not stop monitoring, but the warning says who was not told.
    """
    from mlops_layer.governance.cards import load_card

    notes = warnings if warnings is not None else []
    try:
        return recipients_from(load_card(cfg.cards_dir, model).stakeholders)
    except NotFoundError:
        notes.append(f"no model card for {model!r}: notices go to the local notification file only")
    except ConfigError as exc:
        notes.append(f"the model card of {model!r} is invalid, its stakeholders were not notified: {exc.message}")
    return []


def audit_failures(cfg: Settings, model: str, results: Sequence[DeliveryResult], *, run_id: str | None = None) -> None:
    """Append ``notification.failed`` for each delivery that failed (it waits in the outbox)."""
    from mlops_layer.audit.actions import NOTIFICATION_FAILED
    from mlops_layer.audit.store import AuditStore

    failed = [r for r in results if not r.ok and not r.skipped]
    if not failed:
        return
    with AuditStore.open(cfg.audit_url) as store:
        store.checkpoint_key = cfg.checkpoint_key if cfg.checkpoint_key and cfg.checkpoint_key.is_file() else None
        for r in failed:
            store.append(
                NOTIFICATION_FAILED,
                actor=cfg.actor,
                subject={"model": model},
                run_id=run_id,
                decision="queued" if r.queued else "failed",
                details=r.to_dict(),
            )


def notify_stakeholders(
    cfg: Settings,
    name: str,
    *,
    kind: str,
    subject: str,
    details: Mapping[str, Any],
    also: Sequence[str] = (),
    config: NotifierConfig | None = None,
) -> list[str]:
    """Send a notice (not an alert) to the card's stakeholders who want ``kind`` and to ``also`` (emails or URLs,
    e.g. the approvers of a target); failed deliveries are queued and audited. Returns who was told, e.g.
    ``["Owner (email)", "approver@example.com (email)"]``.
    """
    people = [p for p in stakeholders(cfg, name) if p.wants_any(kind)]
    for target in also:
        if target.startswith(("http://", "https://")):
            people.append(Recipient(target, webhook=target))
        elif "@" in target:
            people.append(Recipient(target, email=target))
    payload = notice_payload(kind, subject, {"model": name, **details})
    results = deliver(payload, people, notifier_factory(cfg, config), outbox(cfg), reference=f"{name}:{kind}")
    audit_failures(cfg, name, results)
    return [f"{r.recipient} ({r.channel})" for r in results if r.ok and r.recipient]
