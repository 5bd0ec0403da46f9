"""Notifiers: tell the stakeholders of a model that an alert fired or cleared, and never lose a notification.

* :class:`WebhookNotifier` — JSON POST (stdlib urllib), HMAC-SHA256 signed like MLflow's registry webhooks
  (``X-Mlops-Signature: v1,<base64 hmac(secret, "<delivery id>.<timestamp>.<body>")>`` with ``X-Mlops-Timestamp``
  and ``X-Mlops-Delivery-Id`` for replay protection); retries with exponential backoff within a total time bound.
* :class:`EmailNotifier` — SMTP (smtplib), optional STARTTLS or SMTPS and login.
* :class:`FileNotifier` (JSONL) and :class:`StdoutNotifier` — the embedded default.

A failed delivery is returned as a :class:`DeliveryResult` with its error and appended to the :class:`Outbox`
(a JSONL file under the state dir); :meth:`Outbox.flush` retries it later. Secrets come from environment variables
named in the config, never from a file in git.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import smtplib
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn, Protocol, TextIO
from urllib.parse import urlsplit

from mlops_layer.errors import ConfigError, InputError
from mlops_layer.monitoring.alerts import AlertEvent

SIGNATURE_HEADER = "X-Mlops-Signature"
TIMESTAMP_HEADER = "X-Mlops-Timestamp"
DELIVERY_ID_HEADER = "X-Mlops-Delivery-Id"
EVENT_HEADER = "X-Mlops-Event"
SIGNATURE_VERSION = "v1"
DEFAULT_SECRET_ENV = "MLOPS_WEBHOOK_SECRET"
DEFAULT_FILE = "monitoring/notifications.jsonl"  # relative to the state dir
USER_AGENT = "mlops-layer-notifier/1"


# --------------------------------------------------------------------------------------------------- recipients


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


# ------------------------------------------------------------------------------------------------------ payloads


def notification_payload(event: AlertEvent, *, sent_at: datetime | None = None) -> dict[str, Any]:
    """The JSON body of a notification (the envelope mirrors MLflow's webhook payload: entity/action/data)."""
    when = sent_at or datetime.now(timezone.utc)
    return {
        "entity": "mlops_alert",
        "action": event.kind,
        "timestamp": when.astimezone(timezone.utc).isoformat(timespec="seconds"),
        "data": event.to_dict(),
    }


def sign(secret: str, delivery_id: str, timestamp: str, body: str) -> str:
    """``v1,<base64 HMAC-SHA256 of "<delivery_id>.<timestamp>.<body>">`` — MLflow's webhook signature scheme."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    *,
    tolerance_seconds: float = 300.0,
    now: float | None = None,
) -> bool:
    """What a receiver does: check the signature and that the timestamp is fresh (replay protection).

    Receivers should also remember recent ``X-Mlops-Delivery-Id`` values and drop repeats.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    signature = lower.get(SIGNATURE_HEADER.lower(), "")
    timestamp = lower.get(TIMESTAMP_HEADER.lower(), "")
    delivery_id = lower.get(DELIVERY_ID_HEADER.lower(), "")
    if not (signature and timestamp and delivery_id):
        return False
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - sent) > tolerance_seconds:
        return False
    text = body.decode("utf-8") if isinstance(body, bytes) else body
    return hmac.compare_digest(sign(secret, delivery_id, timestamp, text), signature)


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


# ------------------------------------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DeliveryResult:
    """How one delivery went. ``ok`` False with ``error``: it failed after ``attempts`` tries (and was queued)."""

    channel: str
    target: str
    ok: bool
    delivery_id: str
    attempts: int = 1
    status_code: int | None = None
    error: str | None = None
    elapsed_seconds: float = 0.0
    recipient: str = ""
    alert_id: str = ""
    queued: bool = False
    skipped: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "target": redact(self.target),
            "recipient": self.recipient,
            "alert_id": self.alert_id,
            "ok": self.ok,
            "skipped": self.skipped,
            "queued": self.queued,
            "delivery_id": self.delivery_id,
            "attempts": self.attempts,
            "status_code": self.status_code,
            "error": self.error,
            "elapsed_seconds": round(self.elapsed_seconds, 3),
        }


def redact(target: str) -> str:
    """A webhook URL without path and query (they often carry tokens); other targets unchanged."""
    if target.startswith(("http://", "https://")):
        parts = urlsplit(target)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}/…" if parts.path not in ("", "/") or parts.query else target
    return target


