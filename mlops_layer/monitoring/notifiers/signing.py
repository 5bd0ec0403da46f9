"""HMAC-SHA256 signatures of webhook payloads, in MLflow's registry-webhook scheme, and the receiver's check.

``X-Mlops-Signature: v1,<base64 hmac(secret, "<delivery id>.<timestamp>.<body>")>`` with ``X-Mlops-Timestamp`` and
``X-Mlops-Delivery-Id`` for replay protection.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Mapping

SIGNATURE_HEADER = "X-Mlops-Signature"
TIMESTAMP_HEADER = "X-Mlops-Timestamp"
DELIVERY_ID_HEADER = "X-Mlops-Delivery-Id"
EVENT_HEADER = "X-Mlops-Event"
SIGNATURE_VERSION = "v1"


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
