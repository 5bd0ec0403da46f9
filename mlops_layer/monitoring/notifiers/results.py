"""What a delivery gives back (:class:`DeliveryResult`), the :class:`Notifier` interface, and URL redaction."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit


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
