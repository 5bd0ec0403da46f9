"""The one retry loop of the notifiers: exponential backoff within a total time bound, and one way to say it gave up.

Webhook and e-mail delivery both call :meth:`RetryPolicy.run` with a function that makes one attempt and says how it
went (:class:`Attempt`). A failure that is not transient stops at once; a transient one is retried after
``backoff * 2**n`` seconds (capped) while tries and time remain. Every failed :class:`RetryResult` ends its error
with the same ``(gave up after N attempts: <reason>)``, whichever transport it came from.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

MIN_TIMEOUT_SECONDS = 0.05


@dataclass(frozen=True)
class Attempt:
    """How one try went: ``ok``, or an ``error`` that trying again may (``transient``) or may not fix."""

    ok: bool
    error: str = ""
    transient: bool = True
    status_code: int | None = None


@dataclass(frozen=True)
class RetryResult:
    """How all the tries went together: the last attempt's outcome, how many tries, how long, and why it stopped."""

    ok: bool
    attempts: int
    status_code: int | None = None
    error: str | None = None
    elapsed_seconds: float = 0.0


def gave_up(error: str, attempts: int, reason: str) -> str:
    """The one shape of a final delivery error: ``<last error> (gave up after N attempts: <reason>)``."""
    return f"{error} (gave up after {attempts} attempt{'s' if attempts != 1 else ''}: {reason})"


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

    def run(
        self,
        attempt: Callable[[float], Attempt],
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> RetryResult:
        """Call ``attempt(timeout_seconds)`` until it succeeds, fails for good, or tries or time run out."""
        start = clock()
        bound = f"{self.max_total_seconds:g} s"
        last: Attempt | None = None
        attempts = 0
        reason = "no retries left"
        for n in range(self.retries + 1):
            remaining = self.max_total_seconds - (clock() - start)
            if remaining <= 0:
                reason = f"no time left within the {bound} bound"
                break
            attempts += 1
            last = attempt(max(MIN_TIMEOUT_SECONDS, min(self.timeout_seconds, remaining)))
            if last.ok:
                return RetryResult(True, attempts, last.status_code, None, clock() - start)
            if not last.transient:
                reason = "the error is not transient"
                break
            if n == self.retries:
                break
            delay = self.delay(n)
            if clock() - start + delay >= self.max_total_seconds:
                reason = f"the next retry would pass the {bound} bound"
                break
            sleep(delay)
        if last is None:
            return RetryResult(False, 0, None, f"not attempted: no time left within the {bound} bound", clock() - start)
        return RetryResult(False, attempts, last.status_code, gave_up(last.error, attempts, reason), clock() - start)
