"""Notifiers against a REAL local HTTP receiver and a REAL local SMTP server (aiosmtpd); outbox and config."""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from mlops_layer.errors import ConfigError
from mlops_layer.monitoring.alerts import AlertEvent
from mlops_layer.monitoring.notifiers import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    EmailNotifier,
    FileNotifier,
    NotifierConfig,
    NotifierFactory,
    Outbox,
    Recipient,
    RetryPolicy,
    SmtpConfig,
    StdoutNotifier,
    WebhookConfig,
    WebhookNotifier,
    dispatch,
    notification_payload,
    parse_notifier_config,
    recipients_from,
    redact,
    sign,
    verify_signature,
)

SECRET = "s3cret-for-tests"
FAST = RetryPolicy(retries=2, backoff_seconds=0.01, backoff_max_seconds=0.05, timeout_seconds=2.0, max_total_seconds=10)


def event(kind: str = "fired", rule: str = "drift") -> AlertEvent:
    return AlertEvent(
        kind=kind,
        alert_id=f"churn:{rule}:4",
        model="churn",
        version="3",
        rule=rule,
        rule_type="drift_share",
        severity="critical",
        signal="drift_share",
        observed=0.6,
        threshold=0.3,
        by=0.3,
        message="drift share 0.6 above 0.3 by 0.3",
        window="2 of the last 3 batches",
        breaches=2,
        batch_seq=4,
        timestamp="2025-01-01T04:00:00+00:00",
        fired_seq=4,
        evidence={"run_id": "abc123", "report": "/reports/b4.html"},
    )


# ---------------------------------------------------------------------------------------------- HTTP receiver


