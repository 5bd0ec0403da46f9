"""Who gets a notification and through what: recipients from the model card, notifiers built from the config,
and :func:`deliver` / :func:`dispatch`, which send, and queue in the outbox what fails."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TextIO

from mlops_layer.monitoring.alerts import AlertEvent
from mlops_layer.monitoring.notifiers.config import NotifierConfig
from mlops_layer.monitoring.notifiers.outbox import Outbox
from mlops_layer.monitoring.notifiers.payloads import notification_payload
from mlops_layer.monitoring.notifiers.results import DeliveryResult, Notifier
from mlops_layer.monitoring.notifiers.transports import EmailNotifier, FileNotifier, StdoutNotifier, WebhookNotifier


@dataclass(frozen=True)
class Recipient:
    """A stakeholder to alert. ``alerts`` limits which alerts they get (rule names, rule types or severities)."""

    name: str
    email: str | None = None
    webhook: str | None = None
    alerts: tuple[str, ...] = ()

    def wants(self, event: AlertEvent) -> bool:
        return self.wants_any(event.rule, event.rule_type, event.severity)

    def wants_any(self, *keys: str) -> bool:
        """Whether they asked for notices under any of ``keys`` (no filter: everything)."""
        return not self.alerts or bool({*keys, "*"} & set(self.alerts))


def recipients_from(stakeholders: Iterable[Any]) -> list[Recipient]:
    """Recipients from the model card's stakeholders.

    Accepts the card's ``Stakeholder(name, role, channels=(Channel(kind, target), ...), alerts)`` and the simple
    ``Recipient``/``Stakeholder(name, email=None, webhook=None)`` shape; a stakeholder with both an email and a
    webhook gets both.
    """
    out: list[Recipient] = []
    for item in stakeholders:
        name = str(getattr(item, "name", "") or "")
        email = getattr(item, "email", None)
        webhook = getattr(item, "webhook", None)
        for channel in getattr(item, "channels", ()) or ():
            kind, target = getattr(channel, "kind", ""), getattr(channel, "target", "")
            if kind == "email" and not email:
                email = target
            elif kind == "webhook" and not webhook:
                webhook = target
        alerts = tuple(str(a) for a in (getattr(item, "alerts", ()) or ()))
        out.append(Recipient(name=name, email=email or None, webhook=webhook or None, alerts=alerts))
    return out


class NotifierFactory:
    """Builds notifiers from a :class:`NotifierConfig`, reading secrets from the environment at send time."""

    def __init__(
        self,
        config: NotifierConfig,
        state_dir: Path,
        *,
        stream: TextIO | None = None,
        sleep: Callable[[float], None] = time.sleep,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        self.stream = stream
        self.sleep = sleep
        self.environ = environ if environ is not None else os.environ

    def webhook(self, url: str) -> WebhookNotifier:
        cfg = self.config.webhook
        env = cfg.secret_env_for(url)
        secret = self.environ.get(env) or None
        unsigned_error = None
        if secret is None and not cfg.allow_unsigned:
            unsigned_error = (
                f"not sent: the webhook secret variable ${env} is not set (set it, or allow_unsigned: true); "
                "queued in the outbox"
            )
        return WebhookNotifier(url, secret=secret, unsigned_error=unsigned_error, retry=cfg.retry, sleep=self.sleep)

    def email(self, to: str) -> EmailNotifier | None:
        return EmailNotifier(to, self.config.email, sleep=self.sleep) if self.config.email else None

    def local(self) -> list[Notifier]:
        out: list[Notifier] = []
        if self.config.file:
            path = Path(self.config.file)
            out.append(FileNotifier(path if path.is_absolute() else self.state_dir / path))
        if self.config.stdout:
            out.append(StdoutNotifier(self.stream))
        return out

    def build(self, channel: str, target: str) -> Notifier | None:
        if channel == "webhook":
            return self.webhook(target)
        if channel == "email":
            return self.email(target)
        if channel == "file":
            return FileNotifier(Path(target))
        return None


def deliver(
    payload: Mapping[str, Any],
    recipients: Sequence[Recipient],
    factory: NotifierFactory,
    outbox: Outbox,
    *,
    reference: str,
) -> list[DeliveryResult]:
    """Send one payload to the local notifiers and to every channel of ``recipients``; queue what fails.

    ``reference`` (an alert id, or ``<model>:<kind>`` for other notices) is carried on each result and queued entry.
    Never raises for a delivery problem: each one is a :class:`DeliveryResult` (``ok`` False and ``queued`` True
    when it went to the outbox; ``skipped`` True when a channel is not configured, e.g. email without SMTP).
    """
    targets: list[tuple[str, Notifier | None, str, str]] = [("", n, n.channel, n.target) for n in factory.local()]
    for person in recipients:
        if person.webhook:
            targets.append((person.name, factory.webhook(person.webhook), "webhook", person.webhook))
        if person.email:
            targets.append((person.name, factory.email(person.email), "email", person.email))
    results: list[DeliveryResult] = []
    for recipient, notifier, channel, target in targets:
        delivery_id = str(uuid.uuid4())
        if notifier is None:
            results.append(
                DeliveryResult(
                    channel,
                    target,
                    False,
                    delivery_id,
                    0,
                    error="email is not configured (no SMTP server)",
                    recipient=recipient,
                    alert_id=reference,
                    skipped=True,
                )
            )
            continue
        result = replace(notifier.send(payload, delivery_id=delivery_id), recipient=recipient, alert_id=reference)
        if not result.ok:
            outbox.append(result, payload)
            result = replace(result, queued=True)
        results.append(result)
    return results


def dispatch(
    events: Sequence[AlertEvent],
    recipients: Sequence[Recipient],
    factory: NotifierFactory,
    outbox: Outbox,
) -> list[DeliveryResult]:
    """Send every alert event to the local notifiers and to each recipient who wants it (see :func:`deliver`)."""
    results: list[DeliveryResult] = []
    for event in events:
        wanted = [r for r in recipients if r.wants(event)]
        results += deliver(notification_payload(event), wanted, factory, outbox, reference=event.alert_id)
    return results
