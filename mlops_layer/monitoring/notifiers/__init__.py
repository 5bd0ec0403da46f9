"""Notifiers: tell the stakeholders of a model that an alert fired or cleared, and never lose a notification.

One module per concern, re-exported here so ``from mlops_layer.monitoring.notifiers import ...`` keeps working:

* :mod:`.config` — the ``notifications:`` section of mlops.yaml, read through the one YAML reader;
* :mod:`.payloads` — the JSON bodies and e-mail text; :mod:`.signing` — HMAC-SHA256 signatures like MLflow's
  registry webhooks (``X-Mlops-Signature: v1,<base64 hmac(secret, "<delivery id>.<timestamp>.<body>")>`` with
  ``X-Mlops-Timestamp`` and ``X-Mlops-Delivery-Id`` for replay protection);
* :mod:`.retry` — the one retry loop (exponential backoff within a total time bound) webhook and e-mail share;
* :mod:`.transports` — :class:`WebhookNotifier` (stdlib urllib), :class:`EmailNotifier` (smtplib, STARTTLS or
  SMTPS and login), :class:`FileNotifier` (JSONL, the embedded default) and :class:`StdoutNotifier`;
* :mod:`.outbox` — failed deliveries (a JSONL file under the state dir) that :meth:`Outbox.flush` retries later;
* :mod:`.delivery` — recipients from the model card, :class:`NotifierFactory`, :func:`deliver` and :func:`dispatch`.

Secrets come from environment variables named in the config, never from a file in git.
"""

from __future__ import annotations

from mlops_layer.monitoring.notifiers.config import (
    DEFAULT_FILE,
    DEFAULT_SECRET_ENV,
    NotifierConfig,
    SmtpConfig,
    WebhookConfig,
    load_notifier_config,
    notifier_config_from,
    parse_notifier_config,
)
from mlops_layer.monitoring.notifiers.delivery import (
    NotifierFactory,
    Recipient,
    deliver,
    dispatch,
    recipients_from,
)
from mlops_layer.monitoring.notifiers.outbox import FlushResult, Outbox
from mlops_layer.monitoring.notifiers.payloads import notice_payload, notification_payload, render_email_text
from mlops_layer.monitoring.notifiers.results import DeliveryResult, Notifier, redact
from mlops_layer.monitoring.notifiers.retry import Attempt, RetryPolicy, RetryResult, gave_up
from mlops_layer.monitoring.notifiers.signing import (
    DELIVERY_ID_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_VERSION,
    TIMESTAMP_HEADER,
    sign,
    verify_signature,
)
from mlops_layer.monitoring.notifiers.transports import (
    USER_AGENT,
    EmailNotifier,
    FileNotifier,
    StdoutNotifier,
    WebhookNotifier,
)

__all__ = [
    "DEFAULT_FILE",
    "DEFAULT_SECRET_ENV",
    "DELIVERY_ID_HEADER",
    "EVENT_HEADER",
    "SIGNATURE_HEADER",
    "SIGNATURE_VERSION",
    "TIMESTAMP_HEADER",
    "USER_AGENT",
    "Attempt",
    "DeliveryResult",
    "EmailNotifier",
    "FileNotifier",
    "FlushResult",
    "Notifier",
    "NotifierConfig",
    "NotifierFactory",
    "Outbox",
    "Recipient",
    "RetryPolicy",
    "RetryResult",
    "SmtpConfig",
    "StdoutNotifier",
    "WebhookConfig",
    "WebhookNotifier",
    "deliver",
    "dispatch",
    "gave_up",
    "load_notifier_config",
    "notice_payload",
    "notification_payload",
    "notifier_config_from",
    "parse_notifier_config",
    "recipients_from",
    "redact",
    "render_email_text",
    "sign",
    "verify_signature",
]