class Receiver:
    """A webhook receiver on 127.0.0.1: records requests; ``plan`` says how to answer each (status or 'slow')."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.plan: list[int | str] = []
        self.default: int | str = 200
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.lock:
                    receiver.requests.append({"headers": dict(self.headers), "body": body, "at": time.monotonic()})
                    action = receiver.plan.pop(0) if receiver.plan else receiver.default
                if action == "slow":
                    time.sleep(1.0)
                    action = 200
                try:
                    self.send_response(int(action))
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the client gave up (timeout) and closed the connection

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # type: ignore[misc]
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/alerts?token=abc"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_webhook_is_signed_like_mlflow_and_verifies(receiver: Receiver) -> None:
    payload = notification_payload(event(), sent_at=datetime(2025, 1, 1, tzinfo=timezone.utc))
    result = WebhookNotifier(receiver.url, secret=SECRET, retry=FAST).send(payload, delivery_id="d-1")
    assert result.ok and result.attempts == 1 and result.status_code == 200
    (req,) = receiver.requests
    headers, body = req["headers"], req["body"]
    assert headers["Content-Type"] == "application/json"
    assert headers[DELIVERY_ID_HEADER] == "d-1"
    assert headers[SIGNATURE_HEADER].startswith("v1,")
    assert verify_signature(SECRET, headers, body)
    assert not verify_signature("wrong-secret", headers, body)
    assert not verify_signature(SECRET, headers, body.replace(b"0.6", b"0.1"))  # tampered body
    stale = int(headers[TIMESTAMP_HEADER]) + 3600
    assert not verify_signature(SECRET, headers, body, now=stale)  # replayed an hour later
    assert not verify_signature(SECRET, {k: v for k, v in headers.items() if k != SIGNATURE_HEADER}, body)
    data = json.loads(body)
    assert data["entity"] == "mlops_alert" and data["action"] == "fired"
    assert data["data"]["model"] == "churn" and data["data"]["evidence"]["run_id"] == "abc123"
    # the scheme is MLflow's: base64 HMAC-SHA256 over "<delivery id>.<timestamp>.<body>"
    import base64
    import hashlib
    import hmac

    raw = hmac.new(SECRET.encode(), f"d-1.{headers[TIMESTAMP_HEADER]}.{body.decode()}".encode(), hashlib.sha256)
    assert headers[SIGNATURE_HEADER] == "v1," + base64.b64encode(raw.digest()).decode()
    assert sign(SECRET, "d-1", headers[TIMESTAMP_HEADER], body.decode()) == headers[SIGNATURE_HEADER]


def test_webhook_500_is_retried_with_backoff_then_recorded_as_failed(receiver: Receiver) -> None:
    receiver.default = 500
    sleeps: list[float] = []
    notifier = WebhookNotifier(
        receiver.url, secret=SECRET, retry=RetryPolicy(retries=3, backoff_seconds=0.01), sleep=sleeps.append
    )
    result = notifier.send(notification_payload(event()), delivery_id="d-500")
    assert not result.ok and result.attempts == 4 and result.status_code == 500
    assert result.error is not None and "HTTP 500" in result.error
    assert sleeps == [0.01, 0.02, 0.04]  # exponential backoff
    assert len(receiver.requests) == 4
    assert {r["headers"][DELIVERY_ID_HEADER] for r in receiver.requests} == {"d-500"}  # one delivery, one id


def test_webhook_500_then_ok_succeeds_on_retry(receiver: Receiver) -> None:
    receiver.plan = [500, 503]
    result = WebhookNotifier(receiver.url, secret=SECRET, retry=FAST).send(
        notification_payload(event()), delivery_id="x"
    )
    assert result.ok and result.attempts == 3


def test_webhook_client_error_is_not_retried(receiver: Receiver) -> None:
    receiver.default = 401
    result = WebhookNotifier(receiver.url, secret=SECRET, retry=FAST).send(
        notification_payload(event()), delivery_id="x"
    )
    assert not result.ok and result.attempts == 1 and result.status_code == 401


def test_webhook_slow_endpoint_times_out_then_retry_succeeds(receiver: Receiver) -> None:
    receiver.plan = ["slow"]
    retry = RetryPolicy(retries=2, backoff_seconds=0.01, timeout_seconds=0.3, max_total_seconds=5)
    start = time.monotonic()
    result = WebhookNotifier(receiver.url, secret=SECRET, retry=retry).send(
        notification_payload(event()), delivery_id="s"
    )
    assert result.ok and result.attempts == 2
    assert time.monotonic() - start < 1.0  # did not wait for the slow answer
    assert len(receiver.requests) == 2
    assert all(verify_signature(SECRET, r["headers"], r["body"]) for r in receiver.requests)


def test_webhook_total_time_bound(receiver: Receiver) -> None:
    receiver.default = "slow"
    retry = RetryPolicy(retries=10, backoff_seconds=0.01, timeout_seconds=0.25, max_total_seconds=0.6)
    start = time.monotonic()
    result = WebhookNotifier(receiver.url, secret=SECRET, retry=retry).send(
        notification_payload(event()), delivery_id="t"
    )
    elapsed = time.monotonic() - start
    assert not result.ok and result.error is not None and "timed out" in result.error
    assert 2 <= result.attempts <= 3 and elapsed < 1.0


def test_webhook_endpoint_down_is_connection_refused() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    result = WebhookNotifier(url, secret=SECRET, retry=FAST).send(notification_payload(event()), delivery_id="d")
    assert not result.ok and result.attempts == 3 and result.error is not None
    assert "refused" in result.error.lower()


def test_webhook_redirect_is_not_followed(receiver: Receiver) -> None:
    receiver.default = 302
    result = WebhookNotifier(receiver.url, secret=SECRET, retry=FAST).send(
        notification_payload(event()), delivery_id="r"
    )
    assert not result.ok and result.status_code == 302 and result.attempts == 1


# -------------------------------------------------------------------------------------------- dispatch, outbox


def factory(tmp_path: Path, config: NotifierConfig | None = None, **env: str) -> NotifierFactory:
    cfg = config or NotifierConfig(webhook=WebhookConfig(retry=FAST))
    return NotifierFactory(cfg, tmp_path, environ={"MLOPS_WEBHOOK_SECRET": SECRET, **env})


def test_dispatch_to_stakeholders_failed_delivery_is_queued_and_flushed(tmp_path: Path, receiver: Receiver) -> None:
    receiver.default = 500
    outbox = Outbox(tmp_path / "monitoring" / "outbox.jsonl")
    people = [
        Recipient("ops", webhook=receiver.url),
        Recipient("risk", webhook=receiver.url, alerts=("accuracy",)),  # does not want drift alerts
        Recipient("owner", email="owner@example.com"),  # no SMTP configured: skipped, not an error
    ]
    results = dispatch([event()], people, factory(tmp_path), outbox)
    by_channel = {(r.channel, r.recipient): r for r in results}
    assert set(by_channel) == {("file", ""), ("webhook", "ops"), ("email", "owner")}
    assert by_channel[("file", "")].ok
    hook = by_channel[("webhook", "ops")]
    assert not hook.ok and hook.queued and hook.attempts == 3 and hook.alert_id == "churn:drift:4"
    assert by_channel[("email", "owner")].skipped
    lines = (tmp_path / "monitoring" / "notifications.jsonl").read_text().splitlines()
    assert json.loads(lines[0])["data"]["alert_id"] == "churn:drift:4"
    (queued,) = outbox.entries()
    assert queued["delivery_id"] == hook.delivery_id and "HTTP 500" in queued["last_error"]
    assert "token=abc" not in json.dumps(hook.to_dict())  # the URL's token is redacted from reports

    still = outbox.flush(factory(tmp_path).build)  # still down
    assert still.delivered == () and len(still.still_failed) == 1
    assert outbox.entries()[0]["attempts"] == 6

    receiver.default = 200
    receiver.requests.clear()
    flushed = outbox.flush(factory(tmp_path).build)
    assert [r.delivery_id for r in flushed.delivered] == [hook.delivery_id] and flushed.still_failed == ()
    assert outbox.entries() == []
    (req,) = receiver.requests
    assert req["headers"][DELIVERY_ID_HEADER] == hook.delivery_id  # same id: the receiver can deduplicate
    assert verify_signature(SECRET, req["headers"], req["body"])


def test_missing_secret_fails_and_queues_unless_unsigned_allowed(tmp_path: Path, receiver: Receiver) -> None:
    outbox = Outbox(tmp_path / "outbox.jsonl")
    no_secret = NotifierFactory(NotifierConfig(webhook=WebhookConfig(secret_env="HOOK_SECRET")), tmp_path, environ={})
    (result,) = [
        r for r in dispatch([event()], [Recipient("ops", webhook=receiver.url)], no_secret, outbox) if r.recipient
    ]
    assert not result.ok and result.queued and "$HOOK_SECRET is not set" in str(result.error)
    assert receiver.requests == []
    with_secret = NotifierFactory(no_secret.config, tmp_path, environ={"HOOK_SECRET": "k2"})
    assert outbox.flush(with_secret.build).still_failed == ()
    assert verify_signature("k2", receiver.requests[0]["headers"], receiver.requests[0]["body"])
    unsigned = NotifierFactory(NotifierConfig(webhook=WebhookConfig(allow_unsigned=True)), tmp_path, environ={})
    assert unsigned.webhook(receiver.url).send(notification_payload(event()), delivery_id="u").ok
    assert SIGNATURE_HEADER not in receiver.requests[-1]["headers"]


def test_recipients_from_the_model_card() -> None:
    from mlops_layer.governance.cards import Channel, Stakeholder

    card_people = [
        Stakeholder("Ops", role="oncall", channels=(Channel("webhook", "https://h.example/x"),), alerts=("drift",)),
        Stakeholder("Owner", channels=(Channel("email", "o@example.com"), Channel("webhook", "https://h2.example/"))),
    ]
    ops, owner = recipients_from(card_people)
    assert ops == Recipient("Ops", webhook="https://h.example/x", alerts=("drift",))
    assert owner == Recipient("Owner", email="o@example.com", webhook="https://h2.example/")
    assert ops.wants(event(rule="drift")) and not ops.wants(event(rule="accuracy"))
    assert owner.wants(event(rule="accuracy"))
    assert recipients_from([Recipient("x", email="x@example.com")]) == [Recipient("x", email="x@example.com")]


def test_file_and_stdout_notifiers(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "alerts.jsonl"
    payload = notification_payload(event())
    assert FileNotifier(path).send(payload, delivery_id="a").ok
    assert FileNotifier(path).send(notification_payload(event("cleared")), delivery_id="b").ok
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["delivery_id"], r["action"]) for r in rows] == [("a", "fired"), ("b", "cleared")]
    stream = io.StringIO()
    assert StdoutNotifier(stream).send(payload, delivery_id="c").ok
    assert stream.getvalue().startswith("[mlops ALERT] churn v3: drift (critical): drift share 0.6")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro" / "f").mkdir()  # a directory where the file should be
    assert not FileNotifier(tmp_path / "ro" / "f").send(payload, delivery_id="d").ok


# ----------------------------------------------------------------------------------------------------- SMTP


class Inbox:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address.startswith("nobody@"):
            return "550 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.envelopes.append(envelope)
        return "250 Message accepted"


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def test_email_arrives_at_a_real_smtp_server(smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    from email import message_from_bytes

    inbox, port = smtp
    config = parse_notifier_config(
        {"email": {"host": "127.0.0.1", "port": port, "from": "mlops@example.com", "timeout_seconds": 5}},
        source="mlops.yaml",
    )
    results = dispatch(
        [event()],
        [Recipient("owner", email="owner@example.com")],
        NotifierFactory(config, tmp_path, environ={}),
        Outbox(tmp_path / "outbox.jsonl"),
    )
    (mail,) = [r for r in results if r.channel == "email"]
    assert mail.ok and mail.attempts == 1
    (envelope,) = inbox.envelopes
    assert envelope.mail_from == "mlops@example.com" and envelope.rcpt_tos == ["owner@example.com"]
    msg = message_from_bytes(envelope.content)
    assert msg["Subject"] == "[mlops ALERT] churn v3: drift (critical)"
    assert msg["X-Mlops-Delivery-Id"] == mail.delivery_id
    text = msg.get_payload(decode=True).decode()
    assert "drift share 0.6 above 0.3 by 0.3" in text and "run_id: abc123" in text and "/reports/b4.html" in text


def test_email_refused_recipient_is_not_retried_and_server_down_is_queued(
    smtp: tuple[Inbox, int], tmp_path: Path
) -> None:
    inbox, port = smtp
    cfg = SmtpConfig(host="127.0.0.1", port=port, sender="mlops@example.com", retry=FAST)
    refused = EmailNotifier("nobody@example.com", cfg).send(notification_payload(event()), delivery_id="n")
    assert not refused.ok and refused.attempts == 1 and inbox.envelopes == []
    down = SmtpConfig(host="127.0.0.1", port=free_port(), sender="mlops@example.com", retry=FAST)
    outbox = Outbox(tmp_path / "outbox.jsonl")
    results = dispatch(
        [event()],
        [Recipient("owner", email="owner@example.com")],
        NotifierFactory(NotifierConfig(email=down, file=None), tmp_path, environ={}),
        outbox,
    )
    (result,) = results
    assert not result.ok and result.queued and result.attempts == 3
    assert outbox.entries()[0]["channel"] == "email"
    # the server is back (on the configured port): flushing delivers the queued email
    up = NotifierFactory(NotifierConfig(email=cfg, file=None), tmp_path, environ={})
    assert outbox.flush(up.build).still_failed == () and len(inbox.envelopes) == 1


# ---------------------------------------------------------------------------------------------------- config


def test_parse_notifier_config_complete_example() -> None:
    import yaml

    text = """