class Notifier(Protocol):
    """Something that delivers a notification payload somewhere."""

    channel: str
    target: str

    def send(self, payload: Mapping[str, Any], *, delivery_id: str) -> DeliveryResult: ...


# ------------------------------------------------------------------------------------------------------- config


@dataclass(frozen=True)
class RetryPolicy:
    """Up to ``retries`` more tries after the first, waiting ``backoff * 2**n`` (capped), all within ``total``."""

    retries: int = 3
    backoff_seconds: float = 0.5
    backoff_max_seconds: float = 8.0
    timeout_seconds: float = 5.0
    max_total_seconds: float = 30.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_seconds * (2**attempt), self.backoff_max_seconds))


@dataclass(frozen=True)
class WebhookConfig:
    """Webhook delivery: the secret comes from the environment variable ``secret_env`` (per-URL-prefix overrides
    in ``secret_envs``). Without the secret a delivery fails (and is queued) unless ``allow_unsigned``."""

    secret_env: str = DEFAULT_SECRET_ENV
    secret_envs: Mapping[str, str] = field(default_factory=dict)
    allow_unsigned: bool = False
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def secret_env_for(self, url: str) -> str:
        matches = [prefix for prefix in self.secret_envs if url.startswith(prefix)]
        return self.secret_envs[max(matches, key=len)] if matches else self.secret_env


@dataclass(frozen=True)
class SmtpConfig:
    """The SMTP server emails go through. ``password_env`` names the environment variable holding the password."""

    host: str
    sender: str
    port: int = 25
    starttls: bool = False
    ssl: bool = False
    username: str | None = None
    password_env: str | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(retries=1))


@dataclass(frozen=True)
class NotifierConfig:
    """How notifications go out. ``file`` is relative to the state dir (None: no file); ``stdout`` prints them."""

    webhook: WebhookConfig = field(default_factory=WebhookConfig)
    email: SmtpConfig | None = None
    file: str | None = DEFAULT_FILE
    stdout: bool = False


class _Cfg:
    def __init__(self, value: Any, source: str, path: str) -> None:
        self.value, self.source, self.path = value, source, path

    def fail(self, problem: str, *, hint: str | None = None) -> NoReturn:
        raise ConfigError(f"{self.source}: field '{self.path}': {problem}", hint=hint)

    def mapping(self, allowed: Sequence[str]) -> dict[str, _Cfg]:
        if not isinstance(self.value, dict):
            self.fail(f"expected a mapping, got {type(self.value).__name__}")
        unknown = [str(k) for k in self.value if k not in allowed]
        if unknown:
            _Cfg(None, self.source, f"{self.path}.{unknown[0]}").fail(
                "unknown field", hint=f"known fields here: {', '.join(allowed)}"
            )
        return {str(k): _Cfg(v, self.source, f"{self.path}.{k}") for k, v in self.value.items() if v is not None}

    def string(self) -> str:
        if not isinstance(self.value, str) or not self.value.strip():
            self.fail(f"expected a non-empty string, got {self.value!r}")
        return self.value.strip()

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            self.fail(f"expected true or false, got {self.value!r}")
        return self.value

    def number(self, minimum: float = 0.0) -> float:
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or self.value < minimum:
            self.fail(f"expected a number >= {minimum:g}, got {self.value!r}")
        return float(self.value)

    def integer(self, minimum: int = 0) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int) or self.value < minimum:
            self.fail(f"expected an integer >= {minimum}, got {self.value!r}")
        return int(self.value)

    def env_name(self) -> str:
        name = self.string()
        if not name.replace("_", "").isalnum() or name[0].isdigit():
            self.fail(
                f"{name!r} is not an environment variable name",
                hint="name the variable holding the secret (e.g. MLOPS_WEBHOOK_SECRET), never the secret itself",
            )
        return name


_RETRY_KEYS = ("retries", "backoff_seconds", "backoff_max_seconds", "timeout_seconds", "max_total_seconds")


def _retry(fields: Mapping[str, _Cfg], default: RetryPolicy) -> RetryPolicy:
    values: dict[str, Any] = {}
    for key in _RETRY_KEYS:
        if key in fields:
            values[key] = fields[key].integer() if key == "retries" else fields[key].number()
    return replace(default, **values)


