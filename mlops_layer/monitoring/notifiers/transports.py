"""Transports: deliver one payload by webhook (signed JSON POST), e-mail (SMTP), a JSONL file or standard output.

Webhook and e-mail retry through the one :meth:`RetryPolicy.run`, so both bound their time the same way and both
say in the same words when they gave up. File and stdout do not retry: they are local.
"""

from __future__ import annotations

import contextlib
import json
import os
import smtplib
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from mlops_layer.errors import InputError
from mlops_layer.monitoring.notifiers.config import SmtpConfig
from mlops_layer.monitoring.notifiers.payloads import render_email_text
from mlops_layer.monitoring.notifiers.results import DeliveryResult
from mlops_layer.monitoring.notifiers.retry import Attempt, RetryPolicy
from mlops_layer.monitoring.notifiers.signing import (
    DELIVERY_ID_HEADER,
    EVENT_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

USER_AGENT = "mlops-layer-notifier/1"


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
        if self.secret is None and self.unsigned_error:
            return DeliveryResult(self.channel, self.target, False, delivery_id, attempts=0, error=self.unsigned_error)
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        data = body.encode("utf-8")
        event = f"{payload.get('entity', '')}.{payload.get('action', '')}"
        opener = _opener()

        def attempt(timeout: float) -> Attempt:
            timestamp = str(int(time.time()))  # fresh on every try: receivers reject stale timestamps
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
            try:
                with opener.open(request, timeout=timeout) as resp:
                    status = int(resp.status)
                    resp.read(65536)
                return Attempt(True, status_code=status)
            except urllib.error.HTTPError as exc:
                with contextlib.suppress(Exception):
                    exc.close()
                transient = exc.code >= 500 or exc.code in (408, 425, 429)
                return Attempt(False, f"HTTP {exc.code} {exc.reason}".strip(), transient, exc.code)
            except TimeoutError:
                return Attempt(False, f"timed out after {timeout:.3g} s")
            except urllib.error.URLError as exc:
                timed_out = isinstance(exc.reason, TimeoutError)
                return Attempt(False, "timed out connecting" if timed_out else f"cannot connect: {exc.reason}")
            except (OSError, ValueError) as exc:
                return Attempt(False, f"{type(exc).__name__}: {exc}")

        outcome = self.retry.run(attempt, sleep=self._sleep)
        return DeliveryResult(
            self.channel,
            self.target,
            outcome.ok,
            delivery_id,
            outcome.attempts,
            outcome.status_code,
            outcome.error,
            elapsed_seconds=outcome.elapsed_seconds,
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
        msg = self._message(payload, delivery_id)

        def attempt(timeout: float) -> Attempt:
            try:
                self._deliver(msg, timeout)
                return Attempt(True)
            except smtplib.SMTPResponseException as exc:
                detail = (
                    exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
                )
                return Attempt(False, f"SMTP {exc.smtp_code} {detail}", 400 <= exc.smtp_code < 500)
            except smtplib.SMTPRecipientsRefused as exc:
                return Attempt(False, f"recipient refused: {exc.recipients}", transient=False)
            except (smtplib.SMTPException, OSError) as exc:
                return Attempt(False, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)

        outcome = self.smtp.retry.run(attempt, sleep=self._sleep)
        return DeliveryResult(
            self.channel,
            self.target,
            outcome.ok,
            delivery_id,
            outcome.attempts,
            error=outcome.error,
            elapsed_seconds=outcome.elapsed_seconds,
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
