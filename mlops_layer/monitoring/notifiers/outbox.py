"""The outbox: failed deliveries kept as JSON lines under the state dir until a later flush delivers them."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlops_layer.errors import ConfigError
from mlops_layer.monitoring.notifiers.results import DeliveryResult, Notifier


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