notifications:
  file: monitoring/notifications.jsonl
  stdout: false
  webhook:
    secret_env: MLOPS_WEBHOOK_SECRET
    secret_envs: {"https://hooks.risk.example.com/": RISK_HOOK_SECRET}
    allow_unsigned: false
    retries: 4
    backoff_seconds: 0.5
    backoff_max_seconds: 8
    timeout_seconds: 5
    max_total_seconds: 30
  email:
    host: smtp.example.com
    port: 587
    from: mlops@example.com
    starttls: true
    username: mlops
    password_env: MLOPS_SMTP_PASSWORD
    timeout_seconds: 10
"""
    cfg = parse_notifier_config(yaml.safe_load(text)["notifications"], source="mlops.yaml")
    assert cfg.webhook.retry.retries == 4 and cfg.webhook.retry.max_total_seconds == 30
    assert cfg.webhook.secret_env_for("https://hooks.risk.example.com/a") == "RISK_HOOK_SECRET"
    assert cfg.webhook.secret_env_for("https://other.example.com/") == "MLOPS_WEBHOOK_SECRET"
    assert cfg.email is not None and cfg.email.port == 587 and cfg.email.starttls and cfg.email.retry.retries == 1
    assert cfg.email.password_env == "MLOPS_SMTP_PASSWORD"
    assert parse_notifier_config(None, source="x") == NotifierConfig()
    assert parse_notifier_config({"file": None}, source="x").file is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"webhok": {}}, "field 'notifications.webhok': unknown field"),
        ({"webhook": {"secret_env": "hunter2 is my password"}}, "is not an environment variable name"),
        ({"webhook": {"retries": -1}}, "field 'notifications.webhook.retries': expected an integer >= 0"),
        ({"email": {"host": "smtp"}}, "field 'notifications.email': missing required field 'from'"),
        ({"email": {"host": "h", "from": "f", "ssl": True, "starttls": True}}, "not both"),
        ({"stdout": "yes"}, "field 'notifications.stdout': expected true or false"),
        ([1], "expected a mapping"),
    ],
)
def test_notifier_config_errors_name_the_field(data: Any, expected: str) -> None:
    with pytest.raises(ConfigError, match="^mlops.yaml") as info:
        parse_notifier_config(data, source="mlops.yaml")
    assert expected in info.value.message


def test_redact_hides_tokens_in_urls() -> None:
    assert redact("https://hooks.slack.com/services/T0/B0/XYZ") == "https://hooks.slack.com/…"
    assert redact("http://127.0.0.1:8080/") == "http://127.0.0.1:8080/"
    assert redact("ops@example.com") == "ops@example.com"


def test_load_notifier_config_from_mlops_yaml(tmp_path: Path) -> None:
    from mlops_layer.monitoring.notifiers import load_notifier_config

    assert load_notifier_config(tmp_path / "mlops.yaml") == NotifierConfig()  # no file: the embedded default
    path = tmp_path / "mlops.yaml"
    path.write_text("tracking_uri: sqlite:///mlflow.db\nnotifications:\n  stdout: true\n  webhook: {retries: 1}\n")
    cfg = load_notifier_config(path)
    assert cfg.stdout and cfg.webhook.retry.retries == 1 and cfg.file == "monitoring/notifications.jsonl"
    path.write_text("notifications:\n  email: {host: smtp.example.com}\n")
    # read through the one YAML reader: the error names the line too
    with pytest.raises(ConfigError, match="mlops.yaml:2: field 'notifications.email': missing required field 'from'"):
        load_notifier_config(path)