def parse_notifier_config(data: Any, *, source: str, field: str = "notifications") -> NotifierConfig:
    """Parse the ``notifications:`` settings (see the module docstring of the report for the format).

    ``None`` gives the embedded default: a JSONL file under the state dir, webhooks signed with the secret in
    ``$MLOPS_WEBHOOK_SECRET``, no email.
    """
    if data is None:
        return NotifierConfig()
    top = _Cfg(data, source, field).mapping(("webhook", "email", "file", "stdout"))
    webhook = WebhookConfig()
    if "webhook" in top:
        w = top["webhook"].mapping(("secret_env", "secret_envs", "allow_unsigned", *_RETRY_KEYS))
        envs: dict[str, str] = {}
        if "secret_envs" in w:
            for prefix, env in w["secret_envs"].mapping(list(w["secret_envs"].value or {})).items():
                if not prefix.startswith(("http://", "https://")):
                    env.fail("keys of secret_envs are URL prefixes (http:// or https://)")
                envs[prefix] = env.env_name()
        webhook = WebhookConfig(
            secret_env=w["secret_env"].env_name() if "secret_env" in w else DEFAULT_SECRET_ENV,
            secret_envs=envs,
            allow_unsigned=w["allow_unsigned"].boolean() if "allow_unsigned" in w else False,
            retry=_retry(w, RetryPolicy()),
        )
    email = None
    if "email" in top:
        e = top["email"].mapping(("host", "port", "from", "starttls", "ssl", "username", "password_env", *_RETRY_KEYS))
        for key in ("host", "from"):
            if key not in e:
                top["email"].fail(
                    f"missing required field '{key}'",
                    hint="e.g. email: {host: smtp.example.com, from: mlops@example.com}",
                )
        email = SmtpConfig(
            host=e["host"].string(),
            sender=e["from"].string(),
            port=e["port"].integer(1) if "port" in e else 25,
            starttls=e["starttls"].boolean() if "starttls" in e else False,
            ssl=e["ssl"].boolean() if "ssl" in e else False,
            username=e["username"].string() if "username" in e else None,
            password_env=e["password_env"].env_name() if "password_env" in e else None,
            retry=_retry(e, RetryPolicy(retries=1)),
        )
        if email.ssl and email.starttls:
            e["ssl"].fail("use either ssl (SMTPS, port 465) or starttls (port 587), not both")
    file: str | None = DEFAULT_FILE
    if "file" in top:
        file = None if top["file"].value is False else top["file"].string()
    elif isinstance(data, dict) and "file" in data and data["file"] is None:
        file = None
    return NotifierConfig(
        webhook=webhook,
        email=email,
        file=file,
        stdout=top["stdout"].boolean() if "stdout" in top else False,
    )


# ------------------------------------------------------------------------------------------------------ notifiers


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook POST is not followed to another place: the receiver must answer where it was configured."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(_NoRedirect())


class WebhookNotifier:
    """POST the payload as JSON, signed, retried with exponential backoff within ``retry.max_total_seconds``."""

    channel = "webhook"

    def __init__(
        self,
        url: str,
        *,
        secret: str | None = None,
        unsigned_error: str | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise InputError(f"webhook URL {url!r} is not an http(s) URL")
        self.target = url
        self.secret = secret
        self.unsigned_error = unsigned_error
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    def send(self, payload: Mapping[str, Any], *, delivery_id: str) -> DeliveryResult:
        start = time.monotonic()
        if self.secret is None and self.unsigned_error:
            return DeliveryResult(self.channel, self.target, False, delivery_id, attempts=0, error=self.unsigned_error)
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = body.encode("utf-8")
        event = f"{payload.get('entity', '')}.{payload.get('action', '')}"
        opener = _opener()
        attempts, status, error = 0, None, "not attempted: no time left"
        for attempt in range(self.retry.retries + 1):
            remaining = self.retry.max_total_seconds - (time.monotonic() - start)
            if remaining <= 0:
                break
            attempts += 1
            timestamp = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                DELIVERY_ID_HEADER: delivery_id,
                TIMESTAMP_HEADER: timestamp,
                EVENT_HEADER: event,
            }
            if self.secret is not None:
                headers[SIGNATURE_HEADER] = sign(self.secret, delivery_id, timestamp, body)
            request = urllib.request.Request(self.target, data=data, headers=headers, method="POST")
            retryable = True
            try:
                with opener.open(request, timeout=max(0.05, min(self.retry.timeout_seconds, remaining))) as resp:
                    status = int(resp.status)
                    resp.read(65536)
                return DeliveryResult(
                    self.channel,
                    self.target,
                    True,
                    delivery_id,
                    attempts,
                    status,
                    elapsed_seconds=time.monotonic() - start,
                )
            except urllib.error.HTTPError as exc:
                status = exc.code
                error = f"HTTP {exc.code} {exc.reason}".strip()
                retryable = exc.code >= 500 or exc.code in (408, 425, 429)
                with contextlib.suppress(Exception):
                    exc.close()
            except TimeoutError:
                status, error = None, f"timed out after {min(self.retry.timeout_seconds, remaining):.3g} s"
            except urllib.error.URLError as exc:
                timed_out = isinstance(exc.reason, TimeoutError)
                status, error = None, "timed out connecting" if timed_out else f"cannot connect: {exc.reason}"
            except (OSError, ValueError) as exc:
                status, error = None, f"{type(exc).__name__}: {exc}"
            if not retryable or attempt == self.retry.retries:
                break
            delay = self.retry.delay(attempt)
            if time.monotonic() - start + delay >= self.retry.max_total_seconds:
                error += f" (gave up: the next retry would pass the {self.retry.max_total_seconds:g} s bound)"
                break
            self._sleep(delay)
        return DeliveryResult(
            self.channel,
            self.target,
            False,
            delivery_id,
            attempts,
            status,
            error,
            elapsed_seconds=time.monotonic() - start,
        )


