"""What people and alias moves do to open alerts: acknowledge, resolve, and close those of a replaced version.

Each change runs under the model's monitoring lock: the state is read, changed, the change audited, then saved, so
an audited acknowledgement or closure is never lost to a concurrent ``mlops monitor``. The trail is a small port
(``append``) so tests can pass a fake; :mod:`mlops_layer.api` wires the real audit store.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from mlops_layer.audit.actions import ALERT_ACKNOWLEDGED, ALERT_RESOLVED
from mlops_layer.errors import InputError
from mlops_layer.monitoring.alerts import (
    ACKNOWLEDGED,
    AlertEvent,
    AlertRule,
    acknowledge,
    resolve,
    supersede,
)
from mlops_layer.monitoring.state import load_state, model_lock, save_state


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


@dataclass(frozen=True)
class AlertChange:
    """One alert acknowledged, resolved or superseded, and the audit entry that records it."""

    event: AlertEvent
    audit_seq: int

    def to_dict(self) -> dict[str, Any]:
        return {**self.event.to_dict(), "audit_seq": self.audit_seq}


def _subject(event: AlertEvent, alias: str | None) -> dict[str, str]:
    subject = {"model": event.model, "version": event.version}  # the rule is in the details (event.rule)
    if alias:
        subject["alias"] = alias
    return subject


def change_alert(
    state_dir: Path,
    trail: TrailPort,
    model: str,
    alert: str,
    *,
    action: str,
    actor: str,
    comment: str,
    rules: Sequence[AlertRule] = (),
    at: datetime | None = None,
) -> AlertChange:
    """``action`` is ``ack`` (acknowledge: stays open) or ``resolve`` (close now). Audited before it is saved."""
    if action not in ("ack", "resolve"):
        raise InputError(f"unknown alert action {action!r}", hint="ack or resolve")
    if action == "resolve" and not comment.strip():
        raise InputError("resolving an alert needs a --comment saying why", hint="e.g. --comment 'upstream fixed'")
    moment = at or datetime.now(timezone.utc)
    with model_lock(state_dir, model):
        state = load_state(state_dir, model)
        change = acknowledge if action == "ack" else resolve
        new_state, event = change(state, alert, actor=actor, comment=comment, at=moment, rules=rules)
        alias = state.rules[event.rule].fired_alias
        seq = trail.append(
            ALERT_ACKNOWLEDGED if event.kind == ACKNOWLEDGED else ALERT_RESOLVED,
            subject=_subject(event, alias),
            decision=event.kind,
            details={**event.to_dict(), "comment": comment},
        )
        save_state(state_dir, new_state)
    return AlertChange(event, seq)


def close_superseded(
    state_dir: Path,
    trail: TrailPort,
    model: str,
    alias: str,
    version: str,
    *,
    rules: Sequence[AlertRule] = (),
    at: datetime | None = None,
) -> tuple[AlertChange, ...]:
    """The layer moved ``alias`` to ``version``: open alerts raised on it for another version close, audited."""
    if not (state_dir / "monitoring").is_dir():
        return ()  # never monitored: nothing to close, and no lock file to create
    moment = at or datetime.now(timezone.utc)
    with model_lock(state_dir, model):
        state = load_state(state_dir, model)
        new_state, events = supersede(state, alias, version, at=moment, rules=rules)
        if not events:
            return ()
        changes = tuple(
            AlertChange(
                e,
                trail.append(
                    ALERT_RESOLVED,
                    subject=_subject(e, alias),
                    decision=e.kind,
                    details={**e.to_dict(), "new_version": version},
                ),
            )
            for e in events
        )
        save_state(state_dir, new_state)
    return changes
