"""The one retry helper of the notifiers: its loop on a fake clock, and webhook and e-mail giving up in the same words.

The transports are exercised for real: a closed local port (connection refused) and a real local SMTP server
(aiosmtpd) that answers 451 (a transient error) to every message.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from mlops_layer.monitoring.alerts import AlertEvent
from mlops_layer.monitoring.notifiers import (
    Attempt,
    EmailNotifier,
    RetryPolicy,
    SmtpConfig,
    WebhookNotifier,
    gave_up,
    notification_payload,
)

GAVE_UP = re.compile(r"^(?P<error>.+) \(gave up after (?P<n>\d+) attempts?: (?P<reason>[^()]+)\)$")


class FakeClock:
    def __init__(self, oversleep: float = 0.0) -> None:
        self.now = 0.0
        self.oversleep = oversleep  # a real sleep may take longer than asked
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds + self.oversleep


def scripted(clock: FakeClock, outcomes: list[Attempt], cost: float = 0.0) -> tuple[Any, list[float]]:
    """An attempt function that returns ``outcomes`` in turn, each taking ``cost`` seconds; records its timeouts."""
    timeouts: list[float] = []

    def attempt(timeout: float) -> Attempt:
        timeouts.append(timeout)
        clock.now += cost
        return outcomes[len(timeouts) - 1]

    return attempt, timeouts


def test_success_after_transient_failures_backs_off_exponentially() -> None:
    clock = FakeClock()
    attempt, timeouts = scripted(
        clock, [Attempt(False, "HTTP 503"), Attempt(False, "HTTP 502"), Attempt(True, status_code=200)]
    )
    result = RetryPolicy(retries=3, backoff_seconds=0.5).run(attempt, sleep=clock.sleep, clock=clock)
    assert result.ok and result.attempts == 3 and result.status_code == 200 and result.error is None
    assert clock.sleeps == [0.5, 1.0] and timeouts == [5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("policy", "outcomes", "cost", "attempts", "reason", "oversleep"),
    [
        (RetryPolicy(retries=2, backoff_seconds=0.1), [Attempt(False, "e")] * 3, 0.0, 3, "no retries left", 0.0),
        (
            RetryPolicy(retries=5),
            [Attempt(False, "HTTP 401", transient=False)],
            0.0,
            1,
            "the error is not transient",
            0.0,
        ),
        (
            RetryPolicy(retries=5, backoff_seconds=4, max_total_seconds=10),
            [Attempt(False, "e")] * 6,
            1.0,
            2,
            "the next retry would pass the 10 s bound",
            0.0,
        ),
        (
            RetryPolicy(retries=5, backoff_seconds=0.1, timeout_seconds=2, max_total_seconds=3),
            [Attempt(False, "timed out")] * 6,
            2.0,
            1,
            "no time left within the 3 s bound",
            1.0,
        ),
    ],
)
def test_every_way_of_stopping_says_it_gave_up(
    policy: RetryPolicy, outcomes: list[Attempt], cost: float, attempts: int, reason: str, oversleep: float
) -> None:
    clock = FakeClock(oversleep)
    attempt, _ = scripted(clock, outcomes, cost)
    result = policy.run(attempt, sleep=clock.sleep, clock=clock)
    assert not result.ok and result.attempts == attempts
    match = GAVE_UP.match(result.error or "")
    assert match is not None, result.error
    assert match["n"] == str(attempts) and match["reason"] == reason
    assert match["error"] == outcomes[0].error


def test_the_last_try_gets_only_the_time_left() -> None:
    clock = FakeClock()
    attempt, timeouts = scripted(clock, [Attempt(False, "slow")] * 4)
    policy = RetryPolicy(
        retries=3, backoff_seconds=1.0, backoff_max_seconds=1.0, timeout_seconds=5, max_total_seconds=3.5
    )
    policy.run(attempt, sleep=clock.sleep, clock=clock)
    assert timeouts == [3.5, 2.5, 1.5, 0.5]  # each try gets at most the time left


def test_no_time_at_all_is_not_attempted() -> None:
    result = RetryPolicy(max_total_seconds=0).run(lambda timeout: Attempt(True))
    assert not result.ok and result.attempts == 0 and result.error == "not attempted: no time left within the 0 s bound"


def test_gave_up_shape() -> None:
    assert gave_up("HTTP 500", 1, "r") == "HTTP 500 (gave up after 1 attempt: r)"
    assert gave_up("HTTP 500", 4, "r") == "HTTP 500 (gave up after 4 attempts: r)"


# ------------------------------------------------------------------------------------ both transports, for real


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def event() -> AlertEvent:
    return AlertEvent(
        kind="fired",
        alert_id="churn:drift:4",
        model="churn",
        version="3",
        rule="drift",
        rule_type="drift_share",
        severity="critical",
        signal="drift_share",
        observed=0.6,
        threshold=0.3,
        by=0.3,
        message="drift share 0.6 above 0.3 by 0.3",
        window="1 of the last 1 batch",
        breaches=1,
        batch_seq=4,
        timestamp="2026-01-01T00:00:00+00:00",
        fired_seq=4,
    )


@pytest.fixture
def busy_smtp() -> Iterator[int]:
    """A real SMTP server that answers every message with 451 (try again later): a transient failure."""
    from aiosmtpd.controller import Controller

    class Busy:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            return "451 4.3.0 mailbox busy, try again later"

    port = free_port()
    controller = Controller(Busy(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


FAST = RetryPolicy(retries=2, backoff_seconds=0.01, backoff_max_seconds=0.02, timeout_seconds=2, max_total_seconds=10)


def test_webhook_and_email_give_up_in_the_same_words(busy_smtp: int) -> None:
    payload = notification_payload(event())
    hook = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook", secret="s", retry=FAST).send(
        payload, delivery_id="w"
    )
    smtp = SmtpConfig(host="127.0.0.1", port=busy_smtp, sender="mlops@example.com", retry=FAST)
    mail = EmailNotifier("owner@example.com", smtp).send(payload, delivery_id="m")
    shapes = []
    for result in (hook, mail):
        assert not result.ok and result.attempts == 3
        match = GAVE_UP.match(result.error or "")
        assert match is not None, result.error
        shapes.append((match["n"], match["reason"]))
    assert shapes == [("3", "no retries left")] * 2
    assert "refused" in hook.error.lower() and "SMTP 451" in str(mail.error)


def test_webhook_and_email_both_stop_at_the_time_bound(busy_smtp: int) -> None:
    payload = notification_payload(event())
    bounded = RetryPolicy(retries=5, backoff_seconds=30, timeout_seconds=2, max_total_seconds=5)
    hook = WebhookNotifier(f"http://127.0.0.1:{free_port()}/hook", secret="s", retry=bounded).send(
        payload, delivery_id="w"
    )
    smtp = SmtpConfig(host="127.0.0.1", port=busy_smtp, sender="mlops@example.com", retry=bounded)
    mail = EmailNotifier("owner@example.com", smtp).send(payload, delivery_id="m")
    for result in (hook, mail):
        match = GAVE_UP.match(result.error or "")
        assert match is not None and match["n"] == "1", result.error
        assert match["reason"] == "the next retry would pass the 5 s bound"