class EmailNotifier:
    """Send the notification as a plain-text email to ``to`` through the configured SMTP server."""

    channel = "email"

    def __init__(self, to: str, smtp: SmtpConfig, *, sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = to
        self.smtp = smtp
        self._sleep = sleep

    def _message(self, payload: Mapping[str, Any], delivery_id: str) -> Any:
        from email.message import EmailMessage
        from email.utils import formatdate, make_msgid

        subject, text = render_email_text(payload)
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = self.target
        msg["Subject"] = subject
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(idstring=delivery_id.replace("-", ""))
        msg["X-Mlops-Delivery-Id"] = delivery_id
        msg.set_content(text)
        return msg

    def _deliver(self, msg: Any, timeout: float) -> None:
        cfg = self.smtp
        server: smtplib.SMTP
        if cfg.ssl:
            server = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=timeout, context=ssl.create_default_context())
        else:
            server = smtplib.SMTP(cfg.host, cfg.port, timeout=timeout)
        with server:
            if cfg.starttls:
                server.starttls(context=ssl.create_default_context())
            if cfg.username:
                password = os.environ.get(cfg.password_env or "", "")
                if not password:
                    raise smtplib.SMTPAuthenticationError(
                        535, f"no password: environment variable {cfg.password_env!r} is not set".encode()
                    )
                server.login(cfg.username, password)
            server.send_message(msg)

    def send(self, payload: Mapping[str, Any], *, delivery_id: str) -> DeliveryResult:
        start = time.monotonic()
        msg = self._message(payload, delivery_id)
        retry = self.smtp.retry
        attempts, error = 0, "not attempted"
        for attempt in range(retry.retries + 1):
            remaining = retry.max_total_seconds - (time.monotonic() - start)
            if remaining <= 0:
                break
            attempts += 1
            transient = True
            try:
                self._deliver(msg, max(0.05, min(retry.timeout_seconds, remaining)))
                return DeliveryResult(
                    self.channel, self.target, True, delivery_id, attempts, elapsed_seconds=time.monotonic() - start
                )
            except smtplib.SMTPResponseException as exc:
                detail = (
                    exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
                )
                error = f"SMTP {exc.smtp_code} {detail}"
                transient = 400 <= exc.smtp_code < 500
            except smtplib.SMTPRecipientsRefused as exc:
                error, transient = f"recipient refused: {exc.recipients}", False
            except (smtplib.SMTPException, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if not transient or attempt == retry.retries:
                break
            delay = retry.delay(attempt)
            if time.monotonic() - start + delay >= retry.max_total_seconds:
                break
            self._sleep(delay)
        return DeliveryResult(
            self.channel,
            self.target,
            False,
            delivery_id,
            attempts,
            error=error,
            elapsed_seconds=time.monotonic() - start,
        )


class FileNotifier:
    """Append each notification as one JSON line to a local file (the embedded default)."""

    channel = "file"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.target = str(path)

    def send(self, payload: Mapping[str, Any], *, delivery_id: str) -> DeliveryResult:
        line = json.dumps({"delivery_id": delivery_id, **payload}, sort_keys=True, ensure_ascii=False) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
        except OSError as exc:
            return DeliveryResult(self.channel, self.target, False, delivery_id, error=f"{exc.strerror}: {self.path}")
        return DeliveryResult(self.channel, self.target, True, delivery_id)


class StdoutNotifier:
    """Print a one-line summary of each notification (to ``stream``, standard output by default)."""

    channel = "stdout"
    target = "stdout"

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def send(self, payload: Mapping[str, Any], *, delivery_id: str) -> DeliveryResult:
        subject, _ = render_email_text(payload)
        data = payload.get("data") or {}
        stream = self.stream or sys.stdout
        stream.write(f"{subject}: {data.get('message', '')}\n")
        stream.flush()
        return DeliveryResult(self.channel, self.target, True, delivery_id)


# -------------------------------------------------------------------------------------------------------- outbox


@dataclass(frozen=True)
class FlushResult:
    """What :meth:`Outbox.flush` did: deliveries that went through now and those still waiting."""

    delivered: tuple[DeliveryResult, ...]
    still_failed: tuple[DeliveryResult, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "delivered": [r.to_dict() for r in self.delivered],
            "still_failed": [r.to_dict() for r in self.still_failed],
        }


class Outbox:
    """Failed deliveries, one JSON line each, kept until a later flush delivers them."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _lock(self) -> contextlib.AbstractContextManager[None]:
        from mlops_layer.locks import file_lock

        return file_lock(self.path.with_suffix(".lock"), what="the notification outbox")

    def append(self, result: DeliveryResult, payload: Mapping[str, Any]) -> None:
        entry = {
            "delivery_id": result.delivery_id,
            "channel": result.channel,
            "target": result.target,
            "recipient": result.recipient,
            "alert_id": result.alert_id,
            "payload": dict(payload),
            "attempts": result.attempts,
            "last_error": result.error,
            "failed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        with self._lock():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")

    def entries(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        out = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except ValueError:
                raise ConfigError(
                    f"{self.path}:{number}: not a JSON line", hint="fix or remove the broken line of the outbox"
                ) from None
        return out

    def flush(self, build: Callable[[str, str], Notifier | None]) -> FlushResult:
        """Retry every queued delivery with the notifier ``build(channel, target)`` gives (None: keep it)."""
        from mlops_layer.monitoring.state import atomic_write_text

        delivered: list[DeliveryResult] = []
        failed: list[DeliveryResult] = []
        with self._lock():
            keep: list[dict[str, Any]] = []
            for entry in self.entries():
                notifier = build(str(entry["channel"]), str(entry["target"]))
                if notifier is None:
                    keep.append(entry)
                    failed.append(
                        DeliveryResult(
                            entry["channel"],
                            entry["target"],
                            False,
                            entry["delivery_id"],
                            0,
                            error="no notifier configured for this channel",
                            recipient=entry.get("recipient", ""),
                            alert_id=entry.get("alert_id", ""),
                            queued=True,
                        )
                    )
                    continue
                result = replace(
                    notifier.send(entry["payload"], delivery_id=str(entry["delivery_id"])),
                    recipient=entry.get("recipient", ""),
                    alert_id=entry.get("alert_id", ""),
                )
                if result.ok:
                    delivered.append(result)
                else:
                    failed.append(replace(result, queued=True))
                    keep.append(
                        {
                            **entry,
                            "attempts": int(entry.get("attempts", 0)) + result.attempts,
                            "last_error": result.error,
                        }
                    )
            if keep or self.path.exists():
                atomic_write_text(
                    self.path, "".join(json.dumps(e, sort_keys=True, ensure_ascii=False) + "\n" for e in keep)
                )
        return FlushResult(tuple(delivered), tuple(failed))


# ------------------------------------------------------------------------------------------------------ dispatch


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


def load_notifier_config(config_file: Path) -> NotifierConfig:
    """The ``notifications:`` section of ``mlops.yaml`` (no file or no section: the embedded default)."""
    import yaml

    try:
        text = config_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return NotifierConfig()
    except OSError as exc:
        raise ConfigError(f"{config_file} cannot be read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file}: not valid YAML ({exc})", hint="fix the YAML syntax") from None
    if not isinstance(data, dict):
        return NotifierConfig()
    return parse_notifier_config(data.get("notifications"), source=str(config_file))
